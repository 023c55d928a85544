//! `quantize-snn`: turns a float graph of native spiking neurons (CubaLIF, LIF, IF: from NIR,
//! lava-dl netx or the `ai.nmc` ONNX domain) into Loihi's fixed-point CUBA-LIF layers, the `snn`
//! execution mode (integer semantics: `nmc_ir::CubaQuant` and the snn section of
//! `nmc_ir::Interpreter`'s docs).
//!
//! The float graph's neurons are discrete-time, one step per timestep (`nmc_ir::SpikingModel`):
//! `i ← (1 − 1/τ_syn)·i + w_in·x`, `v ← (1 − 1/τ_mem)·v + r·i + v_leak/τ_mem`, a spike when
//! `v > threshold`. Per layer (docs/chips.md §1.4, §1.6):
//! - **decays**: `du = round(4096/τ_syn)`, `dv = round(4096/τ_mem)` (an infinite τ is 0: no
//!   decay). LIF has no current state: `du = 4096`; IF neither leaks: `du = 4096, dv = 0`. An IF
//!   neuron so becomes Loihi's neuron without leak: it fires at most once per step, when
//!   `v > threshold` (sinabs' IF fires at `v ≥ threshold`, possibly several times a step); the
//!   compile report says so.
//! - **gain**: Lava's current is the voltage's input, so `r·w_in` moves into the weights and the
//!   bias (`W' = r·w_in·W`), and `v_leak/τ_mem` becomes the voltage bias.
//! - **scale** `s`: a layer whose `W'`, bias and threshold are all integers with `|W'| ≤ 254` is
//!   already in Loihi's units, `s = 1` (lava-dl exports integers: a netx file's layers compile to
//!   exactly the registers Lava loads); otherwise `s` is the largest power of two with
//!   `max|W'|·s ≤ 254` and `threshold·s < 2^17`. Then `W = round(W'·s)`, `vth = round(threshold·s)`,
//!   bias `round(b'·s)` per step, and the voltage terms in state units (`· s · 2^6`).
//! - **weights** then go through what Lava does with integer weights when it loads them: netx's
//!   `optimize_weight_bits` (sign mode, weight exponent, mantissa bits) and `Dense`'s bit-accurate
//!   `clip_weights`/`truncate_weights` (a mixed-sign matrix loses its least significant bit). The
//!   truncation leaves every weight a multiple of `2^−exp`, so the exponent is folded into the
//!   stored weights exactly and every synapse group has exponent 0.
//!
//! The chip graph's inputs take spikes (binary, or graded up to 255 per element and step) and its
//! outputs are the last layers' spikes; `Dequantize` scale 1.0, so a count is a count.

use super::{describe, PassError, QuantReport};
use nmc_ir::{
    Constant, CubaQuant, Graph, Layer, LayerQuant, Neuron, NodeId, Op, Output, QuantParams, Reset,
    SpikingModel, Synapse, CUBA_STATE_LIMIT,
};
use std::collections::BTreeMap;

const PASS: &str = "quantize-snn";

/// Loihi's left shift aligning the synaptic input and the threshold with the 24-bit state.
pub const ACT_SHIFT: u32 = 6;
/// Largest integer weight before Lava's own optimisation (netx clips to `[-256, 254]`).
const MAX_WEIGHT: f32 = 254.0;
/// Thresholds are 17-bit unsigned mantissas.
const MAX_VTH: f32 = ((1 << 17) - 1) as f32;
/// Largest graded input spike.
pub const MAX_INPUT_SPIKE: i32 = 255;

/// Whether a float graph is a spiking network for the snn mode: it has LIF or CubaLIF neurons,
/// or (with `if_too`, for a chip without a rate mode) integrate-and-fire neurons, which a rate
/// mode target runs as rate mode instead.
pub fn is_snn(graph: &Graph, if_too: bool) -> bool {
    let snn = |m: &SpikingModel| match m {
        SpikingModel::Lif { .. } | SpikingModel::CubaLif { .. } => true,
        SpikingModel::If { .. } => if_too,
        SpikingModel::SigmaDelta { .. } => false,
    };
    graph.ids().any(|id| match &graph.node(id).op {
        Op::Layer(Layer {
            neuron: Neuron::Spiking(m),
            ..
        })
        | Op::Act(nmc_ir::Activation::Spiking(m)) => snn(m),
        _ => false,
    })
}

/// The float neuron of a layer in CUBA form: (τ_syn, τ_mem, gain r·w_in, v_leak, threshold,
/// reset, v_min).
struct Cuba {
    tau_syn: f32,
    tau_mem: f32,
    gain: f32,
    v_leak: f32,
    threshold: f32,
    reset: Reset,
    v_min: f32,
}

fn cuba_of(n: &Neuron) -> Result<Cuba, String> {
    Ok(match *n {
        Neuron::Spiking(SpikingModel::CubaLif {
            tau_syn,
            tau_mem,
            r,
            v_leak,
            w_in,
            threshold,
            reset,
            v_min,
        }) => Cuba {
            tau_syn,
            tau_mem,
            gain: r * w_in,
            v_leak,
            threshold,
            reset,
            v_min,
        },
        Neuron::Spiking(SpikingModel::Lif {
            tau_mem,
            r,
            v_leak,
            threshold,
            reset,
            v_min,
        }) => Cuba {
            tau_syn: 1.0,
            tau_mem,
            gain: r,
            v_leak,
            threshold,
            reset,
            v_min,
        },
        Neuron::Spiking(SpikingModel::If {
            threshold,
            reset,
            v_min,
        }) => Cuba {
            tau_syn: 1.0,
            tau_mem: f32::INFINITY,
            gain: 1.0,
            v_leak: 0.0,
            threshold,
            reset,
            v_min,
        },
        Neuron::Spiking(SpikingModel::SigmaDelta { .. }) => {
            return Err(
                "`sigma_delta` neurons are graded; an snn-mode network has CUBA-LIF, LIF or IF neurons only"
                    .into(),
            )
        }
        Neuron::Relu | Neuron::Clip { .. } | Neuron::Linear => {
            return Err(format!(
                "a {} population in a spiking network: the snn mode runs spiking neurons only (end the network with a spiking layer; its spike counts are the output)",
                match n {
                    Neuron::Relu => "ReLU",
                    Neuron::Clip { .. } => "clip",
                    _ => "linear (no activation)",
                }
            ))
        }
    })
}

/// `round(4096/τ)`: the 12-bit decay of a time constant in timesteps.
fn decay_of(tau: f32, what: &str) -> Result<u32, String> {
    if tau.is_infinite() && tau > 0.0 {
        return Ok(0);
    }
    if tau.is_nan() || tau < 1.0 {
        return Err(format!(
            "{what} = {tau} timesteps: Loihi's decay needs τ ≥ 1 step (or ∞)"
        ));
    }
    Ok(nmc_ir::round_even(4096.0 / f64::from(tau)) as u32)
}

/// Lava's sign modes of a weight matrix.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sign {
    Excitatory,
    Inhibitory,
    Mixed,
}

/// Integer weights → what Lava's bit-accurate `Dense` multiplies by, with the exponent folded in
/// (module docs). `w` are the integers netx reads from a file.
pub fn lava_weights(w: &[i32]) -> Result<Vec<i32>, String> {
    let (lo, hi) = w
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    if w.is_empty() || (lo == 0 && hi == 0) {
        return Ok(vec![0; w.len()]);
    }
    // netx `optimize_weight_bits`.
    let mut w: Vec<i64> = w.iter().map(|&x| i64::from(x)).collect();
    let (mut lo, mut hi) = (i64::from(lo), i64::from(hi));
    if (hi > 254 && lo < 0) || (lo < -256 && hi > 0) {
        w.iter_mut().for_each(|x| *x = (*x).clamp(-256, 254));
        lo = lo.max(-256);
        hi = hi.min(254);
    }
    let sign = if hi < 0 {
        Sign::Inhibitory
    } else if lo >= 0 {
        Sign::Excitatory
    } else {
        Sign::Mixed
    };
    let signed = i64::from(sign == Sign::Mixed);
    let scale = match sign {
        Sign::Mixed => (127.0 / hi as f64).min(-128.0 / lo as f64),
        Sign::Inhibitory => -256.0 / lo as f64,
        Sign::Excitatory => 255.0 / hi as f64,
    };
    let scale_bits = scale.log2().floor() as i64 + signed;
    if !(0..=16).contains(&scale_bits) {
        return Err(format!(
            "weights in [{lo}, {hi}] give Lava's weight exponent {}, outside what nmc folds exactly",
            -scale_bits
        ));
    }
    // The largest n ≤ 8 with every weight a multiple of 2^n (0 if none).
    let mut n = (1..=8i64)
        .rev()
        .find(|&n| w.iter().all(|x| x % (1 << n) == 0))
        .unwrap_or(0);
    n -= signed;
    let weight_bits = 8 - scale_bits - n;
    let w1: Vec<i64> = w.iter().map(|x| x << scale_bits).collect();
    // Dense's bit-accurate model: its own sign mode, clip to 8 bits, truncate to the mantissa.
    let (lo1, hi1) = w1
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let sign1 = if lo1 >= 0 {
        Sign::Excitatory
    } else if hi1 <= 0 {
        Sign::Inhibitory
    } else {
        Sign::Mixed
    };
    let mixed = i64::from(sign1 == Sign::Mixed);
    let truncate = 8 - weight_bits + mixed;
    if truncate < 0 {
        return Err(format!("Lava's weight truncation of {truncate} bits"));
    }
    let out = w1
        .iter()
        .map(|&x| {
            let neg = sign1 == Sign::Inhibitory;
            let mut y = if neg { -x } else { x };
            y = y.clamp(-256 * mixed, 255);
            y = (y >> truncate) << truncate;
            if neg {
                y = -y;
            }
            // `truncate ≥ scale_bits`, so the exponent −scale_bits divides exactly.
            debug_assert_eq!(y % (1 << scale_bits), 0);
            (y >> scale_bits) as i32
        })
        .collect();
    Ok(out)
}

/// The per-layer scale `s` (module docs).
fn layer_scale(w: &[f32], bias: &[f32], threshold: f32) -> f32 {
    let integral = |x: f32| x.fract() == 0.0;
    let wmax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    if w.iter().chain(bias).all(|x| integral(*x))
        && integral(threshold)
        && wmax <= MAX_WEIGHT
        && threshold <= MAX_VTH
    {
        return 1.0;
    }
    let mut k = 30i32;
    while k > -30 {
        let s = 2f32.powi(k);
        if wmax * s <= MAX_WEIGHT && threshold * s <= MAX_VTH {
            break;
        }
        k -= 1;
    }
    2f32.powi(k)
}

/// Quantises a canonical graph of spiking layers for the snn mode.
pub fn quantize_snn(graph: &Graph, target: &str) -> Result<(Graph, QuantReport), PassError> {
    let mut report = QuantReport {
        ranges_from: "snn mode: Loihi fixed-point CUBA-LIF registers from the neuron parameters"
            .into(),
        ..QuantReport::default()
    };
    let err = |id: NodeId, message: String| PassError {
        pass: PASS,
        node: describe(graph, id),
        message,
    };
    let order = graph
        .topo_order()
        .map_err(|c| err(c.0, "the graph has a cycle".into()))?;
    let mut out = Graph::new(graph.name.clone());
    let mut map: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut unit: BTreeMap<NodeId, f32> = BTreeMap::new();
    for &i in &graph.inputs {
        let n = graph.node(i);
        let new_in = out.add_input(n.ty.clone(), n.name.clone().unwrap_or_default());
        let q = out.add(
            Op::Quantize(QuantParams {
                scale: 1.0,
                min: 0,
                max: MAX_INPUT_SPIKE,
            }),
            vec![new_in],
            n.ty.with_dtype(nmc_ir::DType::I32),
            None,
        );
        map.insert(i, q);
        unit.insert(i, 1.0);
    }
    for id in order {
        if map.contains_key(&id) {
            continue;
        }
        let node = graph.node(id);
        let ity = node.ty.with_dtype(nmc_ir::DType::I32);
        match &node.op {
            Op::Layer(l) => {
                let (layer, note) =
                    quantize_layer(graph, &mut out, l, target).map_err(|m| err(id, m))?;
                report
                    .notes
                    .push(format!("{}: {note}", describe(graph, id)));
                let srcs: Vec<NodeId> = node.inputs.iter().map(|i| map[i]).collect();
                map.insert(id, out.add(Op::Layer(layer), srcs, ity, node.name.clone()));
                unit.insert(id, 1.0);
            }
            _ => super::quantize::carry(
                id,
                node,
                ity,
                &mut map,
                &mut unit,
                &mut out,
                &format!("in snn mode on {target}"),
            )
            .map_err(|m| err(id, m))?,
        }
    }
    for o in &graph.outputs {
        if !matches!(graph.node(o.node).op, Op::Layer(_) | Op::Reshape) {
            return Err(err(
                o.node,
                "an snn-mode output must be a spiking layer's spikes".into(),
            ));
        }
        let src = map[&o.node];
        let ty = out.ty(src).with_dtype(nmc_ir::DType::F32);
        let dq = out.add(Op::Dequantize { scale: 1.0 }, vec![src], ty, None);
        out.outputs.push(Output {
            node: dq,
            name: o.name.clone(),
        });
    }
    Ok((super::finished(out, PASS)?, report))
}

/// One layer to Loihi's CUBA registers; returns it and the conversion note the compile report
/// shows.
fn quantize_layer(
    graph: &Graph,
    out: &mut Graph,
    l: &Layer,
    target: &str,
) -> Result<(Layer, String), String> {
    let c = cuba_of(&l.neuron)?;
    if l.pool
        .as_ref()
        .is_some_and(|p| p.kind != nmc_ir::PoolKind::Sum)
    {
        return Err(format!(
            "{} pooling of spikes does not run in snn mode on {target}: pool spikes by sum (NIR SumPool2d), which sends each window's spike count",
            match l.pool.as_ref().map(|p| p.kind) {
                Some(nmc_ir::PoolKind::Max) => "max",
                _ => "average",
            }
        ));
    }
    let du = decay_of(c.tau_syn, "tau_syn")?;
    let dv = decay_of(c.tau_mem, "tau_mem")?;
    if !(c.threshold.is_finite() && c.threshold >= 0.0) {
        return Err(format!(
            "threshold {} must be finite and non-negative",
            c.threshold
        ));
    }
    if !c.gain.is_finite() || !c.v_leak.is_finite() {
        return Err(format!(
            "gain r·w_in = {} and v_leak = {} must be finite",
            c.gain, c.v_leak
        ));
    }
    let weights: Vec<Vec<f32>> = l
        .synapses
        .iter()
        .map(|s| {
            graph
                .consts
                .get(s.weight())
                .to_f32()
                .map(|w| w.iter().map(|x| x * c.gain).collect())
                .ok_or_else(|| "weights are not float".to_string())
        })
        .collect::<Result<_, _>>()?;
    let bias: Vec<f32> = match l.bias {
        Some(b) => graph
            .consts
            .get(b)
            .to_f32()
            .ok_or("bias is not float")?
            .iter()
            .map(|x| x * c.gain)
            .collect(),
        None => Vec::new(),
    };
    let all: Vec<f32> = weights.iter().flatten().copied().collect();
    if all.iter().chain(&bias).any(|x| !x.is_finite()) {
        return Err("weights and bias must be finite".into());
    }
    let s = layer_scale(&all, &bias, c.threshold);
    let to_int = |x: f32| nmc_ir::round_even(f64::from(x) * f64::from(s));
    let mut synapses = Vec::with_capacity(l.synapses.len());
    let mut clipped = false;
    for (syn, w) in l.synapses.iter().zip(&weights) {
        let ints: Vec<i32> = w
            .iter()
            .map(|x| {
                let v = to_int(*x);
                clipped |= !(-256.0..=254.0).contains(&v);
                v.clamp(-256.0, 254.0) as i32
            })
            .collect();
        let lava = lava_weights(&ints)?;
        let shape = graph.consts.get(syn.weight()).shape.clone();
        let weight = out.consts.add(Constant::i32(shape, lava));
        synapses.push(match syn {
            Synapse::Dense { .. } => Synapse::Dense { weight },
            Synapse::Conv { geom, .. } => Synapse::Conv {
                weight,
                geom: geom.clone(),
            },
        });
    }
    let bias_q = if bias.is_empty() {
        None
    } else {
        let b: Vec<i32> = bias
            .iter()
            .map(|x| to_int(*x).clamp(-f64::from(1 << 16), f64::from(1 << 16)) as i32)
            .collect();
        Some(out.consts.add(Constant::i32(vec![b.len()], b)))
    };
    let state = |x: f64| -> f64 { x * f64::from(s) * f64::from(1u32 << ACT_SHIFT) };
    let lim = (CUBA_STATE_LIMIT - 1) as f64;
    let v_leak_step = if c.tau_mem.is_infinite() {
        0.0
    } else {
        f64::from(c.v_leak) / f64::from(c.tau_mem)
    };
    let v_bias = nmc_ir::round_even(state(v_leak_step)).clamp(-lim, lim) as i32;
    let v_min = if c.v_min == f32::NEG_INFINITY {
        -(lim as i32)
    } else {
        nmc_ir::round_even(state(f64::from(c.v_min))).clamp(-lim, 0.0) as i32
    };
    let vth = nmc_ir::round_even(f64::from(c.threshold) * f64::from(s));
    if vth > f64::from(MAX_VTH) {
        return Err(format!(
            "threshold {} at scale {s} is {vth}, beyond Loihi's 17-bit threshold mantissa",
            c.threshold
        ));
    }
    let cq = CubaQuant {
        du,
        dv,
        vth: vth as i32,
        v_bias,
        v_min,
        reset: c.reset,
    };
    let mut note = format!(
        "CUBA-LIF du {du} dv {dv} (τ_syn {} τ_mem {} steps), vth {} at weight scale {s}",
        c.tau_syn, c.tau_mem, cq.vth
    );
    if clipped {
        note.push_str("; some weights were clipped to [-256, 254]");
    }
    if v_bias != 0 {
        note.push_str(&format!("; voltage bias {v_bias}"));
    }
    if matches!(l.neuron, Neuron::Spiking(SpikingModel::If { .. })) {
        note.push_str(
            "; IF runs as Loihi's non-leaky neuron: at most one spike per step, when v > threshold",
        );
    }
    Ok((
        Layer {
            synapses,
            bias: None,
            neuron: l.neuron,
            pool: l.pool.clone(),
            quant: Some(LayerQuant {
                weight_exp: vec![0; l.synapses.len()],
                bias: bias_q,
                state_bits: 24,
                act_shift: ACT_SHIFT,
                act_min: 0,
                act_max: 1,
                scale: 1.0,
                mode: nmc_ir::QuantMode::Cuba(cq),
            }),
        },
        note,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from netx's `optimize_weight_bits` and Lava's bit-accurate `Dense`.
    #[test]
    fn lava_weight_pipeline_by_hand() {
        // Mixed, in [-50, 100]: scale min(127/100, 128/50) = 1.27, scale_bits 0 + 1 (sign) = 1;
        // all even: n = 1 − 1 = 0; 7 mantissa bits; ×2 = 200, −100, 12; mixed truncation of
        // 8 − 7 + 1 = 2 bits keeps them; the exponent −1 divides back: 100, −50, 6.
        assert_eq!(lava_weights(&[100, -50, 6]).unwrap(), vec![100, -50, 6]);
        // Excitatory 5 and 1: scale 255/5 = 51, scale_bits 5, n 0, 3 mantissa bits; ×32 = 160,
        // 32; truncating 5 bits keeps them; /32: 5, 1.
        assert_eq!(lava_weights(&[5, 1]).unwrap(), vec![5, 1]);
        // Excitatory 255 and 3: scale 1, scale_bits 0, n 0, 8 bits, nothing truncated.
        assert_eq!(lava_weights(&[255, 3]).unwrap(), vec![255, 3]);
        // Mixed with a large positive and odd weights: [-3, 200]: scale min(127/200, 128/3) =
        // 0.635, scale_bits −1 + 1 = 0; n = 0 − 1 = −1; 9 bits; mixed truncation 8 − 9 + 1 = 0.
        assert_eq!(lava_weights(&[-3, 200, 7]).unwrap(), vec![-3, 200, 7]);
        // Mixed [-256, 254] with odd weights: scale min(127/254, 128/256) = 0.5, scale_bits
        // −1 + 1 = 0; n −1; 9 bits; nothing truncated.
        assert_eq!(lava_weights(&[-256, 254, 1]).unwrap(), vec![-256, 254, 1]);
        // Beyond the mixed range: netx clips to [-256, 254] first.
        assert_eq!(lava_weights(&[-300, 300, 2]).unwrap(), vec![-256, 254, 2]);
        // All zero stays zero.
        assert_eq!(lava_weights(&[0, 0]).unwrap(), vec![0, 0]);
    }

    #[test]
    fn decays_round_to_twelve_bits() {
        assert_eq!(decay_of(f32::INFINITY, "tau").unwrap(), 0);
        assert_eq!(decay_of(1.0, "tau").unwrap(), 4096);
        assert_eq!(decay_of(4096.0 / 1024.0, "tau").unwrap(), 1024);
        assert!(decay_of(0.5, "tau").is_err());
        assert!(decay_of(f32::NAN, "tau").is_err());
    }
}
