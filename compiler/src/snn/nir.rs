//! NIR 1.0 HDF5 → IR.
//!
//! The layout is `nir.write`'s (docs/chips.md §4.2): `/node` is the graph (`type` = `NIRGraph`),
//! `/node/nodes/<name>/` one group per node with a `type` string and its parameters as datasets,
//! `/node/edges` an (n, 2) array of (source, destination) names. Edges give the topology: nodes
//! are built in topological order (ties by name), a node with several sources reads their sum
//! (`Op::Add`, NIR's rule), `Input` nodes become graph inputs and `Output` nodes graph outputs.
//!
//! NIR is continuous-time; nmc's spiking models are per timestep, so neuron parameters are
//! discretised with the step `dt` of [`SnnOptions`] by forward Euler (docs/formats.md):
//!
//! - `LIF` (`tau·dv/dt = (v_leak − v) + r·I`) → `Lif { tau_mem: tau/dt, r: r·dt/tau, v_leak,
//!   threshold: v_threshold }`;
//! - `CubaLIF` → `CubaLif { tau_syn: tau_syn/dt, w_in: w_in·dt/tau_syn, tau_mem: tau_mem/dt,
//!   r: r·dt/tau_mem, v_leak, threshold: v_threshold }`;
//! - `IF` (`v += r·I` per step) → `If { threshold: v_threshold / r }` (the membrane in units of
//!   `r`, so the input adds unscaled).
//!
//! A neuron with `v_reset` (NIR 1.0.5 on) resets to it (0 only; another value is unsupported);
//! one without (NIR up to 1.0.4, e.g. sinabs' export) subtracts the threshold, as NIR 1.0.4
//! defines `LIF`, `CubaLIF` and `IF`. No lower bound. NIR parameters
//! are per-neuron arrays; nmc's models are per layer, so each must be uniform.

use super::{num, Builder, Format, SnnOptions};
use crate::hdf5::{H5Dataset, H5Group};
use crate::onnx::ImportError;
use nmc_ir::{Activation, ConvGeom, NodeId, Op, Pool, PoolKind, Reset, SpikingModel};
use std::collections::{BTreeMap, BTreeSet};

/// Most nodes and most edges a NIR graph may have.
pub const MAX_NODES: usize = 100_000;

/// A string cut short for a message (names and types come from untrusted files).
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Imports a parsed NIR file: the graph and the notes on the discretisation.
pub fn import(
    root: &H5Group,
    opts: &SnnOptions,
) -> Result<(nmc_ir::Graph, Vec<String>), ImportError> {
    let mut b = Builder::new(Format::Nir);
    let dt = opts.dt;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(b.error(
            "graph",
            format!("the timestep dt = {dt} s is not positive"),
            false,
        ));
    }
    let g = root.group("node").map_err(super::h5_error)?;
    let ty = node_type(g)?;
    if ty != "NIRGraph" {
        return Err(b.error(
            "graph",
            format!("`/node` has type `{}`, not NIRGraph", short(&ty)),
            false,
        ));
    }
    let nodes = g.group("nodes").map_err(super::h5_error)?;
    if nodes.groups.len() > MAX_NODES {
        return Err(b.error(
            "graph",
            format!(
                "{} nodes, more than the limit of {MAX_NODES}",
                nodes.groups.len()
            ),
            false,
        ));
    }
    // Edges: (n, 2) strings; a graph without edges may store an empty array or none.
    let mut preds: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut succs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in nodes.groups.keys() {
        preds.insert(name, Vec::new());
        succs.insert(name, Vec::new());
    }
    if let Some(e) = g.datasets.get("edges") {
        let s = match &e.data {
            crate::hdf5::H5Data::Str(s) => s.as_slice(),
            _ if e.is_empty() => &[],
            _ => return Err(super::h5_error(e.strings().unwrap_err())),
        };
        if s.len() % 2 != 0 || (!s.is_empty() && e.shape.last() != Some(&2)) {
            return Err(b.error(
                "graph",
                format!("`edges` of shape {:?} is not (n, 2) pairs", e.shape),
                false,
            ));
        }
        if s.len() / 2 > MAX_NODES * 4 {
            return Err(b.error("graph", "too many edges", false));
        }
        let mut seen = BTreeSet::new();
        for p in s.chunks_exact(2) {
            let (a, z) = (p[0].as_str(), p[1].as_str());
            for n in [a, z] {
                if !nodes.groups.contains_key(n) {
                    return Err(b.error(
                        "graph",
                        format!(
                            "edge {} -> {} names no node `{}`",
                            short(a),
                            short(z),
                            short(n)
                        ),
                        false,
                    ));
                }
            }
            if seen.insert((a, z)) {
                if let Some(v) = preds.get_mut(z) {
                    v.push(a);
                }
                if let Some(v) = succs.get_mut(a) {
                    v.push(z);
                }
            }
        }
    }
    let order = topo(&b, &preds, &succs)?;
    let mut vals: BTreeMap<&str, NodeId> = BTreeMap::new();
    let mut notes = vec![format!(
        "NIR: continuous time discretised with dt = {dt} s (forward Euler)"
    )];
    let mut outputs = Vec::new();
    for name in order {
        let node = &nodes.groups[name];
        let ty = node_type(node)?;
        let place = format!("node \"{}\" ({})", short(name), short(&ty));
        let ins: Vec<NodeId> = preds[name].iter().map(|p| vals[p]).collect();
        let x = match (ty.as_str(), ins.as_slice()) {
            ("Input", []) => None,
            ("Input", _) => return Err(b.error(&place, "an Input node has incoming edges", false)),
            (_, []) => {
                return Err(b.error(&place, "the node has no incoming edge", false));
            }
            (_, [x]) => Some(*x),
            (_, many) => {
                let mut acc = many[0];
                for (k, &y) in many[1..].iter().enumerate() {
                    acc = b.push(Op::Add, vec![acc, y], &format!("{name}/sum{k}"), &place)?;
                }
                Some(acc)
            }
        };
        let y = build(&mut b, node, &ty, name, x, &place, dt, &mut notes)?;
        if ty == "Output" {
            outputs.push(nmc_ir::Output {
                node: y,
                name: name.to_string(),
            });
        }
        vals.insert(name, y);
    }
    if b.graph.inputs.is_empty() {
        return Err(b.error("graph", "the graph has no Input node", false));
    }
    if outputs.is_empty() {
        return Err(b.error("graph", "the graph has no Output node", false));
    }
    b.graph.outputs = outputs;
    Ok((b.finish("graph")?, notes))
}

fn node_type(n: &H5Group) -> Result<String, ImportError> {
    n.dataset("type")
        .and_then(|d| d.string().map(str::to_string))
        .map_err(super::h5_error)
}

/// Kahn's algorithm, smallest name first; a cycle (recurrence) is unsupported.
fn topo<'a>(
    b: &Builder,
    preds: &BTreeMap<&'a str, Vec<&'a str>>,
    succs: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Result<Vec<&'a str>, ImportError> {
    let mut indeg: BTreeMap<&str, usize> = preds.iter().map(|(k, v)| (*k, v.len())).collect();
    let mut ready: BTreeSet<&str> = indeg
        .iter()
        .filter(|(_, &d)| d == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut order = Vec::with_capacity(preds.len());
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for s in &succs[n] {
            if let Some(d) = indeg.get_mut(s) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(s);
                }
            }
        }
    }
    if order.len() < preds.len() {
        let stuck: Vec<String> = indeg
            .iter()
            .filter(|(_, &d)| d > 0)
            .map(|(k, _)| short(k))
            .take(8)
            .collect();
        return Err(b.error(
            "graph",
            format!("the edges form a cycle (recurrent connections are not supported), through {stuck:?}"),
            true,
        ));
    }
    Ok(order)
}

fn data<'a>(n: &'a H5Group, k: &str) -> Result<&'a H5Dataset, ImportError> {
    n.dataset(k).map_err(super::h5_error)
}

/// The single value of a per-neuron parameter array, which must be uniform.
fn uniform(b: &Builder, n: &H5Group, k: &str, place: &str) -> Result<f64, ImportError> {
    let d = data(n, k)?;
    let v = d.f64s().map_err(super::h5_error)?;
    let Some(&first) = v.first() else {
        return Err(b.error(place, format!("`{k}` is empty"), false));
    };
    if !first.is_finite() {
        return Err(b.error(place, format!("`{k}` is {first}"), false));
    }
    if let Some(other) = v.iter().find(|&&x| x != first) {
        return Err(b.error(
            place,
            format!(
                "`{k}` differs between neurons ({first} and {other}); nmc's neuron models take one value per layer"
            ),
            true,
        ));
    }
    Ok(first)
}

fn optional(
    b: &Builder,
    n: &H5Group,
    k: &str,
    default: f64,
    place: &str,
) -> Result<f64, ImportError> {
    if n.datasets.contains_key(k) {
        uniform(b, n, k, place)
    } else {
        Ok(default)
    }
}

fn positive(b: &Builder, v: f64, what: &str, place: &str) -> Result<f64, ImportError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(b.error(place, format!("`{what}` {v} is not positive"), false))
    }
}

/// The node's shape parameter (`Input`/`Output` `shape`) as sizes.
fn sizes(b: &Builder, d: &H5Dataset, place: &str) -> Result<Vec<usize>, ImportError> {
    let v = d.i64s().map_err(super::h5_error)?;
    if v.len() > nmc_ir::limits::MAX_RANK || v.iter().any(|&x| !(0..=1 << 31).contains(&x)) {
        return Err(b.error(place, format!("shape {v:?} is not a list of sizes"), false));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// Two (h, w) values from a scalar or a 2-element array.
fn pair(
    b: &Builder,
    n: &H5Group,
    k: &str,
    default: usize,
    place: &str,
) -> Result<[usize; 2], ImportError> {
    let Some(d) = n.datasets.get(k) else {
        return Ok([default; 2]);
    };
    let v = d.i64s().map_err(super::h5_error)?;
    let ok = |x: i64| (0..=1 << 20).contains(&x);
    match v.as_slice() {
        [x] if ok(*x) => Ok([*x as usize; 2]),
        [h, w] if ok(*h) && ok(*w) => Ok([*h as usize, *w as usize]),
        _ => Err(b.error(place, format!("`{k}` {v:?} is not one or two sizes"), false)),
    }
}

fn spiking(
    b: &mut Builder,
    m: SpikingModel,
    x: NodeId,
    name: &str,
    place: &str,
) -> Result<NodeId, ImportError> {
    m.check().map_err(|e| b.error(place, e, false))?;
    b.push(Op::Act(Activation::Spiking(m)), vec![x], name, place)
}

/// The reset of a NIR neuron: NIR 1.0.5 on resets to `v_reset` (nmc: 0 only); NIR up to 1.0.4
/// has no `v_reset` and subtracts the threshold (`v − v_threshold`, the 1.0.4 docstrings of
/// `nir.LIF`, `nir.CubaLIF` and `nir.IF`; docs/chips.md §4.1).
fn reset_of(b: &Builder, n: &H5Group, place: &str) -> Result<Reset, ImportError> {
    if !n.datasets.contains_key("v_reset") {
        return Ok(Reset::Subtract);
    }
    let v = uniform(b, n, "v_reset", place)?;
    if v != 0.0 {
        return Err(b.error(
            place,
            format!("`v_reset` {v} is not supported (nmc resets to 0, or subtracts the threshold)"),
            true,
        ));
    }
    Ok(Reset::Zero)
}

/// Builds one node over its (summed) input `x` (`None` for an `Input`).
#[allow(clippy::too_many_arguments)]
fn build(
    b: &mut Builder,
    n: &H5Group,
    ty: &str,
    name: &str,
    x: Option<NodeId>,
    place: &str,
    dt: f64,
    notes: &mut Vec<String>,
) -> Result<NodeId, ImportError> {
    let Some(x) = x else {
        let shape = sizes(b, data(n, "shape")?, place)?;
        return b.input(shape, name, place);
    };
    match ty {
        "Output" => Ok(x),
        "Affine" | "Linear" => {
            let w = data(n, "weight")?;
            if w.shape.len() != 2 {
                return Err(b.error(
                    place,
                    format!("weight of shape {:?} is not [out, in]", w.shape),
                    false,
                ));
            }
            let (out, inn) = (w.shape[0], w.shape[1]);
            let wv = w.f32s().map_err(super::h5_error)?;
            let x = super::netx::flatten(b, x, &format!("{name}/flatten"));
            let weight = b.constant(vec![out, inn], wv);
            let bias = if ty == "Affine" {
                let bd = data(n, "bias")?;
                let bv = bd.f32s().map_err(super::h5_error)?;
                if bv.len() != out {
                    return Err(b.error(
                        place,
                        format!("bias has {} values for {out} outputs", bv.len()),
                        false,
                    ));
                }
                Some(b.constant(vec![out], bv))
            } else {
                None
            };
            b.push(Op::Dense { weight, bias }, vec![x], name, place)
        }
        "Conv2d" => {
            let w = data(n, "weight")?;
            if w.shape.len() != 4 {
                return Err(b.error(
                    place,
                    format!(
                        "weight of shape {:?} is not [co, ci/groups, kh, kw]",
                        w.shape
                    ),
                    false,
                ));
            }
            let groups = match n.datasets.get("groups") {
                Some(d) => d.scalar_i64().map_err(super::h5_error)?,
                None => 1,
            };
            if !(1..=1 << 20).contains(&groups) {
                return Err(b.error(place, format!("`groups` {groups} is not positive"), false));
            }
            let kernel = [w.shape[2], w.shape[3]];
            let strides = pair(b, n, "stride", 1, place)?;
            let dilations = pair(b, n, "dilation", 1, place)?;
            let pads = match n.datasets.get("padding").map(|d| &d.data) {
                Some(crate::hdf5::H5Data::Str(s)) => match s.first().map(String::as_str) {
                    Some("valid") => [0; 4],
                    Some("same") => {
                        // Stride 1: total padding (k − 1)·d, the extra one at the end (PyTorch).
                        if strides != [1, 1] {
                            return Err(b.error(
                                place,
                                "padding \"same\" with a stride other than 1",
                                true,
                            ));
                        }
                        let t = |a: usize| (kernel[a].saturating_sub(1)) * dilations[a];
                        [t(0) / 2, t(1) / 2, t(0) - t(0) / 2, t(1) - t(1) / 2]
                    }
                    other => {
                        return Err(b.error(
                            place,
                            format!("padding {other:?} is not \"valid\" or \"same\""),
                            false,
                        ))
                    }
                },
                _ => {
                    let [ph, pw] = pair(b, n, "padding", 0, place)?;
                    [ph, pw, ph, pw]
                }
            };
            let geom = ConvGeom {
                kernel,
                strides,
                pads,
                dilations,
                groups: groups as usize,
            };
            let wv = w.f32s().map_err(super::h5_error)?;
            let co = w.shape[0];
            let weight = b.constant(w.shape.clone(), wv);
            let bias = match n.datasets.get("bias") {
                Some(bd) => {
                    let bv = bd.f32s().map_err(super::h5_error)?;
                    if bv.len() != co {
                        return Err(b.error(
                            place,
                            format!("bias has {} values for {co} channels", bv.len()),
                            false,
                        ));
                    }
                    Some(b.constant(vec![co], bv))
                }
                None => None,
            };
            b.push(Op::Conv2d { weight, bias, geom }, vec![x], name, place)
        }
        "SumPool2d" | "AvgPool2d" => {
            let kernel = pair(b, n, "kernel_size", 0, place)?;
            let strides = pair(b, n, "stride", kernel[0].max(1), place)?;
            let [ph, pw] = pair(b, n, "padding", 0, place)?;
            let pool = Pool {
                kind: if ty == "SumPool2d" {
                    PoolKind::Sum
                } else {
                    PoolKind::Avg
                },
                kernel,
                strides,
                pads: [ph, pw, ph, pw],
                count_include_pad: true,
            };
            b.push(Op::Pool2d(pool), vec![x], name, place)
        }
        "Flatten" => {
            let rank = b.shape(x).len() as i64;
            let start = optional(b, n, "start_dim", 1.0, place)? as i64;
            let end = optional(b, n, "end_dim", -1.0, place)? as i64;
            // Exporters write torch's dims of a batched tensor (start 1) or of a sample (start 0);
            // both flatten the whole sample. A partial flatten is unsupported.
            if !matches!(start, 0 | 1) || !(end == -1 || end == rank || end == rank - 1) {
                return Err(b.error(place, format!("a partial flatten (start_dim {start}, end_dim {end}) of a rank-{rank} value"), true));
            }
            Ok(super::netx::flatten(b, x, name))
        }
        "LIF" => {
            let tau = positive(b, uniform(b, n, "tau", place)?, "tau", place)?;
            let r = uniform(b, n, "r", place)?;
            let v_leak = uniform(b, n, "v_leak", place)?;
            let th = uniform(b, n, "v_threshold", place)?;
            let reset = reset_of(b, n, place)?;
            let m = SpikingModel::Lif {
                tau_mem: (tau / dt) as f32,
                r: (r * dt / tau) as f32,
                v_leak: v_leak as f32,
                threshold: th as f32,
                reset,
                v_min: f32::NEG_INFINITY,
            };
            notes.push(format!(
                "NIR {place}: tau {tau} s -> tau_mem {} steps, r {r} -> {} per step",
                num((tau / dt) as f32),
                num((r * dt / tau) as f32)
            ));
            spiking(b, m, x, name, place)
        }
        "CubaLIF" => {
            let ts = positive(b, uniform(b, n, "tau_syn", place)?, "tau_syn", place)?;
            let tm = positive(b, uniform(b, n, "tau_mem", place)?, "tau_mem", place)?;
            let r = uniform(b, n, "r", place)?;
            let w_in = optional(b, n, "w_in", 1.0, place)?;
            let v_leak = uniform(b, n, "v_leak", place)?;
            let th = uniform(b, n, "v_threshold", place)?;
            let reset = reset_of(b, n, place)?;
            let m = SpikingModel::CubaLif {
                tau_syn: (ts / dt) as f32,
                tau_mem: (tm / dt) as f32,
                r: (r * dt / tm) as f32,
                v_leak: v_leak as f32,
                w_in: (w_in * dt / ts) as f32,
                threshold: th as f32,
                reset,
                v_min: f32::NEG_INFINITY,
            };
            notes.push(format!(
                "NIR {place}: tau_syn {ts} s, tau_mem {tm} s -> {} and {} steps; w_in {w_in} -> {}, r {r} -> {} per step",
                num((ts / dt) as f32),
                num((tm / dt) as f32),
                num((w_in * dt / ts) as f32),
                num((r * dt / tm) as f32)
            ));
            spiking(b, m, x, name, place)
        }
        "IF" => {
            let r = positive(b, uniform(b, n, "r", place)?, "r", place)?;
            let th = uniform(b, n, "v_threshold", place)?;
            let reset = reset_of(b, n, place)?;
            let m = SpikingModel::If {
                threshold: (th / r) as f32,
                reset,
                v_min: f32::NEG_INFINITY,
            };
            notes.push(format!(
                "NIR {place}: v += r·I with r {r}, threshold {th} -> if threshold {}",
                num((th / r) as f32)
            ));
            spiking(b, m, x, name, place)
        }
        "LI" | "CubaLI" | "I" => Err(b.error(
            place,
            format!(
                "`{ty}` (a non-spiking integrator) is not supported: nmc's neuron models spike"
            ),
            true,
        )),
        "Threshold" => Err(b.error(place, "a stateless `Threshold` is not supported", true)),
        "Scale" | "Delay" | "Conv1d" | "NIRGraph" => Err(b.error(
            place,
            format!(
                "node type `{ty}` is not supported{}",
                if ty == "NIRGraph" {
                    " (nested sub-graphs)"
                } else {
                    ""
                }
            ),
            true,
        )),
        other => Err(b.error(place, format!("unknown node type `{}`", short(other)), true)),
    }
}
