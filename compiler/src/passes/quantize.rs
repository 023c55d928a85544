//! `quantize`: turns the canonical float graph into integer layers for a target (the `graded`
//! execution mode of ARCHITECTURE.md §4).
//!
//! Each value gets a scale (`real ≈ scale · integer`). Ranges come, in order of preference, from
//! QDQ pairs in the model (their grid is taken as is), from calibration inputs (`--calibrate`:
//! the observed min and max of every value), or — with neither — from a weight-only rule: inputs
//! are assumed uniform in [-1, 1] and each layer's output range is four root-mean-square values of
//! its pre-activation under an independent-input assumption. The report says which was used.
//!
//! For a layer with output scale `s_out` and `act_shift = k`, the neuron state unit is
//! `s_v = s_out / 2^k`. Synapse group `g` reading a value of scale `s_g` stores integer weights
//! `w = W · s_g / (s_v · 2^e_g)` with the smallest exponent `e_g` in the target's range that keeps
//! `|w|` within the mantissa (even values on Loihi 2). Biases become `mant << exp` in state units.
//! `k` starts as large as the state width allows (finest state resolution) and drops until every
//! weight exponent and the bias fit the target's fields.
//!
//! The operands of a concatenation share one grid (`joins`: chosen from all their ranges;
//! producers read only by concatenations are quantised onto it, others are requantised by a
//! rescale population). A residual add needs no common grid: it is two synapse groups, each
//! with its own input scale.
//!
//! A float tail after the chip's outputs (Softmax, LogSoftmax) is left off: it does not change the
//! argmax, and `eval` still runs it.

use super::joins::{self, Grid};
use super::{describe, PassError};
use nmc_backend::QuantSpec;
use nmc_ir::{
    Constant, Graph, Interpreter, Layer, LayerQuant, Neuron, NodeId, Op, Output, PoolKind,
    QuantParams, Synapse, Value,
};
use std::collections::{BTreeMap, BTreeSet};

const PASS: &str = "quantize";

/// Calibration inputs: for each sample, one flattened tensor per graph input.
pub type Calibration = Vec<Vec<Vec<f32>>>;

/// Options of the quantisation pass.
#[derive(Clone, Debug)]
pub struct QuantOptions {
    /// Target widths.
    pub spec: QuantSpec,
    /// Activation (graded payload) width for hidden layers and inputs.
    pub act_bits: u32,
    /// Width of the chip's output values (linear readouts keep more precision).
    pub output_bits: u32,
}

impl QuantOptions {
    /// The target's defaults.
    pub fn for_spec(spec: QuantSpec) -> Self {
        let act_bits = spec.act_bits;
        let output_bits = 16.min(spec.max_act_bits);
        QuantOptions {
            spec,
            act_bits,
            output_bits,
        }
    }
}

/// What the pass decided, for the compile report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantReport {
    /// Where ranges came from: "qdq", "calibration (N samples)" or "weight-only rule".
    pub ranges_from: String,
    /// Human-readable notes (dropped tails, clamped weights, …).
    pub notes: Vec<String>,
    /// What the e-graph pass before quantisation did (`None` at -O0); set by the driver.
    pub egraph: Option<crate::egraph::EgraphReport>,
}

/// A range of real values.
#[derive(Clone, Copy, Debug)]
pub(super) struct Range {
    pub(super) lo: f32,
    pub(super) hi: f32,
}

/// Quantises a canonical graph. `calibration` may be empty.
pub fn quantize(
    graph: &Graph,
    calibration: &[Vec<Vec<f32>>],
    opts: &QuantOptions,
) -> Result<(Graph, QuantReport), PassError> {
    let mut report = QuantReport::default();
    let err = |id: NodeId, message: String| PassError {
        pass: PASS,
        node: describe(graph, id),
        message,
    };
    for b in [opts.act_bits, opts.output_bits] {
        if b < 2 || b > opts.spec.max_act_bits {
            return Err(PassError {
                pass: PASS,
                node: "options".into(),
                message: format!(
                    "activation width {b} bits is outside 2..={}",
                    opts.spec.max_act_bits
                ),
            });
        }
    }

    // 1. The chip part ends where a float tail starts.
    let chip_outputs = chip_outputs(graph, &mut report.notes);
    let output_nodes: BTreeSet<NodeId> = chip_outputs
        .iter()
        .map(|o| {
            let mut n = o.node;
            while matches!(graph.node(n).op, Op::Reshape | Op::FakeQuant { .. }) {
                n = graph.node(n).inputs[0];
            }
            n
        })
        .collect();

    // 2. Ranges.
    let hints = qdq_hints(graph);
    let ranges = find_ranges(graph, calibration, &hints, &mut report, "[-1, 1]")?;
    let range_of = |id: NodeId| -> Range {
        hints
            .get(&id)
            .copied()
            .or_else(|| ranges.get(&id).copied())
            .unwrap_or(Range { lo: -1.0, hi: 1.0 })
    };

    // 3. Build the integer graph.
    let order = graph
        .topo_order()
        .map_err(|c| err(c.0, "the graph has a cycle".into()))?;
    let mut out = Graph::new(graph.name.clone());
    let mut map: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut scale: BTreeMap<NodeId, f32> = BTreeMap::new();
    let needed = needed_nodes(graph, &chip_outputs);
    let plan = joins::plan(
        graph,
        &needed,
        &output_nodes,
        &range_of,
        (opts.act_bits, opts.output_bits),
        &|r, bits| {
            let ((min, max), scale) = grid(r, bits);
            Grid { min, max, scale }
        },
    );
    for &i in &graph.inputs {
        let n = graph.node(i);
        let new_in = out.add_input(n.ty.clone(), n.name.clone().unwrap_or_default());
        let (q, s) = match plan.direct.get(&i) {
            // Read by concatenations only: quantised straight onto their grid.
            Some(&g) => {
                let m = joins::member_grid(plan.grids[g], range_of(i), None);
                ((m.min, m.max), m.scale)
            }
            None => grid(range_of(i), opts.act_bits),
        };
        let qn = out.add(
            Op::Quantize(QuantParams {
                scale: s,
                min: q.0,
                max: q.1,
            }),
            vec![new_in],
            n.ty.with_dtype(nmc_ir::DType::I32),
            None,
        );
        map.insert(i, qn);
        scale.insert(i, s);
    }
    // Rescale populations already made: (value, group) → node in `out`.
    let mut rescaled: BTreeMap<(NodeId, usize), NodeId> = BTreeMap::new();
    for id in order {
        if map.contains_key(&id) || !needed.contains(&id) {
            continue;
        }
        let node = graph.node(id);
        let ity = node.ty.with_dtype(nmc_ir::DType::I32);
        match &node.op {
            Op::Layer(l) => {
                let bits = if output_nodes.contains(&id) {
                    opts.output_bits
                } else {
                    opts.act_bits
                };
                let srcs: Vec<NodeId> = node.inputs.iter().map(|i| map[i]).collect();
                let in_scales: Vec<f32> = node.inputs.iter().map(|i| scale[i]).collect();
                // A layer read by concatenations only is quantised straight onto their grid.
                let forced = plan.direct.get(&id).map(|&g| {
                    let own = joins::layer_output_range(l, range_of(id));
                    joins::member_grid(plan.grids[g], own, Some(l.neuron))
                });
                let (layer, s_out, notes) = quantize_layer(
                    graph,
                    &mut out,
                    l,
                    &in_scales,
                    range_of(id),
                    bits,
                    &opts.spec,
                    forced,
                )
                .map_err(|m| err(id, m))?;
                report.notes.extend(
                    notes
                        .into_iter()
                        .map(|n| format!("{}: {n}", describe(graph, id))),
                );
                let nid = out.add(Op::Layer(layer), srcs, ity, node.name.clone());
                map.insert(id, nid);
                scale.insert(id, s_out);
            }
            Op::Concat { axis } => {
                let g = plan.concat_group[&id];
                let target = plan.grids[g];
                let mut srcs = Vec::with_capacity(node.inputs.len());
                for &o in &node.inputs {
                    if joins::same_scale(scale[&o], target.scale) {
                        srcs.push(map[&o]);
                        continue;
                    }
                    // A pinned operand: read through one rescale population per group.
                    if let Some(&r) = rescaled.get(&(o, g)) {
                        srcs.push(r);
                        continue;
                    }
                    let p = joins::producer(graph, o);
                    let own = match &graph.node(p).op {
                        Op::Layer(l) => joins::layer_output_range(l, range_of(p)),
                        _ => range_of(p),
                    };
                    let name = joins::rescale_name(graph, o);
                    let member = joins::member_grid(target, own, None);
                    let r = rescale(&mut out, map[&o], scale[&o], own, member, &opts.spec, name)
                        .map_err(|m| {
                            err(id, format!("rescaling operand {}: {m}", describe(graph, o)))
                        })?;
                    report.notes.push(format!(
                        "{}: operand {} is requantised from scale {:e} to the concatenation's grid ({:e}) by a rescale population, as it also has other readers",
                        describe(graph, id),
                        describe(graph, o),
                        scale[&o],
                        target.scale
                    ));
                    rescaled.insert((o, g), r);
                    srcs.push(r);
                }
                let nid = out.add(Op::Concat { axis: *axis }, srcs, ity, node.name.clone());
                map.insert(id, nid);
                scale.insert(id, target.scale);
            }
            _ => carry(
                id,
                node,
                ity,
                &mut map,
                &mut scale,
                &mut out,
                "on the chip (not canonical)",
            )
            .map_err(|m| err(id, m))?,
        }
    }
    dequantize_outputs(&mut out, &chip_outputs, &map, &scale);
    Ok((super::finished(out, PASS)?, report))
}

/// The values the chip produces: each graph output, with a trailing Softmax or LogSoftmax left
/// off (it does not change the argmax; `nmc eval` still applies it), noted in `notes`.
pub(super) fn chip_outputs(graph: &Graph, notes: &mut Vec<String>) -> Vec<Output> {
    let mut chip_outputs = Vec::new();
    for o in &graph.outputs {
        let mut n = o.node;
        while let Op::Softmax { log, .. } = graph.node(n).op {
            notes.push(format!(
                "trailing {} {} is left off the chip graph (it does not change the argmax); `nmc eval` still applies it",
                if log { "LogSoftmax" } else { "Softmax" },
                describe(graph, n)
            ));
            n = graph.node(n).inputs[0];
        }
        chip_outputs.push(Output {
            node: n,
            name: o.name.clone(),
        });
    }
    chip_outputs
}

/// [`carry_view`] of node `id`, recording its new node in `map` and its scale in `scale`; an op
/// that is not a view is refused as `` `op` cannot run {place} ``. Every quantiser's last case.
pub(crate) fn carry(
    id: NodeId,
    node: &nmc_ir::Node,
    ity: nmc_ir::TensorType,
    map: &mut BTreeMap<NodeId, NodeId>,
    scale: &mut BTreeMap<NodeId, f32>,
    out: &mut Graph,
    place: &str,
) -> Result<(), String> {
    let (nid, s) = carry_view(node, ity, map, scale, out)
        .ok_or_else(|| format!("`{}` cannot run {place}", node.op.mnemonic()))??;
    map.insert(id, nid);
    scale.insert(id, s);
    Ok(())
}

/// Carries a view (reshape, concatenation, fake-quant) into a quantised graph: the same view of
/// the mapped sources, with their common scale (`scale` holds a scale or, in rate mode, a spike
/// factor per value). `None`: the op is not a view. A concatenation must join values of one
/// scale (the same integer would mean different things on either side): the graded and rate
/// quantisers bring its operands onto one before they get here, so a mismatch is an error.
pub(crate) fn carry_view(
    node: &nmc_ir::Node,
    ity: nmc_ir::TensorType,
    map: &BTreeMap<NodeId, NodeId>,
    scale: &BTreeMap<NodeId, f32>,
    out: &mut Graph,
) -> Option<Result<(NodeId, f32), String>> {
    let srcs: Vec<NodeId> = node.inputs.iter().map(|i| map[i]).collect();
    let s0 = scale[node.inputs.first()?];
    let view = match &node.op {
        Op::Reshape => Op::Reshape,
        Op::Concat { axis } => {
            if node
                .inputs
                .iter()
                .any(|i| (scale[i] - s0).abs() > s0.abs() * 1e-6)
            {
                return Some(Err(
                    "concat of values with different quantisation scales is not supported".into(),
                ));
            }
            Op::Concat { axis: *axis }
        }
        Op::FakeQuant { .. } => return Some(Ok((srcs[0], s0))),
        _ => return None,
    };
    Some(Ok((out.add(view, srcs, ity, node.name.clone()), s0)))
}

/// Ends the integer graph: each chip output becomes a `Dequantize` by its value's scale.
pub(super) fn dequantize_outputs(
    out: &mut Graph,
    chip_outputs: &[Output],
    map: &BTreeMap<NodeId, NodeId>,
    scale: &BTreeMap<NodeId, f32>,
) {
    for o in chip_outputs {
        let src = map[&o.node];
        let ty = out.ty(src).with_dtype(nmc_ir::DType::F32);
        let dq = out.add(
            Op::Dequantize {
                scale: scale[&o.node],
            },
            vec![src],
            ty,
            None,
        );
        out.outputs.push(Output {
            node: dq,
            name: o.name.clone(),
        });
    }
}

/// Activation ranges, in order of preference: calibration inputs, else (with QDQ hints, which
/// the caller applies on top) or without them the weight-only rule. Records which in `report`;
/// `input_assumption` is the input range the weight-only rule's note states.
pub(super) fn find_ranges(
    graph: &Graph,
    calibration: &[Vec<Vec<f32>>],
    hints: &BTreeMap<NodeId, Range>,
    report: &mut QuantReport,
    input_assumption: &str,
) -> Result<BTreeMap<NodeId, Range>, PassError> {
    if !calibration.is_empty() {
        report.ranges_from = format!("calibration ({} samples)", calibration.len());
        return calibrate(graph, calibration).map_err(|m| PassError {
            pass: PASS,
            node: "calibration".into(),
            message: m,
        });
    }
    report.ranges_from = if hints.is_empty() {
        "weight-only rule".into()
    } else {
        "qdq".into()
    };
    if hints.is_empty() {
        report.notes.push(format!(
            "activations were not calibrated: inputs assumed in {input_assumption} and layer ranges estimated \
             from the weights; pass --calibrate inputs.npy for accurate scales"
        ));
    }
    Ok(weight_only_ranges(graph))
}

/// Nodes the chip outputs depend on.
pub(super) fn needed_nodes(graph: &Graph, outputs: &[Output]) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<NodeId> = outputs.iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(graph.node(n).inputs.iter().copied());
        }
    }
    seen
}

/// Integer grid and scale for a range: unsigned `[0, 2^b − 1]` when the range is non-negative,
/// symmetric signed otherwise.
fn grid(r: Range, bits: u32) -> ((i32, i32), f32) {
    let safe = |s: f32| if s.is_finite() && s > 0.0 { s } else { 1.0 };
    if r.lo >= 0.0 {
        let max = (1i64 << bits) - 1;
        ((0, max as i32), safe(r.hi / max as f32))
    } else {
        let max = (1i64 << (bits - 1)) - 1;
        (
            (-max as i32, max as i32),
            safe(r.lo.abs().max(r.hi.abs()) / max as f32),
        )
    }
}

/// Ranges implied by QDQ pairs: the producer of a fake-quantised value takes its grid.
pub(super) fn qdq_hints(graph: &Graph) -> BTreeMap<NodeId, Range> {
    let mut hints = BTreeMap::new();
    for id in graph.ids() {
        let node = graph.node(id);
        if let Op::FakeQuant {
            scale,
            zero_point,
            min,
            max,
        } = node.op
        {
            let r = Range {
                lo: (min - zero_point) as f32 * scale,
                hi: (max - zero_point) as f32 * scale,
            };
            let mut src = node.inputs[0];
            hints.insert(id, r);
            // Look through views to the producing layer or input.
            loop {
                hints.entry(src).or_insert(r);
                match graph.node(src).op {
                    Op::Reshape | Op::FakeQuant { .. } => src = graph.node(src).inputs[0],
                    _ => break,
                }
            }
        }
    }
    hints
}

fn calibrate(graph: &Graph, samples: &[Vec<Vec<f32>>]) -> Result<BTreeMap<NodeId, Range>, String> {
    let interp = Interpreter::new(graph).map_err(|e| e.to_string())?;
    let mut ranges: BTreeMap<NodeId, Range> = BTreeMap::new();
    for s in samples {
        let refs: Vec<&[f32]> = s.iter().map(|v| v.as_slice()).collect();
        let vals = interp.run_all(&refs).map_err(|e| e.to_string())?;
        for (i, v) in vals.iter().enumerate() {
            if let Some(Value::F32(x)) = v {
                let r = ranges
                    .entry(NodeId(i as u32))
                    .or_insert(Range { lo: 0.0, hi: 0.0 });
                for &e in x {
                    r.lo = r.lo.min(e);
                    r.hi = r.hi.max(e);
                }
            }
        }
    }
    Ok(ranges)
}

/// The weight-only rule (see the module docs).
fn weight_only_ranges(graph: &Graph) -> BTreeMap<NodeId, Range> {
    let mut rms: BTreeMap<NodeId, f32> = BTreeMap::new();
    let mut ranges = BTreeMap::new();
    for id in graph.topo_order().unwrap_or_default() {
        let node = graph.node(id);
        match &node.op {
            Op::Input { .. } => {
                rms.insert(id, 1.0 / 3f32.sqrt());
                ranges.insert(id, Range { lo: -1.0, hi: 1.0 });
            }
            Op::Layer(l) => {
                let mut ms = 0f32;
                for (k, s) in l.synapses.iter().enumerate() {
                    let c = graph.consts.get(s.weight());
                    let w = c.to_f32().unwrap_or_default();
                    let rows = c.shape[0].max(1);
                    let sum_sq: f32 = w.iter().map(|x| x * x).sum();
                    let r_in = rms.get(&node.inputs[k]).copied().unwrap_or(1.0);
                    ms += sum_sq / rows as f32 * r_in * r_in;
                }
                if let Some(b) = l.bias {
                    let b = graph.consts.get(b).to_f32().unwrap_or_default();
                    ms += b.iter().map(|x| x * x).sum::<f32>() / b.len().max(1) as f32;
                }
                let r = ms.sqrt();
                let (lo, hi, out_rms) = match l.neuron {
                    Neuron::Relu | Neuron::Spiking(_) => (0.0, 4.0 * r, r / 2f32.sqrt()),
                    Neuron::Clip { lo, hi } => (lo.max(-4.0 * r), hi.min(4.0 * r), r / 2f32.sqrt()),
                    Neuron::Linear => (-4.0 * r, 4.0 * r, r),
                };
                rms.insert(id, out_rms);
                ranges.insert(id, Range { lo, hi });
            }
            _ => {
                if let Some(&src) = node.inputs.first() {
                    if let Some(r) = rms.get(&src).copied() {
                        rms.insert(id, r);
                    }
                    if let Some(r) = ranges.get(&src).copied() {
                        ranges.insert(id, r);
                    }
                }
            }
        }
    }
    ranges
}

/// A rescale population: `src` (integers of scale `s_in`, real range `own`) copied onto the grid
/// `to` by a depthwise 1×1 identity synapse with a linear neuron (`joins::identity_layer`),
/// quantised like any other layer, so the emulators run it as one.
fn rescale(
    out: &mut Graph,
    src: NodeId,
    s_in: f32,
    own: Range,
    to: Grid,
    spec: &QuantSpec,
    name: String,
) -> Result<NodeId, String> {
    let (scratch, float, shape3) = joins::identity_layer(&out.ty(src).shape, Neuron::Linear);
    let (layer, _, _) = quantize_layer(&scratch, out, &float, &[s_in], own, 0, spec, Some(to))?;
    Ok(joins::add_rescale(out, src, layer, shape3, name))
}

/// Quantises one layer; returns it, its output scale and notes.
fn quantize_layer(
    graph: &Graph,
    out: &mut Graph,
    l: &Layer,
    in_scales: &[f32],
    range: Range,
    bits: u32,
    spec: &QuantSpec,
    forced: Option<Grid>,
) -> Result<(Layer, f32, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut r = range;
    if let Neuron::Clip { lo, hi } = l.neuron {
        r.lo = r.lo.max(lo);
        r.hi = r.hi.min(hi);
    }
    if matches!(l.neuron, Neuron::Relu) {
        r.lo = r.lo.max(0.0);
    }
    // Average pooling divides after the neuron; its range is at most the neuron's.
    if let Some(p) = &l.pool {
        if p.kind == PoolKind::Sum {
            let n = (p.kernel[0] * p.kernel[1]) as f32;
            r = Range {
                lo: r.lo / n,
                hi: r.hi / n,
            };
        }
    }
    let ((act_min, act_max), s_out) = match forced {
        Some(g) => ((g.min, g.max), g.scale),
        None => grid(r, bits),
    };
    let weights: Vec<&Constant> = l
        .synapses
        .iter()
        .map(|s| graph.consts.get(s.weight()))
        .collect();
    let maxabs: Vec<f64> = weights
        .iter()
        .map(|c| {
            let v = c
                .stored_f32()
                .ok_or_else(|| "weights have no float values".to_string())?;
            Ok(v.iter().fold(0f64, |m, x| m.max(x.abs() as f64)))
        })
        .collect::<Result<_, String>>()?;
    let bias: Vec<f32> = match l.bias {
        Some(b) => graph.consts.get(b).to_f32().ok_or("bias has no values")?,
        None => Vec::new(),
    };
    let w_limit =
        ((1i64 << (spec.weight_bits - 1)) - 1) as f64 * if spec.even_weights { 2.0 } else { 1.0 };
    let mant_max = ((1i64 << (spec.bias_mant_bits - 1)) - 1) as f64;
    let state_max = ((1i64 << (spec.state_bits - 1)) - 1) as f64;
    // Bits of the largest activation magnitude (`bits`, or `bits − 1` on a signed grid; less
    // for a producer whose clip sits inside a concatenation's grid).
    let mag = (act_min as i64).abs().max(act_max as i64) as u64;
    let mag_bits = 64 - mag.leading_zeros();
    let top_shift = spec.state_bits.saturating_sub(1 + mag_bits);
    let (e_min, e_max) = spec.weight_exp_range;
    // Finest state resolution first; coarser until exponents and bias fit.
    let mut chosen = None;
    for shift in (0..=top_shift).rev() {
        let s_v = s_out as f64 / (1u64 << shift) as f64;
        let exps: Vec<i32> = maxabs
            .iter()
            .zip(in_scales)
            .map(|(&maxabs, &s_in)| {
                let need = maxabs * s_in as f64 / (s_v * w_limit);
                if need <= 0.0 {
                    e_min
                } else {
                    (need.log2().ceil() as i32).max(e_min)
                }
            })
            .collect();
        let bias_fits = bias
            .iter()
            .all(|b| (*b as f64 / s_v).abs() <= mant_max * (1u64 << spec.bias_exp_max) as f64)
            && bias.iter().all(|b| (*b as f64 / s_v).abs() <= state_max);
        if exps.iter().all(|&e| e <= e_max) && bias_fits {
            chosen = Some((shift, s_v, exps));
            break;
        }
        if shift == 0 {
            notes.push(
                "weights or bias exceed the target's exponent range; values are clamped".into(),
            );
            chosen = Some((0, s_v, exps.into_iter().map(|e| e.min(e_max)).collect()));
        }
    }
    let (act_shift, s_v, exps) = chosen.expect("shift 0 always chosen");
    let mut synapses = Vec::new();
    let mut clamped = 0usize;
    for ((s, w), (&s_in, &e)) in l
        .synapses
        .iter()
        .zip(&weights)
        .zip(in_scales.iter().zip(&exps))
    {
        let s_w = s_v * (e as f64).exp2() / s_in as f64;
        let lo = -(w_limit + if spec.even_weights { 2.0 } else { 1.0 });
        let clamped_here = std::sync::atomic::AtomicUsize::new(0);
        let q = w
            .map_f32_to_i32(|x| {
                let v = x as f64 / s_w;
                let q = if spec.even_weights {
                    2.0 * nmc_ir::round_even(v / 2.0)
                } else {
                    nmc_ir::round_even(v)
                };
                if q > w_limit || q < lo {
                    clamped_here.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                q.clamp(lo, w_limit) as i32
            })
            .ok_or("weights have no float values")?;
        clamped += clamped_here.into_inner();
        let weight = out.consts.add(q);
        synapses.push(match s {
            Synapse::Dense { .. } => Synapse::Dense { weight },
            Synapse::Conv { geom, .. } => Synapse::Conv {
                weight,
                geom: geom.clone(),
            },
        });
    }
    if clamped > 0 {
        notes.push(format!("{clamped} weight(s) clamped to the mantissa range"));
    }
    let qbias = if bias.is_empty() {
        None
    } else {
        let vals: Vec<i32> = bias
            .iter()
            .map(|b| {
                let v = nmc_ir::round_even(*b as f64 / s_v);
                let mut exp = 0;
                while exp < spec.bias_exp_max
                    && nmc_ir::round_even(v / (1u64 << exp) as f64).abs() > mant_max
                {
                    exp += 1;
                }
                let mant = nmc_ir::round_even(v / (1u64 << exp) as f64).clamp(-mant_max, mant_max);
                ((mant as i64) << exp) as i32
            })
            .collect();
        if vals.iter().all(|v| *v == 0) {
            None
        } else {
            Some(out.consts.add(Constant::i32(vec![vals.len()], vals)))
        }
    };
    let quant = LayerQuant {
        weight_exp: exps,
        bias: qbias,
        state_bits: spec.state_bits,
        act_shift,
        act_min,
        act_max,
        scale: s_out,
        mode: nmc_ir::QuantMode::Shift,
    };
    let layer = Layer {
        synapses,
        bias: None,
        neuron: l.neuron,
        pool: l.pool.clone(),
        quant: Some(quant),
    };
    Ok((layer, s_out, notes))
}
