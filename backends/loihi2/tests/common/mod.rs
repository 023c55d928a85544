//! Shared test helpers: a small seeded PRNG and builders for quantised canonical graphs.
#![allow(dead_code)]

use nmc_ir::{
    infer_type, Constant, ConvGeom, CoreLoc, CoreSlice, Graph, Layer, LayerQuant, Mapping, Neuron,
    NodeId, Op, Pool, PoolKind, QuantParams, Synapse, TensorType,
};

/// SplitMix64: tiny, seedable, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Adds a node whose type is inferred.
pub fn add(g: &mut Graph, op: Op, inputs: Vec<NodeId>, name: &str) -> NodeId {
    let tys: Vec<TensorType> = inputs.iter().map(|i| g.ty(*i).clone()).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    let ty = infer_type(&op, &refs, &g.consts).unwrap_or_else(|e| panic!("{name}: {e}"));
    g.add(op, inputs, ty, Some(name.into()))
}

pub fn reshape(g: &mut Graph, x: NodeId, shape: Vec<usize>, name: &str) -> NodeId {
    let ty = TensorType::i32(shape);
    assert_eq!(ty.numel(), g.ty(x).numel());
    g.add(Op::Reshape, vec![x], ty, Some(name.into()))
}

/// Even weights in [-256, 254] with roughly `density` non-zeros.
pub fn weights(rng: &mut Rng, n: usize, density: f64) -> Vec<i32> {
    // A per-tensor magnitude, so that sums span saturated and unsaturated ranges.
    let m = [8, 32, 128][rng.usize(0, 2)];
    (0..n)
        .map(|_| {
            if rng.chance(density) {
                2 * rng.range(-m, m.min(127)) as i32
            } else {
                0
            }
        })
        .collect()
}

/// A random neuron model and integer range.
pub fn quant(rng: &mut Rng, groups: usize, bias: Option<nmc_ir::ConstId>) -> (Neuron, LayerQuant) {
    let (neuron, lo, hi) = match rng.usize(0, 2) {
        0 => (Neuron::Relu, 0, if rng.chance(0.5) { 127 } else { 255 }),
        1 => (Neuron::Linear, -128, 127),
        _ => (Neuron::Clip { lo: 0.0, hi: 4.0 }, 0, 63),
    };
    let q = LayerQuant {
        weight_exp: (0..groups).map(|_| rng.range(0, 3) as i32).collect(),
        bias,
        state_bits: 24,
        act_shift: rng.range(5, 12) as u32,
        act_min: lo,
        act_max: hi,
        scale: 0.05,
        mode: nmc_ir::QuantMode::Shift,
    };
    (neuron, q)
}

pub fn bias(rng: &mut Rng, g: &mut Graph, channels: usize) -> Option<nmc_ir::ConstId> {
    if rng.chance(0.25) {
        return None;
    }
    let v = (0..channels)
        .map(|_| (rng.range(-4096, 4095) << rng.range(0, 2)) as i32)
        .collect();
    Some(g.consts.add(Constant::i32(vec![channels], v)))
}

pub fn dense_layer(
    rng: &mut Rng,
    g: &mut Graph,
    inputs: Vec<NodeId>,
    out: usize,
    name: &str,
) -> NodeId {
    let mut synapses = Vec::new();
    for &i in &inputs {
        let n_in = g.ty(i).numel();
        let density = [0.1, 0.3, 0.6, 1.0][rng.usize(0, 3)];
        let w = weights(rng, out * n_in, density);
        let weight = g.consts.add(Constant::i32(vec![out, n_in], w));
        synapses.push(Synapse::Dense { weight });
    }
    let b = bias(rng, g, out);
    let (neuron, q) = quant(rng, synapses.len(), b);
    let op = Op::Layer(Layer {
        synapses,
        bias: None,
        neuron,
        pool: None,
        quant: Some(q),
    });
    add(g, op, inputs, name)
}

/// Input → Quantize with a [-128, 127] grid of step 1/16.
pub fn quantized_input(g: &mut Graph, shape: Vec<usize>, name: &str) -> (NodeId, NodeId) {
    let x = g.add_input(TensorType::f32(shape), name);
    let q = add(
        g,
        Op::Quantize(QuantParams {
            scale: 1.0 / 16.0,
            min: -128,
            max: 127,
        }),
        vec![x],
        &format!("{name}_q"),
    );
    (x, q)
}

pub fn dequantize(g: &mut Graph, x: NodeId, name: &str) -> NodeId {
    let d = add(
        g,
        Op::Dequantize { scale: 0.05 },
        vec![x],
        &format!("{name}_dq"),
    );
    g.outputs.push(nmc_ir::Output {
        node: d,
        name: name.into(),
    });
    d
}

/// Input → Quantize → dense → reshape → conv(+pool) → reshape → [concat] → dense (two groups,
/// residual from the first dense) → Dequantize, with random sizes, weights and ranges.
pub fn random_graph(rng: &mut Rng) -> Graph {
    let mut g = Graph::new("random");
    let (c0, h0, w0) = (rng.usize(1, 2), rng.usize(3, 6), rng.usize(3, 6));
    let (_, q) = quantized_input(&mut g, vec![c0, h0, w0], "x");
    let (c1, h1, w1) = (rng.usize(1, 3), rng.usize(3, 7), rng.usize(3, 7));
    let d1 = dense_layer(rng, &mut g, vec![q], c1 * h1 * w1, "fc1");
    let r1 = reshape(&mut g, d1, vec![c1, h1, w1], "r1");

    // A conv whose kernel fits, then a pooling window that fits its output.
    let conv = loop {
        let groups = if c1 > 1 && rng.chance(0.4) { c1 } else { 1 };
        let co = groups * rng.usize(1, 3);
        let geom = ConvGeom {
            kernel: [rng.usize(1, 3), rng.usize(1, 3)],
            strides: [rng.usize(1, 2), rng.usize(1, 2)],
            pads: [
                rng.usize(0, 1),
                rng.usize(0, 1),
                rng.usize(0, 1),
                rng.usize(0, 1),
            ],
            dilations: [rng.usize(1, 2), rng.usize(1, 2)],
            groups,
        };
        let Some((oh, ow)) = geom.out_hw(h1, w1) else {
            continue;
        };
        let pool = if rng.chance(0.75) {
            let kind = [PoolKind::Max, PoolKind::Avg, PoolKind::Sum][rng.usize(0, 2)];
            let k = [rng.usize(1, 3), rng.usize(1, 3)];
            let p = Pool {
                kind,
                kernel: k,
                strides: [rng.usize(1, 2), rng.usize(1, 2)],
                pads: [
                    rng.usize(0, k[0] - 1),
                    rng.usize(0, k[1] - 1),
                    rng.usize(0, k[0] - 1),
                    rng.usize(0, k[1] - 1),
                ],
                count_include_pad: rng.chance(0.5),
            };
            if p.out_hw(oh, ow).is_none() {
                continue;
            }
            Some(p)
        } else {
            None
        };
        let density = [0.2, 0.7, 1.0][rng.usize(0, 2)];
        let w = weights(
            rng,
            co * (c1 / groups) * geom.kernel[0] * geom.kernel[1],
            density,
        );
        let weight = g.consts.add(Constant::i32(
            vec![co, c1 / groups, geom.kernel[0], geom.kernel[1]],
            w,
        ));
        let b = bias(rng, &mut g, co);
        let (neuron, q) = quant(rng, 1, b);
        let op = Op::Layer(Layer {
            synapses: vec![Synapse::Conv { weight, geom }],
            bias: None,
            neuron,
            pool,
            quant: Some(q),
        });
        break add(&mut g, op, vec![r1], "conv2");
    };
    let n2 = g.ty(conv).numel();
    let r2 = reshape(&mut g, conv, vec![n2], "r2");
    let first = if rng.chance(0.5) {
        add(&mut g, Op::Concat { axis: 0 }, vec![r2, d1], "cat")
    } else {
        r2
    };
    let n3 = rng.usize(2, 8);
    let d3 = dense_layer(rng, &mut g, vec![first, d1], n3, "fc3");
    dequantize(&mut g, d3, "y");
    if rng.chance(0.5) {
        dequantize(&mut g, r2, "features");
    }
    nmc_ir::verify(&g).expect("valid test graph");
    g
}

/// Random contiguous slices per layer over `cores` cores placed at distinct random locations of
/// a `chips`-chip system.
pub fn random_mapping(rng: &mut Rng, g: &Graph, chips: u32) -> Mapping {
    let n_cores = rng.usize(1, 6) as u32;
    let mut m = Mapping::default();
    let mut used = std::collections::BTreeSet::new();
    while m.placement.len() < n_cores as usize {
        let loc = CoreLoc {
            chip: rng.range(0, chips as i64 - 1) as u32,
            x: rng.range(0, 7) as u32,
            y: rng.range(0, 15) as u32,
        };
        if used.insert(loc) {
            m.placement.push(loc);
        }
    }
    for id in g.ids() {
        if let Op::Layer(_) = g.node(id).op {
            let channels = g.ty(id).shape[0] as u32;
            let pieces = rng.usize(1, channels.min(3) as usize) as u32;
            let mut cuts: Vec<u32> = (1..channels).collect();
            // Choose pieces-1 distinct cut points.
            let mut chosen = Vec::new();
            for _ in 1..pieces {
                let k = rng.usize(0, cuts.len() - 1);
                chosen.push(cuts.remove(k));
            }
            chosen.sort_unstable();
            let mut start = 0;
            let mut slices = Vec::new();
            for end in chosen.into_iter().chain([channels]) {
                slices.push(CoreSlice::channels(
                    rng.range(0, n_cores as i64 - 1) as u32,
                    start,
                    end,
                ));
                start = end;
            }
            m.layers.insert(id, slices);
        }
    }
    m
}

/// One core for every layer, at (chip 0, 0, 0).
pub fn single_core_mapping(g: &Graph) -> Mapping {
    let mut m = Mapping {
        placement: vec![CoreLoc {
            chip: 0,
            x: 0,
            y: 0,
        }],
        ..Default::default()
    };
    for id in g.ids() {
        if let Op::Layer(_) = g.node(id).op {
            let channels = g.ty(id).shape[0] as u32;
            m.layers
                .insert(id, vec![CoreSlice::channels(0, 0, channels)]);
        }
    }
    m
}

/// Random float input for `g`'s single input, with about `zeros` of it exactly zero.
pub fn random_input(rng: &mut Rng, g: &Graph, zeros: f64) -> Vec<f32> {
    let n = g.ty(g.inputs[0]).numel();
    (0..n)
        .map(|_| {
            if rng.chance(zeros) {
                0.0
            } else {
                rng.range(-160, 160) as f32 / 16.0
            }
        })
        .collect()
}
