//! The `ai.nmc` ONNX domain: native spiking neurons, so that a spiking network can be written as
//! ONNX without pretending its activations are ReLUs.
//!
//! PyTorch cannot export custom-domain nodes directly; the supported route is to export the
//! network with its usual activations and then replace those nodes with `ai.nmc` nodes with the
//! `onnx` Python package (`testdata/gen/make_speck_models.py` does exactly that for `dvs_cnn_if`).
//! A model using the domain imports it with `opset_import { domain: "ai.nmc", version: 1 }`.
//!
//! Every op has one input `X` (the synaptic input current, a graph value) and one output `Y` (the
//! spikes or graded events, same shape). Parameters follow NIR's names and meanings where NIR has
//! the model (docs/chips.md §4.1), in the units of the float graph, with time constants in timesteps.
//! Unknown attributes are an error, so that a typo never silently falls back to a default.
//!
//! | op | attributes (default) | meaning |
//! |---|---|---|
//! | `IF` | `threshold` (1.0), `reset` ("subtract" \| "zero", "subtract"), `v_min` (−1.0, as sinabs), `r` (1.0) | `v += r·x`; `⌊v/threshold⌋` spikes when `v ≥ threshold`; reset; `v = max(v, v_min)` |
//! | `LIF` | `tau_mem` (required), `r` (1.0), `v_leak` (0.0), `threshold` (1.0), `reset` ("subtract"), `v_min` (−1.0) | NIR LIF: `tau_mem·dv/dt = (v_leak − v) + r·x`, then threshold and reset as IF |
//! | `CubaLIF` | `tau_syn`, `tau_mem` (required), `r` (1.0), `v_leak` (0.0), `w_in` (1.0), `threshold` (1.0), `reset` ("subtract"), `v_min` (−1.0) | NIR CubaLIF: `tau_syn·di/dt = −i + w_in·x` feeding the LIF membrane |
//! | `SigmaDelta` | `threshold` (0.0), `activation` ("relu" \| "identity", "relu") | Lava's graded sigma-delta neuron: sends changes of its activation larger than `threshold` |
//!
//! The defaults of IF are sinabs' `from_model` defaults (threshold 1.0, `MembraneSubtract`,
//! `min_v_mem = −1.0`), so a ReLU network whose ReLUs are replaced by default IF nodes compiles
//! exactly as the ReLU network does on Speck. `r` is folded into the threshold and lower bound
//! (`v/r` integrates `x`), so the IR's IF has no `r`.
//!
//! Time is discrete, one step per timestep (τ in timesteps), as `nmc_ir::SpikingModel` defines:
//! CubaLIF is `i ← (1 − 1/τ_syn)·i + w_in·x`, `v ← (1 − 1/τ_mem)·v + r·i + v_leak/τ_mem`, a spike
//! when `v > threshold`, then reset; LIF the same without the current, `v ← (1 − 1/τ_mem)·v +
//! r·x + v_leak/τ_mem`. NIR's continuous-time parameters convert to these with the timestep (the
//! NIR reader does it).
//!
//! In the float graph (`nmc eval`, calibration) IF runs as its rate limit, `max(x, 0)/threshold`
//! (spikes per timestep), and SigmaDelta as its activation; LIF and CubaLIF have no single-pass
//! meaning. Speck runs IF in rate mode; Loihi 2 runs CubaLIF, LIF and IF in the snn mode
//! (`passes::quantize_snn`: Loihi's fixed-point CUBA-LIF neuron) and rejects SigmaDelta nodes.

use super::ctx::{Ctx, NodeCx, Val};
use super::ImportError;
use nmc_ir::{Activation, Op, Reset, SpikingModel};

/// The domain name.
pub const DOMAIN: &str = "ai.nmc";
/// The only version of the domain.
pub const VERSION: i64 = 1;

type Built = Result<Vec<Val>, ImportError>;

/// The builder of an `ai.nmc` op type.
pub(crate) fn lookup(op_type: &str) -> Option<fn(&mut Ctx, &NodeCx) -> Built> {
    Some(match op_type {
        "IF" => if_,
        "LIF" => lif,
        "CubaLIF" => cuba_lif,
        "SigmaDelta" => sigma_delta,
        _ => return None,
    })
}

/// Every op type of the domain.
pub fn supported_ops() -> Vec<&'static str> {
    vec!["CubaLIF", "IF", "LIF", "SigmaDelta"]
}

/// Rejects attributes the op does not define.
fn only(n: &NodeCx, allowed: &[&str]) -> Result<(), ImportError> {
    for a in &n.proto.attribute {
        if !allowed.contains(&a.name.as_str()) {
            return Err(n.invalid(format!(
                "unknown attribute '{}' ({}.{} takes {})",
                a.name,
                DOMAIN,
                n.op(),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

fn float_or(n: &NodeCx, k: &str, default: f32) -> Result<f32, ImportError> {
    Ok(n.attr_float(k)?.unwrap_or(default))
}

fn required(n: &NodeCx, k: &str) -> Result<f32, ImportError> {
    n.attr_float(k)?
        .ok_or_else(|| n.invalid(format!("attribute '{k}' is required")))
}

fn reset(n: &NodeCx) -> Result<Reset, ImportError> {
    match n.attr_string("reset")? {
        None => Ok(Reset::Subtract),
        Some(s) => Reset::from_name(&s).ok_or_else(|| {
            n.invalid(format!(
                "attribute 'reset' is \"{s}\"; expected \"zero\" or \"subtract\""
            ))
        }),
    }
}

/// Threshold and lower bound; `v_min` defaults to −1.0 whatever the threshold, as sinabs'
/// `from_model` sets `min_v_mem` (docs/chips.md §7).
fn threshold_and_floor(n: &NodeCx) -> Result<(f32, f32), ImportError> {
    let threshold = float_or(n, "threshold", 1.0)?;
    let v_min = float_or(n, "v_min", -1.0)?;
    Ok((threshold, v_min))
}

fn emit(ctx: &mut Ctx, n: &NodeCx, m: SpikingModel) -> Built {
    m.check().map_err(|e| n.invalid(e))?;
    if n.proto.output.len() != 1 {
        return Err(n.invalid(format!(
            "has {} outputs; {}.{} has one",
            n.proto.output.len(),
            DOMAIN,
            n.op()
        )));
    }
    if n.inputs.len() != 1 {
        return Err(n.invalid(format!(
            "has {} inputs; {}.{} takes one (X)",
            n.inputs.len(),
            DOMAIN,
            n.op()
        )));
    }
    let x = n.graph_input(0, "X")?;
    Ok(vec![Val::Graph(ctx.add(
        n,
        Op::Act(Activation::Spiking(m)),
        vec![x],
        None,
    )?)])
}

fn if_(ctx: &mut Ctx, n: &NodeCx) -> Built {
    only(n, &["threshold", "reset", "v_min", "r"])?;
    let (threshold, v_min) = threshold_and_floor(n)?;
    let r = float_or(n, "r", 1.0)?;
    if !(r.is_finite() && r > 0.0) {
        return Err(n.invalid(format!("attribute 'r' must be finite and > 0, is {r}")));
    }
    let m = SpikingModel::If {
        threshold: threshold / r,
        reset: reset(n)?,
        v_min: v_min / r,
    };
    emit(ctx, n, m)
}

fn lif(ctx: &mut Ctx, n: &NodeCx) -> Built {
    only(
        n,
        &["tau_mem", "r", "v_leak", "threshold", "reset", "v_min"],
    )?;
    let (threshold, v_min) = threshold_and_floor(n)?;
    let m = SpikingModel::Lif {
        tau_mem: required(n, "tau_mem")?,
        r: float_or(n, "r", 1.0)?,
        v_leak: float_or(n, "v_leak", 0.0)?,
        threshold,
        reset: reset(n)?,
        v_min,
    };
    emit(ctx, n, m)
}

fn cuba_lif(ctx: &mut Ctx, n: &NodeCx) -> Built {
    only(
        n,
        &[
            "tau_syn",
            "tau_mem",
            "r",
            "v_leak",
            "w_in",
            "threshold",
            "reset",
            "v_min",
        ],
    )?;
    let (threshold, v_min) = threshold_and_floor(n)?;
    let m = SpikingModel::CubaLif {
        tau_syn: required(n, "tau_syn")?,
        tau_mem: required(n, "tau_mem")?,
        r: float_or(n, "r", 1.0)?,
        v_leak: float_or(n, "v_leak", 0.0)?,
        w_in: float_or(n, "w_in", 1.0)?,
        threshold,
        reset: reset(n)?,
        v_min,
    };
    emit(ctx, n, m)
}

fn sigma_delta(ctx: &mut Ctx, n: &NodeCx) -> Built {
    only(n, &["threshold", "activation"])?;
    let relu = match n.attr_string("activation")?.as_deref() {
        None | Some("relu") => true,
        Some("identity") => false,
        Some(other) => {
            return Err(n.invalid(format!(
                "attribute 'activation' is \"{other}\"; expected \"relu\" or \"identity\""
            )))
        }
    };
    let m = SpikingModel::SigmaDelta {
        threshold: float_or(n, "threshold", 0.0)?,
        relu,
    };
    emit(ctx, n, m)
}
