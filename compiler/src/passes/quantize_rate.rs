//! `quantize-rate`: turns the canonical float graph into integer integrate-and-fire layers for
//! the `rate` execution mode (ARCHITECTURE.md §4), the mode of Speck. The time-stepped integer
//! semantics are those of `nmc_ir::Interpreter::run_steps`.
//!
//! What an ANN means in rate mode, layer by layer (sinabs' ANN → SNN conversion, docs/chips.md §2):
//! - **neurons**: a ReLU becomes an integrate-and-fire neuron with sinabs' `from_model` defaults,
//!   threshold 1.0, subtractive reset (`MembraneSubtract`), lower bound −1.0; its spike rate per
//!   timestep approximates the ReLU's value. A native `ai.nmc` IF keeps its own parameters. A
//!   layer without activation (a linear readout) gets the same default IF neuron, as sinabs'
//!   `add_spiking_output` does, so negative values read as zero. A clip's bounds are not kept
//!   (rates have no upper bound). LIF, CubaLIF and SigmaDelta have no rate-mode meaning here.
//! - **pooling**: sum pooling of events; average pooling becomes sum pooling and the next layer's
//!   weights are divided by the window size (sinabs: `AvgPool2d(k)` → `SumPool2d(k)` with the next
//!   weights rescaled by `1/(k·k)`). Max pooling has no event equivalent and is rejected. A
//!   pooling of an input alone ([`input_pool`]) is not re-encoded by a population: it becomes an
//!   exact pass-through (weight = threshold = 1, no spike cap) followed by the sum pool, and what
//!   one pooled event stands for moves to its consumers' weights — on Speck it runs in the DVS
//!   layer, which sums events as they are (sinabs folds such a pooling into its `DVSLayer`,
//!   docs/chips.md §2.8).
//! - **sums of spike maps** ([`fold_merges`]): an `Add` of two maps read only by a convolution
//!   or dense layer (canonicalize's two-group identity population with a linear neuron) is read
//!   by that layer directly, one synapse group per operand with the layer's own kernel, since
//!   `W·(a + b) = W·a + W·b`. This is sinabs' `Merge` (docs/chips.md §2.9): spike maps are summed
//!   as events before one convolution; a population of its own would instead re-encode the sum
//!   through an integrate-and-fire neuron (a layer sinabs does not have, and one core more).
//!   Where the operands' spikes stand for the same amount, both groups get the same integers.
//! - **inputs**: the dense input is rate-encoded: its full scale `x_max` (the largest calibration
//!   value, or 1.0 without calibration) is one event per timestep, with 255 levels below it
//!   ([`nmc_ir::RateEncoder`]). One input event therefore stands for `x_max`, so the first layer's
//!   weights are multiplied by `x_max`. Negative inputs encode as zero (polarity belongs in
//!   channels, as a DVS's ON/OFF channels).
//! - **discretisation**, per layer, exactly as sinabs' `discretize_conv_spike_`
//!   (`backend/dynapcnn/discretize.py`, docs/chips.md §2.3): one common scale
//!   `s = min(scale(W, 8 bits), scale(b, 8 bits), scale((v_min, threshold), 16 bits))`, where
//!   `scale(x, n) = |(2^(n−1) − 1) / max(x)|` if `|min(x)| ≤ |max(x)| · 2^(n−1)/(2^(n−1) − 1)`, else
//!   `|−2^(n−1) / min(x)|` (a lower bound of −∞, sinabs' `min_v_mem = None`, counts as −2^15);
//!   then weights, bias, threshold and lower bound are multiplied by `s`
//!   and rounded half to even (`torch.round`). Like sinabs, everything is computed in `f32`. A
//!   layer without a bias uses zeros for `b` (whose scale is infinite); a layer with a bias keeps
//!   it even if it rounds to zeros, because it still occupies bias memory.
//!
//! The output of the chip graph is the last layer's spike count; its `Dequantize` scale is the
//! float value of one spike per timestep, so `nmc run`'s float output `counts · scale / T`
//! approximates the float model's (ReLU'd) output.

use super::{describe, PassError, QuantReport};
pub use nmc_backend::RateOptions;
use nmc_ir::{
    Constant, Graph, Layer, LayerQuant, Neuron, NodeId, Op, Output, PoolKind, QuantParams, Reset,
    SpikeQuant, SpikingModel, Synapse,
};
use std::collections::{BTreeMap, BTreeSet};

const PASS: &str = "quantize-rate";

/// The IF neuron a ReLU (or a linear readout) becomes: sinabs `from_model` defaults.
pub const DEFAULT_IF: SpikingModel = SpikingModel::If {
    threshold: 1.0,
    reset: Reset::Subtract,
    v_min: -1.0,
};

/// sinabs `determine_discretization_scale`, in `f32` like its torch tensors.
pub fn discretization_scale(values: &[f32], bits: u32) -> f32 {
    let min_disc = -((1i64 << (bits - 1)) as f32);
    let max_disc = ((1i64 << (bits - 1)) - 1) as f32;
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Python computes abs(min_disc / max_disc) in f64; torch multiplies the f32 tensor by it in f32.
    let ratio = ((min_disc as f64) / (max_disc as f64)).abs() as f32;
    if lo.abs() <= hi.abs() * ratio {
        (max_disc / hi).abs()
    } else {
        (min_disc / lo).abs()
    }
}

/// Rejects spiking neurons in a graph headed for a graded-mode target.
pub fn require_graded(graph: &Graph, target: &str) -> Result<(), PassError> {
    for id in graph.ids() {
        let n = graph.node(id);
        let model = match &n.op {
            Op::Layer(Layer {
                neuron: Neuron::Spiking(m),
                ..
            }) => m,
            Op::Act(nmc_ir::Activation::Spiking(m)) => m,
            _ => continue,
        };
        let message = match model {
            SpikingModel::If { .. } => format!(
                "`if` neurons need the rate execution mode; {target} runs graded neurons (compile for speck, or export ReLUs)"
            ),
            SpikingModel::SigmaDelta { .. } => format!(
                "`sigma_delta` nodes are not lowered to {target} yet; export the activation itself (ReLU), which nmc compiles to graded sigma-delta neurons"
            ),
            SpikingModel::Lif { .. } | SpikingModel::CubaLif { .. } => format!(
                "`{}` neurons need the snn execution mode, which nmc does not implement yet",
                model.name()
            ),
        };
        return Err(PassError {
            pass: "quantize",
            node: describe(graph, id),
            message,
        });
    }
    Ok(())
}

/// Quantises a canonical graph for rate mode. `calibration` may be empty.
pub fn quantize_rate(
    graph: &Graph,
    calibration: &[Vec<Vec<f32>>],
    opts: &RateOptions,
) -> Result<(Graph, QuantReport), PassError> {
    let mut report = QuantReport::default();
    // 0. Sums of spike maps read by one layer become its synapse groups (sinabs' Merge).
    let folded = fold_merges(graph, &mut report.notes);
    let graph = folded.as_ref().unwrap_or(graph);
    let err = |id: NodeId, message: String| PassError {
        pass: PASS,
        node: describe(graph, id),
        message,
    };

    // 1. The chip part ends where a float tail starts.
    let chip_outputs = super::quantize::chip_outputs(graph, &mut report.notes);

    // 2. Input full scales.
    let mut full: Vec<f32> = vec![0.0; graph.inputs.len()];
    let mut negative = false;
    for s in calibration {
        for (k, x) in s.iter().enumerate().take(full.len()) {
            for v in x {
                full[k] = full[k].max(*v);
                negative |= *v < 0.0;
            }
        }
    }
    if calibration.is_empty() {
        report.ranges_from = "rate encoding of inputs assumed in [0, 1]".into();
        report.notes.push(
            "inputs were not calibrated: full scale 1.0 (one event per timestep) is assumed; pass --calibrate inputs.npy to use the data's range"
                .into(),
        );
        full.iter_mut().for_each(|f| *f = 1.0);
    } else {
        report.ranges_from = format!("calibration ({} samples) of the input", calibration.len());
        for f in &mut full {
            if !(f.is_finite() && *f > 0.0) {
                *f = 1.0;
            }
        }
    }
    if negative {
        report.notes.push(
            "calibration inputs have negative values; rate encoding sends no events for them (put polarity in channels)"
                .into(),
        );
    }

    // 3. Build the integer graph.
    let order = graph
        .topo_order()
        .map_err(|c| err(c.0, "the graph has a cycle".into()))?;
    let needed = needed_nodes(graph, &chip_outputs);
    let mut out = Graph::new(graph.name.clone());
    let mut map: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    // Factor by which a consumer's float weights are multiplied for events of this value: the
    // input's full scale, or 1/(k·k) after an average pool turned into a sum pool.
    let mut factor: BTreeMap<NodeId, f32> = BTreeMap::new();
    for (k, &i) in graph.inputs.iter().enumerate() {
        let n = graph.node(i);
        let new_in = out.add_input(n.ty.clone(), n.name.clone().unwrap_or_default());
        let qn = out.add(
            Op::Quantize(QuantParams {
                scale: full[k] / opts.input_levels as f32,
                min: 0,
                max: opts.input_levels,
            }),
            vec![new_in],
            n.ty.with_dtype(nmc_ir::DType::I32),
            None,
        );
        map.insert(i, qn);
        factor.insert(i, full[k]);
    }
    // Rescale populations already made, by operand.
    let mut rescaled: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    for id in order {
        if map.contains_key(&id) || !needed.contains(&id) {
            continue;
        }
        let node = graph.node(id);
        let ity = node.ty.with_dtype(nmc_ir::DType::I32);
        match &node.op {
            Op::Layer(l) if input_pool(graph, id, l).is_some() => {
                // A pooling of the input alone: events are summed as they are, and what one
                // summed event stands for (the input's full scale, over k·k for an average
                // pool) moves to the consumers' weights, as for any average pool turned sum.
                let Some((layer, per_event)) = input_pool(graph, id, l) else {
                    unreachable!("the arm's guard matched")
                };
                let f_out = factor[&node.inputs[0]] * per_event;
                let layer = pass_through(&mut out, layer, f_out);
                report.notes.push(format!(
                    "{}: pooling of the input runs as an exact sum pool of its events (speck: the DVS layer's pooling); one pooled event stands for {f_out} in its consumers' weights",
                    describe(graph, id)
                ));
                let srcs: Vec<NodeId> = node.inputs.iter().map(|i| map[i]).collect();
                map.insert(id, out.add(Op::Layer(layer), srcs, ity, node.name.clone()));
                factor.insert(id, f_out);
            }
            Op::Layer(l) => {
                let factors: Vec<f32> = node.inputs.iter().map(|i| factor[i]).collect();
                let (layer, f_out, notes) =
                    quantize_layer(graph, &mut out, l, &factors, opts).map_err(|m| err(id, m))?;
                report.notes.extend(
                    notes
                        .into_iter()
                        .map(|n| format!("{}: {n}", describe(graph, id))),
                );
                let srcs: Vec<NodeId> = node.inputs.iter().map(|i| map[i]).collect();
                map.insert(id, out.add(Op::Layer(layer), srcs, ity, node.name.clone()));
                factor.insert(id, f_out);
            }
            // Operands whose spikes stand for different amounts: each one that is not at the
            // plain integrate-and-fire factor 1.0 is read through a rescale population (an
            // identity synapse whose weight is its factor, into default IF neurons), so one
            // spike means 1.0 on every channel of the concatenation.
            Op::Concat { axis }
                if node
                    .inputs
                    .iter()
                    .any(|i| factor[i] != factor[&node.inputs[0]]) =>
            {
                let mut srcs = Vec::with_capacity(node.inputs.len());
                for &o in &node.inputs {
                    if factor[&o] == 1.0 {
                        srcs.push(map[&o]);
                        continue;
                    }
                    if let Some(&r) = rescaled.get(&o) {
                        srcs.push(r);
                        continue;
                    }
                    let (scratch, float, shape3) =
                        super::joins::identity_layer(&out.ty(map[&o]).shape, Neuron::Relu);
                    let (layer, f, _) =
                        quantize_layer(&scratch, &mut out, &float, &[factor[&o]], opts)
                            .map_err(|m| err(id, m))?;
                    debug_assert_eq!(f, 1.0);
                    let name = super::joins::rescale_name(graph, o);
                    let r = super::joins::add_rescale(&mut out, map[&o], layer, shape3, name);
                    report.notes.push(format!(
                        "{}: operand {} (one spike = {}) is read through a rescale population so that one spike means 1.0 on every channel",
                        describe(graph, id),
                        describe(graph, o),
                        factor[&o]
                    ));
                    rescaled.insert(o, r);
                    srcs.push(r);
                }
                map.insert(
                    id,
                    out.add(Op::Concat { axis: *axis }, srcs, ity, node.name.clone()),
                );
                factor.insert(id, 1.0);
            }
            _ => super::quantize::carry(
                id,
                node,
                ity,
                &mut map,
                &mut factor,
                &mut out,
                "in rate mode (not canonical)",
            )
            .map_err(|m| err(id, m))?,
        }
    }
    for o in &chip_outputs {
        let src = map[&o.node];
        if !matches!(
            graph.node(o.node).op,
            Op::Layer(_) | Op::Reshape | Op::FakeQuant { .. }
        ) {
            return Err(err(
                o.node,
                "a rate-mode output must be a layer's spike counts".into(),
            ));
        }
        let ty = out.ty(src).with_dtype(nmc_ir::DType::F32);
        // One spike per step stands for 1.0 of the float value, or 1/(k·k) after a sum pool that
        // replaced an average pool.
        let dq = out.add(
            Op::Dequantize {
                scale: factor[&o.node],
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
    Ok((super::finished(out, PASS)?, report))
}

/// A pooling of a graph input and nothing else (canonicalize's identity population with a pool:
/// a depthwise 1×1 convolution of weight 1.0, no bias, a linear or ReLU neuron, an average or
/// sum pool with stride = window and no padding): its geometry and what one pooled event of it
/// stands for relative to one input event (1/(kh·kw) for an average pool, 1 for a sum pool).
pub fn input_pool(graph: &Graph, id: NodeId, l: &Layer) -> Option<((Synapse, nmc_ir::Pool), f32)> {
    let node = graph.node(id);
    let [src] = node.inputs.as_slice() else {
        return None;
    };
    if !matches!(graph.node(*src).op, Op::Input { .. })
        || l.bias.is_some()
        || !matches!(l.neuron, Neuron::Linear | Neuron::Relu)
    {
        return None;
    }
    let [syn @ Synapse::Conv { weight, geom }] = l.synapses.as_slice() else {
        return None;
    };
    let c = *graph.ty(*src).shape.first()?;
    if geom.kernel != [1, 1]
        || geom.strides != [1, 1]
        || geom.pads != [0; 4]
        || geom.dilations != [1, 1]
        || geom.groups != c
        || !graph
            .consts
            .get(*weight)
            .to_f32()?
            .iter()
            .all(|w| *w == 1.0)
    {
        return None;
    }
    let p = l.pool.as_ref()?;
    if p.pads != [0; 4] || p.strides != p.kernel || p.kind == PoolKind::Max {
        return None;
    }
    let per_event = match p.kind {
        PoolKind::Avg => 1.0 / (p.kernel[0] * p.kernel[1]) as f32,
        _ => 1.0,
    };
    Some(((syn.clone(), p.clone()), per_event))
}

/// The integer form of an [`input_pool`]: weight 1, threshold 1, lower bound 0 and no cap a count
/// can reach (`act_max = i32::MAX`), so every input event becomes exactly one event of the sum
/// pool in the same step and the state stays 0: `Interpreter::run_steps` sums the events, as
/// Speck's DVS layer does (docs/chips.md §2.1, §2.8). (Only a pixel with more than 2^31 − 1
/// events in one step would be capped, which takes an event file far beyond the 2 GiB input
/// limit.)
fn pass_through(out: &mut Graph, (syn, pool): (Synapse, nmc_ir::Pool), scale: f32) -> Layer {
    let Synapse::Conv { weight: _, geom } = syn else {
        unreachable!("input_pool returns convolutions")
    };
    let c = geom.groups;
    let weight = out.consts.add(Constant::i32(vec![c, 1, 1, 1], vec![1; c]));
    let spk = SpikeQuant {
        threshold: 1,
        v_min: 0,
        reset: Reset::Subtract,
    };
    Layer {
        synapses: vec![Synapse::Conv { weight, geom }],
        bias: None,
        neuron: Neuron::Spiking(SpikingModel::If {
            threshold: 1.0,
            reset: Reset::Subtract,
            v_min: 0.0,
        }),
        pool: Some(nmc_ir::Pool {
            kind: PoolKind::Sum,
            count_include_pad: false,
            ..pool
        }),
        quant: Some(LayerQuant {
            weight_exp: vec![0],
            bias: None,
            state_bits: 48,
            act_shift: 0,
            act_min: 0,
            act_max: i32::MAX,
            scale,
            mode: nmc_ir::QuantMode::Spiking(spk),
        }),
    }
}

/// Whether `l` is a sum of its operands and nothing else: no bias, pool or neuron, every group
/// an identity (a depthwise 1×1 convolution of weight 1.0, or a dense identity matrix).
fn is_plain_sum(graph: &Graph, l: &Layer) -> bool {
    let identity = |s: &Synapse| {
        let Some(w) = graph
            .consts
            .try_get(s.weight())
            .and_then(|c| c.to_f32().map(|v| (c.shape.clone(), v)))
        else {
            return false;
        };
        let (shape, v) = w;
        match s {
            Synapse::Conv { geom, .. } => {
                geom.kernel == [1, 1]
                    && geom.strides == [1, 1]
                    && geom.pads == [0; 4]
                    && geom.dilations == [1, 1]
                    && shape.len() == 4
                    && shape[1..] == [1, 1, 1]
                    && geom.groups == shape[0]
                    && v.iter().all(|x| *x == 1.0)
            }
            Synapse::Dense { .. } => {
                let n = shape[0];
                shape.len() == 2
                    && shape[1] == n
                    && v.iter()
                        .enumerate()
                        .all(|(i, &x)| x == if i / n == i % n { 1.0 } else { 0.0 })
            }
        }
    };
    l.synapses.len() >= 2
        && l.bias.is_none()
        && l.pool.is_none()
        && l.quant.is_none()
        && l.neuron == Neuron::Linear
        && l.synapses.iter().all(identity)
}

/// Folds every plain sum ([`is_plain_sum`]) whose only reader is a one-group layer into that
/// layer: the layer reads the sum's operands, one synapse group each, all with its own kernel
/// (`W·(a + b) = W·a + W·b`, exact in the float graph). This is what sinabs' `Merge` does on
/// Speck (events of both maps reach one core and one kernel, docs/chips.md §2.9); without it
/// the sum would become an integrate-and-fire population of its own. A sum that is an output,
/// has several readers or feeds a pooling is left alone (it stays a population). `None` when
/// there is nothing to fold.
pub fn fold_merges(graph: &Graph, notes: &mut Vec<String>) -> Option<Graph> {
    let users = graph.users();
    let outputs: BTreeSet<NodeId> = graph.outputs.iter().map(|o| o.node).collect();
    let mut folds: Vec<(NodeId, NodeId, Layer)> = Vec::new();
    for id in graph.ids() {
        let Op::Layer(reader) = &graph.node(id).op else {
            continue;
        };
        let [sum] = graph.node(id).inputs[..] else {
            continue;
        };
        let Op::Layer(s) = &graph.node(sum).op else {
            continue;
        };
        if reader.synapses.len() != 1
            || !is_plain_sum(graph, s)
            || users[sum.index()] != [id]
            || outputs.contains(&sum)
        {
            continue;
        }
        let mut l = reader.clone();
        l.synapses = vec![reader.synapses[0].clone(); s.synapses.len()];
        folds.push((id, sum, l));
        notes.push(format!(
            "{}: reads the sum {} of {} spike maps directly, one synapse group per operand with its kernel (sinabs' Merge)",
            describe(graph, id),
            describe(graph, sum),
            s.synapses.len()
        ));
    }
    if folds.is_empty() {
        return None;
    }
    let mut g = graph.clone();
    for (id, sum, l) in folds {
        let node = g.node_mut(id);
        node.op = Op::Layer(l);
        node.inputs = graph.node(sum).inputs.clone();
    }
    Some(g.into_compact())
}

/// Nodes the chip outputs depend on.
fn needed_nodes(graph: &Graph, outputs: &[Output]) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<NodeId> = outputs.iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(graph.node(n).inputs.iter().copied());
        }
    }
    seen
}

/// A float IF neuron: threshold, lower bound, reset.
type IfParams = (f32, f32, Reset);

/// The IF neuron of a layer, and notes.
fn neuron_of(l: &Layer, target: &str) -> Result<(IfParams, Vec<String>), String> {
    let SpikingModel::If {
        threshold,
        reset,
        v_min,
    } = DEFAULT_IF
    else {
        unreachable!("DEFAULT_IF is an IF")
    };
    let default = (threshold, v_min, reset);
    Ok(match l.neuron {
        Neuron::Relu => (default, vec![]),
        Neuron::Linear => (
            default,
            vec![
                "no activation: it gets an integrate-and-fire neuron (threshold 1.0, as sinabs' add_spiking_output), so its negative values read as 0"
                    .into(),
            ],
        ),
        Neuron::Clip { lo, hi } => (
            default,
            vec![format!(
                "clip [{lo}, {hi}] runs as integrate-and-fire: spike rates are not bounded above and read negative values as 0"
            )],
        ),
        Neuron::Spiking(SpikingModel::If {
            threshold,
            reset,
            v_min,
        }) => ((threshold, v_min, reset), vec![]),
        Neuron::Spiking(m) => {
            return Err(format!(
                "`{}` neurons cannot run on {target}: it has integrate-and-fire neurons only (sinabs IAFSqueeze); leak exists only as a negative bias",
                m.name()
            ))
        }
    })
}

/// Quantises one layer; returns it, the weight factor for its consumers, and notes.
fn quantize_layer(
    graph: &Graph,
    out: &mut Graph,
    l: &Layer,
    in_factors: &[f32],
    opts: &RateOptions,
) -> Result<(Layer, f32, Vec<String>), String> {
    let ((threshold, v_min, reset), mut notes) = neuron_of(l, opts.target)?;
    // No lower bound (NIR's IF has none) is sinabs' `min_v_mem = None`, which it discretises as
    // −2^15 (`discretize.py`, docs/chips.md §2.3).
    let v_min = if v_min == f32::NEG_INFINITY {
        notes.push(
            "no lower bound on the membrane: discretised as sinabs does for min_v_mem None (-2^15), which caps the scale at 1 (weights round to whole thresholds); a lower bound such as -threshold keeps 8-bit weight precision".into(),
        );
        -32768.0
    } else {
        v_min
    };
    let mut pool = l.pool.clone();
    let mut f_out = 1.0f32;
    if let Some(p) = &mut pool {
        match p.kind {
            PoolKind::Max => {
                return Err(format!(
                    "max pooling cannot run on {}: events are pooled by summing (use average pooling, which becomes sum pooling as in sinabs)",
                    opts.target
                ))
            }
            // Legalisation: at -O2 the e-graph's `avgpool-to-sumpool` has usually made this sum
            // pool already (same 1/(k·k) product on the consumer's weights); -O0 graphs and
            // pools it may not touch (shared or output maps) are converted here.
            PoolKind::Avg => {
                if p.pads != [0; 4] && !p.count_include_pad {
                    return Err(
                        "average pooling with padding that excludes the pads has no sum-pooling equivalent".into(),
                    );
                }
                p.kind = PoolKind::Sum;
                p.count_include_pad = false;
                f_out = 1.0 / (p.kernel[0] * p.kernel[1]) as f32;
            }
            PoolKind::Sum => {}
        }
    }
    // Effective float weights per group (input full scale or average-pool rescaling folded in).
    let mut groups: Vec<Vec<f32>> = Vec::with_capacity(l.synapses.len());
    for (s, &f) in l.synapses.iter().zip(in_factors) {
        let w = graph
            .consts
            .get(s.weight())
            .to_f32()
            .ok_or("weights have no float values")?;
        groups.push(if f == 1.0 {
            w
        } else {
            w.into_iter().map(|x| x * f).collect()
        });
    }
    let channels = graph.consts.get(l.synapses[0].weight()).shape[0];
    let bias: Option<Vec<f32>> = match l.bias {
        Some(b) => Some(graph.consts.get(b).to_f32().ok_or("bias has no values")?),
        None => None,
    };
    if groups
        .iter()
        .flatten()
        .chain(bias.iter().flatten())
        .any(|v| !v.is_finite())
    {
        return Err("weights or bias are not finite".into());
    }
    // sinabs: scale_w over the weights, scale_b over the bias (zeros when absent), scale_t over
    // (min_v_mem, threshold); the common scale is their minimum.
    let all_w: Vec<f32> = groups.iter().flatten().copied().collect();
    let zeros = vec![0f32; channels];
    let s_w = discretization_scale(&all_w, opts.weight_bits);
    let s_b = discretization_scale(bias.as_deref().unwrap_or(&zeros), opts.bias_bits);
    let s_t = discretization_scale(&[v_min, threshold], opts.state_bits);
    let s = s_w.min(s_b).min(s_t);
    if !(s.is_finite() && s > 0.0) {
        return Err(format!(
            "no finite discretisation scale (weights {s_w}, bias {s_b}, thresholds {s_t})"
        ));
    }
    let round = |x: f32, bits: u32| -> (i32, bool) {
        let max = ((1i64 << (bits - 1)) - 1) as f32;
        let r = nmc_ir::round_even_f32(x * s);
        (r.clamp(-max - 1.0, max) as i32, r > max || r < -max - 1.0)
    };
    let mut clamped = 0usize;
    let mut synapses = Vec::with_capacity(l.synapses.len());
    for (syn, w) in l.synapses.iter().zip(&groups) {
        let shape = graph.consts.get(syn.weight()).shape.clone();
        let q: Vec<i32> = w
            .iter()
            .map(|x| {
                let (v, c) = round(*x, opts.weight_bits);
                clamped += usize::from(c);
                v
            })
            .collect();
        let weight = out.consts.add(Constant::i32(shape, q));
        synapses.push(match syn {
            Synapse::Dense { .. } => Synapse::Dense { weight },
            Synapse::Conv { geom, .. } => Synapse::Conv {
                weight,
                geom: geom.clone(),
            },
        });
    }
    let qbias = bias.map(|b| {
        let v: Vec<i32> = b
            .iter()
            .map(|x| {
                let (v, c) = round(*x, opts.bias_bits);
                clamped += usize::from(c);
                v
            })
            .collect();
        out.consts.add(Constant::i32(vec![v.len()], v))
    });
    if clamped > 0 {
        notes.push(format!("{clamped} value(s) clamped to the integer range"));
    }
    let (mut th, _) = round(threshold, opts.state_bits);
    if th < 1 {
        notes.push(format!(
            "threshold {threshold} rounds to {th} at scale {s}; raised to 1"
        ));
        th = 1;
    }
    let (vm, _) = round(v_min, opts.state_bits);
    let quant = LayerQuant {
        weight_exp: vec![0; synapses.len()],
        bias: qbias,
        state_bits: opts.state_bits,
        act_shift: 0,
        act_min: 0,
        act_max: ((1i64 << (opts.state_bits - 1)) - 1) as i32,
        scale: f_out,
        mode: nmc_ir::QuantMode::Spiking(SpikeQuant {
            threshold: th,
            v_min: vm.min(0),
            reset,
        }),
    };
    let layer = Layer {
        synapses,
        bias: None,
        neuron: Neuron::Spiking(SpikingModel::If {
            threshold,
            reset,
            v_min,
        }),
        pool,
        quant: Some(quant),
    };
    Ok((layer, f_out, notes))
}

/// Whether a graph is in rate mode (has spiking integer layers).
pub fn is_rate_graph(graph: &Graph) -> bool {
    graph
        .nodes
        .iter()
        .any(|n| matches!(&n.op, Op::Layer(Layer { quant: Some(q), .. }) if q.spiking().is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_follows_sinabs() {
        // Positive-dominated: 127 / max.
        assert_eq!(discretization_scale(&[-0.25, 0.5], 8), 254.0);
        // Negative-dominated: 128 / |min|.
        assert_eq!(discretization_scale(&[-0.5, 0.25], 8), 256.0);
        // Thresholds (−1, 1) at 16 bits: |−1| ≤ 1 · 32768/32767, so 32767.
        assert_eq!(discretization_scale(&[-1.0, 1.0], 16), 32767.0);
        // sinabs' fallback min_v_mem = −2^15 with threshold 1 gives scale 1.
        assert_eq!(discretization_scale(&[-32768.0, 1.0], 16), 1.0);
        // All-zero bias: infinite scale, never the minimum.
        assert!(discretization_scale(&[0.0, 0.0], 8).is_infinite());
    }
}
