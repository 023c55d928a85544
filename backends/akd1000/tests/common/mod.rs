//! Hand-built quantised graphs in the form `quantize_akida` produces, with seeded random
//! integer parameters.
#![allow(dead_code)]

use nmc_ir::{
    ActRound, Constant, ConvGeom, Graph, Layer, LayerQuant, Neuron, NodeId, Op, Output, Pool,
    PoolKind, QuantParams, Synapse, TensorType,
};

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.next() as usize % v.len()]
    }
}

/// Builds a chain of Akida layers.
pub struct Builder {
    pub g: Graph,
    pub last: NodeId,
    pub bits: u32,
    pub rng: Rng,
}

pub struct ConvSpec {
    pub co: usize,
    pub k: usize,
    pub stride: usize,
    /// Same (TF) padding, else none.
    pub same: bool,
    /// Explicit `[top, left, bottom, right]` pads (e.g. PyTorch's), overriding `same`.
    pub pads: Option<[usize; 4]>,
    pub weight_bits: u32,
    pub act_bits: Option<u32>,
    pub pool: Option<Pool>,
    pub pool_first: bool,
    /// Largest step.
    pub max_step: i64,
}

impl Builder {
    /// A graph input of `shape` quantised with scale 1 to `bits` unsigned bits.
    pub fn new(shape: Vec<usize>, bits: u32, seed: u64) -> Builder {
        let mut g = Graph::new("t");
        let x = g.add_input(TensorType::f32(shape.clone()), "x");
        let q = g.add(
            Op::Quantize(QuantParams {
                scale: 1.0,
                min: 0,
                max: (1 << bits) - 1,
            }),
            vec![x],
            TensorType::i32(shape),
            None,
        );
        Builder {
            g,
            last: q,
            bits,
            rng: Rng(seed),
        }
    }

    pub fn shape(&self) -> Vec<usize> {
        self.g.ty(self.last).shape.clone()
    }

    fn weights(&mut self, n: usize, bits: u32) -> Vec<i32> {
        (0..n)
            .map(|_| {
                if bits == 1 {
                    // akida's 1-bit weights are {0, 1}.
                    (self.rng.next() % 2) as i32
                } else {
                    let m = (1i64 << (bits - 1)) - 1;
                    // A third of the weights zero, like a trained sparse-ish layer.
                    if self.rng.next().is_multiple_of(3) {
                        0
                    } else {
                        self.rng.range(-m, m) as i32
                    }
                }
            })
            .collect()
    }

    fn quant(
        &mut self,
        channels: usize,
        act_bits: Option<u32>,
        max_step: i64,
        first: bool,
    ) -> LayerQuant {
        match act_bits {
            Some(b) => {
                let steps: Vec<i32> = (0..channels)
                    .map(|_| self.rng.range(1, max_step) as i32)
                    .collect();
                let bias: Vec<i32> = steps
                    .iter()
                    .map(|s| self.rng.range(-3 * i64::from(*s), 2 * i64::from(*s)) as i32)
                    .collect();
                let step = self.g.consts.add(Constant::i32(vec![channels], steps));
                let bias = self.g.consts.add(Constant::i32(vec![channels], bias));
                LayerQuant {
                    weight_exp: vec![0],
                    bias: Some(bias),
                    state_bits: 32,
                    act_shift: 0,
                    act_min: 0,
                    act_max: (1 << b) - 1,
                    scale: 0.25,
                    mode: nmc_ir::QuantMode::Step {
                        act_step: Some(step),
                        act_round: ActRound::Ceil,
                        pool_first: first,
                    },
                }
            }
            None => {
                let bias: Vec<i32> = (0..channels)
                    .map(|_| self.rng.range(-50, 50) as i32)
                    .collect();
                let bias = self.g.consts.add(Constant::i32(vec![channels], bias));
                LayerQuant {
                    weight_exp: vec![0],
                    bias: Some(bias),
                    state_bits: 32,
                    act_shift: 0,
                    act_min: i32::MIN,
                    act_max: i32::MAX,
                    scale: 0.5,
                    mode: nmc_ir::QuantMode::Shift,
                }
            }
        }
    }

    /// Output size of a convolution on the current value.
    pub fn conv_out(&self, k: usize, stride: usize, same: bool) -> (usize, usize) {
        let [_, h, w]: [usize; 3] = self.shape().try_into().expect("[c, h, w]");
        let (hh, ww) = if same {
            (h.div_ceil(stride), w.div_ceil(stride))
        } else {
            ((h - k) / stride + 1, (w - k) / stride + 1)
        };
        (hh, ww)
    }

    /// Output size of a convolution with explicit pads on the current value.
    pub fn conv_out_padded(&self, k: usize, stride: usize, p: [usize; 4]) -> (usize, usize) {
        let [_, h, w]: [usize; 3] = self.shape().try_into().expect("[c, h, w]");
        (
            (h + p[0] + p[2] - k) / stride + 1,
            (w + p[1] + p[3] - k) / stride + 1,
        )
    }

    /// Appends a convolution layer.
    pub fn conv(&mut self, s: ConvSpec) -> &mut Self {
        let [ci, h, w]: [usize; 3] = self.shape().try_into().expect("[c, h, w]");
        let pads = if let Some(p) = s.pads {
            p
        } else if s.same {
            let (t, b) = nmc_akd1000::layers::same_pads(h, s.k, s.stride);
            let (l, r) = nmc_akd1000::layers::same_pads(w, s.k, s.stride);
            [t, l, b, r]
        } else {
            [0; 4]
        };
        let geom = ConvGeom {
            kernel: [s.k, s.k],
            strides: [s.stride, s.stride],
            pads,
            dilations: [1, 1],
            groups: 1,
        };
        let (oh, ow) = geom.out_hw(h, w).expect("kernel fits");
        let wv = self.weights(s.co * ci * s.k * s.k, s.weight_bits);
        let weight = self
            .g
            .consts
            .add(Constant::i32(vec![s.co, ci, s.k, s.k], wv));
        let quant = self.quant(s.co, s.act_bits, s.max_step, s.pool_first);
        let mut shape = vec![s.co, oh, ow];
        if let Some(p) = &s.pool {
            let (ph, pw) = p.out_hw(oh, ow).expect("pool fits");
            shape = vec![s.co, ph, pw];
        }
        let layer = Layer {
            synapses: vec![Synapse::Conv { weight, geom }],
            bias: None,
            neuron: if s.act_bits.is_some() {
                Neuron::Relu
            } else {
                Neuron::Linear
            },
            pool: s.pool,
            quant: Some(quant),
        };
        let name = format!("conv{}", self.g.nodes.len());
        self.last = self.g.add(
            Op::Layer(layer),
            vec![self.last],
            TensorType::i32(shape),
            Some(name),
        );
        self
    }

    /// Appends a flatten (when spatial) and a dense layer.
    pub fn dense(
        &mut self,
        out: usize,
        weight_bits: u32,
        act_bits: Option<u32>,
        max_step: i64,
    ) -> &mut Self {
        let n: usize = self.shape().iter().product();
        if self.shape().len() != 1 {
            self.last = self
                .g
                .add(Op::Reshape, vec![self.last], TensorType::i32(vec![n]), None);
        }
        let wv = self.weights(out * n, weight_bits);
        let weight = self.g.consts.add(Constant::i32(vec![out, n], wv));
        let quant = self.quant(out, act_bits, max_step, false);
        let layer = Layer {
            synapses: vec![Synapse::Dense { weight }],
            bias: None,
            neuron: if act_bits.is_some() {
                Neuron::Relu
            } else {
                Neuron::Linear
            },
            pool: None,
            quant: Some(quant),
        };
        let name = format!("dense{}", self.g.nodes.len());
        self.last = self.g.add(
            Op::Layer(layer),
            vec![self.last],
            TensorType::i32(vec![out]),
            Some(name),
        );
        self
    }

    /// Dequantises the last value as the graph output and returns the graph.
    pub fn finish(&mut self) -> Graph {
        let ty = self.g.ty(self.last).with_dtype(nmc_ir::DType::F32);
        let dq = self
            .g
            .add(Op::Dequantize { scale: 0.5 }, vec![self.last], ty, None);
        self.g.outputs.push(Output {
            node: dq,
            name: "y".into(),
        });
        nmc_ir::verify(&self.g).expect("built graph verifies");
        self.g.clone()
    }
}

pub fn max_pool(k: usize, s: usize) -> Option<Pool> {
    max_pool2([k, k], [s, s])
}

pub fn max_pool2(k: [usize; 2], s: [usize; 2]) -> Option<Pool> {
    Some(Pool {
        kind: PoolKind::Max,
        kernel: k,
        strides: s,
        pads: [0; 4],
        count_include_pad: false,
    })
}

pub fn global_sum(h: usize, w: usize) -> Option<Pool> {
    Some(Pool {
        kind: PoolKind::Sum,
        kernel: [h, w],
        strides: [1, 1],
        pads: [0; 4],
        count_include_pad: false,
    })
}

pub fn conv(co: usize, k: usize, stride: usize, act_bits: Option<u32>) -> ConvSpec {
    ConvSpec {
        co,
        k,
        stride,
        same: true,
        pads: None,
        weight_bits: 4,
        act_bits,
        pool: None,
        pool_first: false,
        max_step: 40,
    }
}

/// The reference interpreter's integer output for integer inputs.
pub fn reference(g: &Graph, x: &[i64]) -> Vec<i64> {
    let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let interp = nmc_ir::Interpreter::new(g).unwrap();
    let vals = interp.run_all(&[&xf]).unwrap();
    let out = g.node(g.outputs[0].node).inputs[0];
    match vals[out.index()].as_ref().unwrap() {
        nmc_ir::Value::I64(v) => v.clone(),
        nmc_ir::Value::F32(_) => panic!("float output"),
    }
}

/// A random input with about half the values zero.
pub fn random_input(rng: &mut Rng, n: usize, bits: u32) -> Vec<i64> {
    (0..n)
        .map(|_| {
            if rng.next().is_multiple_of(2) {
                0
            } else {
                rng.range(0, (1 << bits) - 1)
            }
        })
        .collect()
}
