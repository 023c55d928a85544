//! `quantize-akida`: the `graded` mode for BrainChip Akida 1.0 (AKD1000), selected by the target.
//!
//! It is a pass of its own rather than options of `quantize` because Akida's integer neuron is a
//! different function: `y = clamp(ceil((Σ w·x − threshold) / act_step), 0, 2^bits − 1)` with a
//! per-channel integer step (the activation rule measured in docs/chips.md §6), unsigned
//! activations of 1, 2 or 4 bits, 1–8-bit weights without exponents, and global average pooling
//! of the potentials. `quantize` shares its range finding (QDQ grids, calibration, the
//! weight-only rule) with this pass.
//!
//! Scales (`real ≈ scale · integer`):
//! - **inputs** are unsigned: 8 bits when the first layer is a convolution (it becomes an
//!   InputConv2D), else `act_bits` (1, 2 or 4; a Dense first layer takes at most 4-bit input).
//!   Without calibration or QDQ the range is taken as `[0, 1]` (images), not the `[-1, 1]` of
//!   the generic rule, because Akida inputs cannot be negative.
//! - **layers with an activation** (ReLU, or a clip at 0 and `hi`): the output scale is
//!   `s_out = hi / (2^bits − 1)`. Weights are quantised per output channel `c`: the step is the
//!   largest integer `k_c ≤ 65,535` with `k_c · s_in · maxabs_c / wmax ≤ s_out`, the weight scale
//!   is then exactly `s_w = s_out / (s_in · k_c)`, so every channel's activation has scale
//!   `s_out` and `|w| ≤ wmax = 2^(bits−1) − 1`. The bias becomes `round(b / (s_in·s_w))` and the
//!   threshold is raised by half a step (`floor(k/2)`), as cnn2snn does, so that Akida's ceil
//!   rounds to nearest. Thresholds beyond ±(2^19 − 1) are clipped, as cnn2snn does.
//! - **a last layer without activation** outputs its raw potential: one weight scale for the
//!   whole layer (`maxabs / wmax`), output scale `s_in · s_w`, bias in those units.
//! - **1-bit weights** are binary `{0, 1}` times a per-channel scale, as akida stores them (it
//!   rejects −1, docs/chips.md §7): the scale is the mean of the channel's positive weights and a
//!   weight is 1 where it exceeds half of it, so negative weights contribute nothing.
//! - **separable pairs** (a depthwise convolution without activation, then a pointwise 1×1
//!   convolution; [`separable_pairs`]) become one Akida SeparableConv2D in the backend. The
//!   depthwise layer is quantised per channel and outputs its raw integer sums, as the chip keeps
//!   them at full precision (docs/chips.md §3.6); the pointwise layer absorbs the per-channel
//!   scales and the depthwise bias and carries the pair's one threshold and step per channel.
//! - **global average pooling** before the activation (Conv → GlobalAveragePool → ReLU, the only
//!   order Akida 1.0 has) is fused into the convolution: the potentials are summed over the `N`
//!   positions (`pool_first`), the step becomes `N · k_c` and the bias `N · b`.
//!
//! Departures from the vendor flow, on purpose: steps are integers only (the engine divides by a
//! non-integer step inexactly, by an unknown rule, docs/chips.md §6; integer steps are exact), and the
//! artifact stores the effective divisor of the measured rule, not cnn2snn's internal encoding
//! (which scales `act_step` by `2^(act_bits − 4)` for widths other than 4).
//!
//! InputConv2D layers use 8-bit weights (QuantizeML's `input_weight_bits` default); other layers
//! use `weight_bits` (default 4). Layers Akida cannot run are quantised as well as they can be
//! and then rejected, with the rule they break, by the backend's constraint check
//! (`nmc_akd1000::analyze`), so that every constraint error comes from one place; only what this
//! pass cannot quantise at all (several inputs into one layer, negative inputs) fails here.

use super::quantize::{needed_nodes, qdq_hints, Range};
use super::{describe, PassError, QuantReport};
use crate::Error;
use nmc_backend::AkidaWidths;
use nmc_ir::{
    ActRound, Constant, Graph, Layer, LayerQuant, Neuron, NodeId, Op, Pool, PoolKind, QuantParams,
    Synapse,
};
use std::collections::{BTreeMap, BTreeSet};

const PASS: &str = "quantize-akida";

/// Largest step (cnn2snn `ACT_STEP_HW_LIMIT`, 16 bits).
const STEP_MAX: i64 = (1 << 16) - 1;
/// Largest threshold magnitude (cnn2snn `THRESHOLD_HW_LIMIT`).
const THRESHOLD_MAX: i64 = (1 << 19) - 1;

fn fit(message: String) -> Error {
    Error::Fit {
        target: "akd1000",
        message,
    }
}

/// A Conv → GlobalAveragePool → activation chain of the canonical graph, fused into one layer.
#[derive(Clone, Copy, Debug)]
struct GapFusion {
    /// The convolution (a linear layer).
    conv: NodeId,
    /// The average-pool layer (identity synapse, linear).
    pool: NodeId,
    /// A reshape between the pool and the activation, if any.
    reshape: Option<NodeId>,
}

fn is_identity(graph: &Graph, s: &Synapse) -> bool {
    let c = graph.consts.get(s.weight());
    let Some(w) = c.to_f32() else { return false };
    match s {
        Synapse::Conv { geom, .. } => {
            geom.kernel == [1, 1]
                && geom.groups == c.shape[0]
                && c.shape[1] == 1
                && geom.strides == [1, 1]
                && geom.pads == [0; 4]
                && w.iter().all(|v| *v == 1.0)
        }
        Synapse::Dense { .. } => {
            let n = c.shape[0];
            c.shape.get(1) == Some(&n)
                && w.iter()
                    .enumerate()
                    .all(|(i, v)| *v == if i / n == i % n { 1.0 } else { 0.0 })
        }
    }
}

/// Activation layers (keyed by id) that end a Conv → GlobalAveragePool → activation chain.
fn gap_fusions(graph: &Graph) -> BTreeMap<NodeId, GapFusion> {
    let users = graph.users();
    let single = |n: NodeId| users[n.index()].len() == 1;
    let layer = |n: NodeId| match &graph.node(n).op {
        Op::Layer(l) => Some(l),
        _ => None,
    };
    let mut out = BTreeMap::new();
    for id in graph.ids() {
        let Some(act) = layer(id) else { continue };
        let ok_act = matches!(act.neuron, Neuron::Relu | Neuron::Clip { .. })
            && act.pool.is_none()
            && act.bias.is_none()
            && act.synapses.len() == 1
            && is_identity(graph, &act.synapses[0]);
        if !ok_act {
            continue;
        }
        let mut src = graph.node(id).inputs[0];
        let mut reshape = None;
        if matches!(graph.node(src).op, Op::Reshape) && single(src) {
            reshape = Some(src);
            src = graph.node(src).inputs[0];
        }
        let Some(pool) = layer(src) else { continue };
        let pre = graph.ty(graph.node(src).inputs[0]).shape.clone();
        let global_avg = matches!(&pool.pool, Some(p) if p.kind == PoolKind::Avg
            && pre.len() == 3 && p.kernel == [pre[1], pre[2]] && p.pads == [0; 4]);
        let ok_pool = global_avg
            && matches!(pool.neuron, Neuron::Linear)
            && pool.bias.is_none()
            && pool.synapses.len() == 1
            && is_identity(graph, &pool.synapses[0])
            && single(src);
        if !ok_pool {
            continue;
        }
        let conv = graph.node(src).inputs[0];
        let Some(c) = layer(conv) else { continue };
        let ok_conv = matches!(c.neuron, Neuron::Linear)
            && c.pool.is_none()
            && c.synapses.len() == 1
            && matches!(c.synapses[0], Synapse::Conv { .. })
            && single(conv);
        if ok_conv {
            out.insert(
                id,
                GapFusion {
                    conv,
                    pool: src,
                    reshape,
                },
            );
        }
    }
    out
}

/// Whether layer `l` is a depthwise convolution: one convolution whose groups equal its input
/// and output channels (one `k×k` filter per channel).
fn is_depthwise(graph: &Graph, id: NodeId, l: &Layer) -> bool {
    let [Synapse::Conv { geom, weight }] = l.synapses.as_slice() else {
        return false;
    };
    let shape = &graph.consts.get(*weight).shape;
    let cin = graph.ty(graph.node(id).inputs[0]).shape.first().copied();
    geom.groups > 1
        && shape.len() == 4
        && shape[0] == geom.groups
        && shape[1] == 1
        && cin == Some(geom.groups)
}

/// Separable pairs of the canonical graph, keyed by the pointwise layer: a depthwise convolution
/// (BatchNorm folded, no activation, no pooling, read only by the next layer) followed by a
/// pointwise 1×1 convolution (stride 1, unpadded). The AKD1000 runs each pair as one Akida 1.0
/// SeparableConv2D, which applies the pointwise kernel to the depthwise sums at full precision
/// and has one threshold and step per output channel (docs/chips.md §3.6). The IR keeps both
/// layers, so the reference interpreter computes exactly that: the depthwise layer outputs its
/// raw integer sums, the pointwise layer reads them.
///
/// A depthwise convolution that does not pair (an activation after it, another consumer) is
/// quantised like any layer and refused by the backend's constraint check, which names the form
/// that would run.
fn separable_pairs(graph: &Graph) -> BTreeMap<NodeId, NodeId> {
    let users = graph.users();
    let mut out = BTreeMap::new();
    for id in graph.ids() {
        let Op::Layer(dw) = &graph.node(id).op else {
            continue;
        };
        let ok_dw = is_depthwise(graph, id, dw)
            && matches!(dw.neuron, Neuron::Linear)
            && dw.pool.is_none()
            && users[id.index()].len() == 1;
        if !ok_dw {
            continue;
        }
        let pw_id = users[id.index()][0];
        let Op::Layer(pw) = &graph.node(pw_id).op else {
            continue;
        };
        let ok_pw = matches!(pw.synapses.as_slice(), [Synapse::Conv { geom, .. }]
            if geom.kernel == [1, 1] && geom.groups == 1 && geom.strides == [1, 1]
                && geom.pads == [0; 4] && geom.dilations == [1, 1])
            && graph.node(pw_id).inputs.first() == Some(&id);
        if ok_pw {
            out.insert(pw_id, id);
        }
    }
    out
}

/// The integer depthwise half of a separable pair and what its pointwise half absorbs.
struct DepthwisePart {
    /// The quantised depthwise layer: raw integer sums (no bias, no activation).
    layer: Layer,
    /// Per channel: the real value of one unit of a depthwise sum, over the input scale.
    channel_scale: Vec<f64>,
    /// Per channel: the depthwise layer's float bias (BatchNorm), to move into the pointwise bias.
    bias: Vec<f64>,
}

/// Quantises the depthwise layer `dw` of a separable pair, per channel: channel `c` takes the
/// weight scale `s_c = max|w_c| / wmax` (binary: the mean of its positive weights, as
/// [`quantize_weights`]). Its integer sums are then worth `s_in · s_c` each; the pointwise layer
/// multiplies its column `c` by `s_c` and takes the depthwise bias through its own weights
/// (`b'_o = b_o + Σ_c w_oc · b_c`, exact: nothing non-linear sits between the two), so that
/// Akida's one threshold and step per output channel hold the whole block.
fn quantize_depthwise(
    graph: &Graph,
    out: &mut Graph,
    dw: &Layer,
    wbits: u32,
    s_in: f32,
) -> Result<DepthwisePart, String> {
    let Synapse::Conv { weight, geom } = &dw.synapses[0] else {
        return Err("a depthwise layer is a convolution".into());
    };
    let wc = graph.consts.get(*weight);
    let w = wc.to_f32().ok_or("weights have no float values")?;
    let channels = wc.shape[0];
    let per = w.len() / channels.max(1);
    let bias: Vec<f64> = match dw.bias {
        Some(b) => graph
            .consts
            .get(b)
            .to_f32()
            .ok_or("bias has no values")?
            .into_iter()
            .map(f64::from)
            .collect(),
        None => vec![0.0; channels],
    };
    let binary = wbits == 1;
    let wmax = if binary {
        1.0
    } else {
        ((1i64 << (wbits - 1)) - 1) as f64
    };
    let mut q = vec![0i32; w.len()];
    let mut channel_scale = Vec::with_capacity(channels);
    for c in 0..channels {
        let ws = &w[c * per..(c + 1) * per];
        let s = if binary {
            let pos: Vec<f64> = ws
                .iter()
                .filter(|x| **x > 0.0)
                .map(|x| f64::from(*x))
                .collect();
            pos.iter().sum::<f64>() / pos.len().max(1) as f64
        } else {
            ws.iter().fold(0f64, |m, x| m.max(f64::from(x.abs()))) / wmax
        };
        let s = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        for (qv, x) in q[c * per..(c + 1) * per].iter_mut().zip(ws) {
            *qv = if binary {
                i32::from(f64::from(*x) > s / 2.0)
            } else {
                nmc_ir::round_even(f64::from(*x) / s).clamp(-wmax, wmax) as i32
            };
        }
        channel_scale.push(s);
    }
    let weight = out.consts.add(Constant::i32(wc.shape.clone(), q));
    let top = channel_scale.iter().copied().fold(0f64, f64::max);
    let layer = Layer {
        synapses: vec![Synapse::Conv {
            weight,
            geom: geom.clone(),
        }],
        bias: None,
        neuron: Neuron::Linear,
        pool: None,
        quant: Some(LayerQuant {
            weight_exp: vec![0],
            bias: None,
            state_bits: 32,
            act_shift: 0,
            act_min: i32::MIN,
            act_max: i32::MAX,
            // The channels have scales `s_in · s_c`, which one number cannot hold; this records
            // the largest. Nothing reads it: the pointwise layer absorbed the per-channel scales.
            scale: (f64::from(s_in) * top) as f32,
            mode: nmc_ir::QuantMode::Shift,
        }),
    };
    Ok(DepthwisePart {
        layer,
        channel_scale,
        bias,
    })
}

/// Quantises a canonical graph for Akida 1.0. `calibration` may be empty.
pub fn quantize_akida(
    graph: &Graph,
    calibration: &[Vec<Vec<f32>>],
    opts: &AkidaWidths,
) -> Result<(Graph, QuantReport), Error> {
    let mut report = QuantReport::default();
    let perr = |id: NodeId, message: String| {
        Error::Pass(PassError {
            pass: PASS,
            node: describe(graph, id),
            message,
        })
    };
    for (what, b) in [
        ("--weight-bits", opts.weight_bits),
        ("--activation-bits", opts.act_bits),
        ("input weight bits", opts.input_weight_bits),
    ] {
        if !(1..=8).contains(&b) {
            return Err(Error::Usage(format!(
                "{what} {b} is outside 1..=8 (Akida 1.0 takes 1, 2 or 4, and 8 for InputConv2D weights)"
            )));
        }
    }

    if ![1, 2, 4, 8].contains(&opts.weight_bits) {
        return Err(fit(format!(
            "--weight-bits {}: Akida 1.0 weights are 1, 2 or 4 bits (8 only for an InputConv2D)",
            opts.weight_bits
        )));
    }

    // 1. The chip part ends where a float tail starts.
    let chip_outputs = super::quantize::chip_outputs(graph, &mut report.notes);
    // 2. Ranges.
    let hints = qdq_hints(graph);
    let calibrated = !calibration.is_empty();
    let ranges = super::quantize::find_ranges(graph, calibration, &hints, &mut report, "[0, 1]")
        .map_err(Error::Pass)?;
    let range_of = |id: NodeId| -> Range {
        hints
            .get(&id)
            .copied()
            .or_else(|| ranges.get(&id).copied())
            .unwrap_or(Range { lo: 0.0, hi: 1.0 })
    };

    // 3. Build the integer graph.
    let fusions = gap_fusions(graph);
    let pairs = separable_pairs(graph);
    // The depthwise half of a pair is emitted with its pointwise half.
    let fused_away: BTreeSet<NodeId> = fusions
        .values()
        .flat_map(|f| [Some(f.conv), Some(f.pool), f.reshape])
        .flatten()
        .chain(pairs.values().copied())
        .collect();
    let order = graph
        .topo_order()
        .map_err(|c| perr(c.0, "the graph has a cycle".into()))?;
    let users = graph.users();
    let mut out = Graph::new(graph.name.clone());
    let mut map: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut scale: BTreeMap<NodeId, f32> = BTreeMap::new();
    for &i in &graph.inputs {
        let n = graph.node(i);
        let new_in = out.add_input(n.ty.clone(), n.name.clone().unwrap_or_default());
        // 8 bits for a convolution reader (InputConv2D), else the activation width.
        let conv_reader = first_layer_is_conv(graph, &users, i);
        let bits = if conv_reader { 8 } else { opts.act_bits };
        let mut r = range_of(i);
        if !calibrated && !hints.contains_key(&i) {
            r = Range { lo: 0.0, hi: 1.0 };
        }
        if r.lo < 0.0 {
            return Err(fit(format!(
                "input {}: akd1000 inputs are unsigned integers (uint8 encoded on 1, 2, 4 or 8 bits), but its range is [{}, {}]",
                describe(graph, i),
                r.lo,
                r.hi
            )));
        }
        let max = (1i64 << bits) - 1;
        let s = safe(r.hi / max as f32);
        let qn = out.add(
            Op::Quantize(QuantParams {
                scale: s,
                min: 0,
                max: max as i32,
            }),
            vec![new_in],
            n.ty.with_dtype(nmc_ir::DType::I32),
            None,
        );
        map.insert(i, qn);
        scale.insert(i, s);
    }
    let needed = needed_nodes(graph, &chip_outputs);
    for id in order {
        if map.contains_key(&id) || !needed.contains(&id) || fused_away.contains(&id) {
            continue;
        }
        let node = graph.node(id);
        let ity = node.ty.with_dtype(nmc_ir::DType::I32);
        match &node.op {
            Op::Layer(l) => {
                let fusion = fusions.get(&id);
                // The layer whose synapses, bias and pooling the chip layer takes.
                let (body, src_layer) = match fusion {
                    Some(f) => match &graph.node(f.conv).op {
                        Op::Layer(c) => (c, f.conv),
                        _ => unreachable!("fusions start at a layer"),
                    },
                    None => (l, id),
                };
                if body.synapses.len() != 1 {
                    return Err(fit(format!(
                        "layer {}: Akida 1.0 layers have exactly one input (no residual additions): {} synapse groups",
                        describe(graph, id),
                        body.synapses.len()
                    )));
                }
                // A linear layer whose QDQ grid starts at 0 is clamped at 0 by the model itself
                // (onnxruntime drops a ReLU that a uint8 QuantizeLinear makes redundant).
                let mut neuron = l.neuron;
                if let Neuron::Spiking(m) = neuron {
                    // A native spiking neuron (ai.nmc domain, netx, NIR) has no Akida meaning.
                    return Err(perr(
                        id,
                        format!(
                            "`{}` neurons cannot run on akd1000: Akida 1.0 runs graded ReLU neurons",
                            m.name()
                        ),
                    ));
                }
                if let (Neuron::Linear, Some(r)) = (neuron, hints.get(&id)) {
                    if r.lo >= 0.0 {
                        neuron = Neuron::Clip { lo: 0.0, hi: r.hi };
                        report.notes.push(format!(
                            "{}: its QDQ grid [0, {}] clamps at 0, so it runs with an activation",
                            describe(graph, id),
                            r.hi
                        ));
                    }
                }
                if let Neuron::Clip { lo, .. } = neuron {
                    if lo != 0.0 {
                        return Err(fit(format!(
                            "layer {}: Akida 1.0 activations are unsigned and start at 0 (ReLU, or a clip at 0 and a maximum); this clip starts at {lo}",
                            describe(graph, id)
                        )));
                    }
                }
                let src = graph.node(src_layer).inputs[0];
                let pair = pairs.get(&src_layer).copied();
                let gap = fusion.map(|f| {
                    let pre = graph.ty(graph.node(f.pool).inputs[0]).shape.clone();
                    (pre[1] * pre[2]) as i64
                });
                let first_conv = pair.is_none()
                    && matches!(body.synapses[0], Synapse::Conv { .. })
                    && matches!(graph.node(src).op, Op::Input { .. });
                let wbits = if first_conv {
                    opts.input_weight_bits
                } else {
                    opts.weight_bits
                };
                let spec = LayerSpec {
                    act_bits: opts.act_bits,
                    weight_bits: wbits,
                    activation: !matches!(neuron, Neuron::Linear),
                    gap,
                };
                // The value the chip layer reads, and its scale: a separable pair reads the
                // depthwise layer's input.
                let (read, quantized) = match pair {
                    None => (
                        map[&src],
                        quantize_layer(
                            graph,
                            &mut out,
                            body,
                            neuron,
                            scale[&src],
                            range_of(id),
                            &spec,
                        ),
                    ),
                    Some(dw) => {
                        let Op::Layer(dl) = &graph.node(dw).op else {
                            unreachable!("pairs start at a layer")
                        };
                        let dsrc = graph.node(dw).inputs[0];
                        let s_in = scale[&dsrc];
                        let part = quantize_depthwise(graph, &mut out, dl, wbits, s_in)
                            .map_err(|m| perr(dw, m))?;
                        let dty = graph.ty(dw).with_dtype(nmc_ir::DType::I32);
                        let dnode = out.add(
                            Op::Layer(part.layer.clone()),
                            vec![map[&dsrc]],
                            dty,
                            graph.node(dw).name.clone(),
                        );
                        map.insert(dw, dnode);
                        let wc = graph.consts.get(body.synapses[0].weight());
                        let w = wc
                            .to_f32()
                            .ok_or_else(|| perr(id, "weights have no float values".into()))?;
                        let cin = part.channel_scale.len();
                        let fout = wc.shape[0];
                        let mut bias: Vec<f64> = match body.bias {
                            Some(b) => graph
                                .consts
                                .get(b)
                                .to_f32()
                                .ok_or_else(|| perr(id, "bias has no values".into()))?
                                .into_iter()
                                .map(f64::from)
                                .collect(),
                            None => vec![0.0; fout],
                        };
                        let mut wp = vec![0f32; w.len()];
                        for o in 0..fout {
                            for c in 0..cin {
                                let x = f64::from(w[o * cin + c]);
                                wp[o * cin + c] = (x * part.channel_scale[c]) as f32;
                                bias[o] += x * part.bias[c];
                            }
                        }
                        let bias: Vec<f32> = bias.into_iter().map(|b| b as f32).collect();
                        let q = quantize_weights(
                            &mut out,
                            body,
                            &wp,
                            &wc.shape,
                            &bias,
                            neuron,
                            s_in,
                            range_of(id),
                            &spec,
                        );
                        (dnode, q)
                    }
                };
                let (mut layer, s_out, notes) = quantized.map_err(|m| perr(id, m))?;
                if fusion.is_some() {
                    let conv_out = graph.ty(src_layer).shape.clone();
                    layer.pool = Some(Pool {
                        kind: PoolKind::Sum,
                        kernel: [conv_out[1], conv_out[2]],
                        strides: [1, 1],
                        pads: [0; 4],
                        count_include_pad: false,
                    });
                }
                report.notes.extend(
                    notes
                        .into_iter()
                        .map(|n| format!("{}: {n}", describe(graph, id))),
                );
                let channels = node.ty.shape[0];
                let lty = if fusion.is_some() {
                    nmc_ir::TensorType::i32(vec![channels, 1, 1])
                } else {
                    ity.clone()
                };
                // A fused layer is named after its convolution, as the vendor names it.
                let name = graph.node(src_layer).name.clone().or(node.name.clone());
                let mut nid = out.add(Op::Layer(layer), vec![read], lty.clone(), name);
                if lty != ity {
                    nid = out.add(Op::Reshape, vec![nid], ity, None);
                }
                map.insert(id, nid);
                scale.insert(id, s_out);
            }
            // Akida 1.0 has no concatenation layer; it is carried over whatever its scales, so
            // that the AKD1000 backend rejects it with its own constraint message.
            Op::Concat { axis } => {
                let srcs = node.inputs.iter().map(|i| map[i]).collect();
                map.insert(
                    id,
                    out.add(Op::Concat { axis: *axis }, srcs, ity, node.name.clone()),
                );
                scale.insert(id, scale[&node.inputs[0]]);
            }
            _ => super::quantize::carry(
                id,
                node,
                ity,
                &mut map,
                &mut scale,
                &mut out,
                "on the chip (not canonical)",
            )
            .map_err(|m| perr(id, m))?,
        }
    }
    super::quantize::dequantize_outputs(&mut out, &chip_outputs, &map, &scale);
    let out = super::finished(out, PASS).map_err(Error::Pass)?;
    Ok((out, report))
}

fn safe(s: f32) -> f32 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// Whether the first layer reading graph input `i` (through views) is a convolution.
fn first_layer_is_conv(graph: &Graph, users: &[Vec<NodeId>], i: NodeId) -> bool {
    let mut stack = vec![i];
    while let Some(n) = stack.pop() {
        for &u in &users[n.index()] {
            match &graph.node(u).op {
                Op::Reshape | Op::FakeQuant { .. } => stack.push(u),
                Op::Layer(l) => {
                    if let Some(k) = graph.node(u).inputs.iter().position(|x| *x == n) {
                        if matches!(l.synapses.get(k), Some(Synapse::Conv { .. })) && n == i {
                            return true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    false
}

struct LayerSpec {
    act_bits: u32,
    weight_bits: u32,
    /// Whether the layer has an activation (else it outputs raw potentials).
    activation: bool,
    /// Positions summed by a fused global average pool.
    gap: Option<i64>,
}

/// Quantises one Akida layer; returns it, its output scale and notes.
fn quantize_layer(
    graph: &Graph,
    out: &mut Graph,
    l: &Layer,
    neuron: Neuron,
    s_in: f32,
    range: Range,
    spec: &LayerSpec,
) -> Result<(Layer, f32, Vec<String>), String> {
    let wc = graph.consts.get(l.synapses[0].weight());
    let w = wc.to_f32().ok_or("weights have no float values")?;
    let bias: Vec<f32> = match l.bias {
        Some(b) => graph.consts.get(b).to_f32().ok_or("bias has no values")?,
        None => vec![0.0; wc.shape[0]],
    };
    quantize_weights(out, l, &w, &wc.shape, &bias, neuron, s_in, range, spec)
}

/// [`quantize_layer`] on given float weights (shaped `wshape`) and bias, which replace the
/// layer's own: a separable pair's pointwise layer is quantised on weights that absorb the
/// depthwise kernel's per-channel scales ([`separable_pairs`]).
#[allow(clippy::too_many_arguments)]
fn quantize_weights(
    out: &mut Graph,
    l: &Layer,
    w: &[f32],
    wshape: &[usize],
    bias: &[f32],
    neuron: Neuron,
    s_in: f32,
    range: Range,
    spec: &LayerSpec,
) -> Result<(Layer, f32, Vec<String>), String> {
    let mut notes = Vec::new();
    let syn = &l.synapses[0];
    let channels = wshape[0];
    let per = w.len() / channels.max(1);
    let s_in = f64::from(s_in);
    let wbits = spec.weight_bits;
    let binary = wbits == 1;
    let wmax = if binary {
        1.0
    } else {
        ((1i64 << (wbits - 1)) - 1) as f64
    };
    let magnitude = |c: usize| -> f64 {
        let ws = &w[c * per..(c + 1) * per];
        if binary {
            let positive: Vec<f64> = ws
                .iter()
                .filter(|x| **x > 0.0)
                .map(|x| f64::from(*x))
                .collect();
            positive.iter().sum::<f64>() / positive.len().max(1) as f64
        } else {
            ws.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())))
        }
    };
    let quant_w = |x: f32, s_w: f64| -> i32 {
        if binary {
            i32::from(f64::from(x) > s_w / 2.0)
        } else {
            nmc_ir::round_even(f64::from(x) / s_w).clamp(-wmax, wmax) as i32
        }
    };
    let n = spec.gap.unwrap_or(1);
    let mut qw = vec![0i32; w.len()];
    let (quant, s_out) = if spec.activation {
        let mut hi = range.hi;
        if let Neuron::Clip { hi: h, .. } = neuron {
            hi = hi.min(h);
        }
        let amax = ((1i64 << spec.act_bits) - 1) as f64;
        let s_out = f64::from(safe(hi)) / amax;
        let mut steps = Vec::with_capacity(channels);
        let mut bias_q = Vec::with_capacity(channels);
        let mut clipped = 0usize;
        let k_max = (STEP_MAX / n).max(1);
        for c in 0..channels {
            let m = magnitude(c);
            let k = if m > 0.0 {
                ((s_out * wmax / (s_in * m)).floor() as i64).clamp(1, k_max)
            } else {
                1
            };
            let s_w = s_out / (s_in * k as f64);
            for (q, x) in qw[c * per..(c + 1) * per]
                .iter_mut()
                .zip(&w[c * per..(c + 1) * per])
            {
                *q = quant_w(*x, s_w);
            }
            let step = k * n;
            let b = nmc_ir::round_even(f64::from(bias[c]) / (s_w * s_in)) as i64 * n;
            // Akida's threshold is −bias; raising it by half a step makes ceil round to nearest.
            let mut t = -(b - step / 2);
            if t.abs() > THRESHOLD_MAX {
                t = t.clamp(-THRESHOLD_MAX, THRESHOLD_MAX);
                clipped += 1;
            }
            steps.push(step as i32);
            bias_q.push((-t) as i32);
        }
        if clipped > 0 {
            notes.push(format!(
                "{clipped} threshold(s) clipped to ±{THRESHOLD_MAX} (the AKD1000 limit)"
            ));
        }
        let step = out.consts.add(Constant::i32(vec![channels], steps));
        let bias = (bias_q.iter().any(|b| *b != 0))
            .then(|| out.consts.add(Constant::i32(vec![channels], bias_q)));
        (
            LayerQuant {
                weight_exp: vec![0],
                bias,
                state_bits: 32,
                act_shift: 0,
                act_min: 0,
                act_max: amax as i32,
                scale: s_out as f32,
                mode: nmc_ir::QuantMode::Step {
                    act_step: Some(step),
                    act_round: ActRound::Ceil,
                    pool_first: spec.gap.is_some(),
                },
            },
            s_out,
        )
    } else {
        // Raw potentials: one weight scale for the layer, so one output scale.
        let m = (0..channels).map(magnitude).fold(0f64, f64::max);
        let s_w = if m > 0.0 { m / wmax } else { 1.0 };
        for (q, x) in qw.iter_mut().zip(w.iter()) {
            *q = quant_w(*x, s_w);
        }
        let s_out = s_in * s_w;
        let b: Vec<i32> = bias
            .iter()
            .map(|b| {
                nmc_ir::round_even(f64::from(*b) / s_out)
                    .clamp(f64::from(i32::MIN + 1), f64::from(i32::MAX)) as i32
            })
            .collect();
        let bias = b
            .iter()
            .any(|v| *v != 0)
            .then(|| out.consts.add(Constant::i32(vec![channels], b)));
        (
            LayerQuant {
                weight_exp: vec![0],
                bias,
                state_bits: 32,
                act_shift: 0,
                act_min: i32::MIN,
                act_max: i32::MAX,
                scale: s_out as f32,
                mode: nmc_ir::QuantMode::Shift,
            },
            s_out,
        )
    };
    let weight = out.consts.add(Constant::i32(wshape.to_vec(), qw));
    let synapses = vec![match syn {
        Synapse::Dense { .. } => Synapse::Dense { weight },
        Synapse::Conv { geom, .. } => Synapse::Conv {
            weight,
            geom: geom.clone(),
        },
    }];
    let layer = Layer {
        synapses,
        bias: None,
        neuron,
        pool: if spec.gap.is_some() {
            None
        } else {
            l.pool.clone()
        },
        quant: Some(quant),
    };
    Ok((layer, s_out as f32, notes))
}
