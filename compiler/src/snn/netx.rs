//! lava-dl netx HDF5 → IR.
//!
//! The format is lava-dl's (reader `lava/lib/dl/netx/hdf5.py`, writer slayer's `export_hdf5`;
//! docs/chips.md §1.6): `/layer/<i>` groups in order, each with a one-element `S10` `type`, the
//! neuron `shape` in torch order (C, H, W) or (N,), weights, and a `neuron/` group of device
//! parameters. netx turns torch's layouts into Lava's (x, y, z) order and flips conv kernels for
//! Lava's true convolution; nmc's IR keeps torch's layouts (per-sample [C, H, W], cross-correlation
//! kernels [co, ci/g, kh, kw], row-major flatten), so the file's arrays are used as written:
//!
//! - `input`: a graph input of the layer's `shape`; its CUBA neuron (Lava feeds the input
//!   straight into the neuron's current, ignoring the layer's `weight` and `bias`) becomes a
//!   spiking activation on the input; without a `neuron` the input is used as it is.
//! - `dense`: `Op::Dense { weight: [out, in], bias: None }` then the neuron.
//! - `conv`: `Op::Conv2d` with the file's `[co, ci/g, kh, kw]` kernel, `stride`, `padding`
//!   (symmetric) and `dilation` in (h, w) order, `groups`, then the neuron.
//! - `flatten`: `Op::Reshape` to `[C·H·W]` (netx's `transpose([2, 1, 0]).flatten()` of its
//!   (x, y, z) tensor is the (C, H, W) row-major order).
//! - CUBA / LOIHI neurons: `SpikingModel::CubaLif` with nmc's fixed mapping ([`cuba`]).
//!
//! Everything else (SDNN, RF, graded spikes, delays, biases, recurrent and complex dense, pool,
//! average, concat, convT, unpool) is an error naming the layer and what is unsupported.

use super::{num, Builder, Format};
use crate::hdf5::{H5Dataset, H5Group};
use crate::onnx::ImportError;
use nmc_ir::{Activation, ConvGeom, NodeId, Op, Reset, SpikingModel};

/// Most layers a netx file may have (netx networks have tens).
pub const MAX_LAYERS: usize = 100_000;

/// Imports a parsed netx file: the graph and the notes on what was converted.
pub fn import(root: &H5Group) -> Result<(nmc_ir::Graph, Vec<String>), ImportError> {
    let mut b = Builder::new(Format::Netx);
    let layers = root.group("layer").map_err(super::h5_error)?;
    let n = layers.groups.len();
    if n == 0 {
        return Err(b.error("layer", "the file has no layers", false));
    }
    if n > MAX_LAYERS {
        return Err(b.error(
            "layer",
            format!("{n} layers, more than the limit of {MAX_LAYERS}"),
            false,
        ));
    }
    let mut notes = Vec::new();
    let mut cur: Option<NodeId> = None;
    for i in 0..n {
        let place = format!("layer/{i}");
        let l = layers.groups.get(&i.to_string()).ok_or_else(|| {
            b.error(
                &place,
                format!("missing: the {n} layer groups must be named 0 to {}", n - 1),
                false,
            )
        })?;
        let ty = l
            .dataset("type")
            .and_then(|d| d.string().map(str::to_string))
            .map_err(super::h5_error)?;
        match ty.as_str() {
            "input" => {
                if cur.is_some() {
                    return Err(b.error(&place, "an input layer after the first layer", true));
                }
                let shape = torch_shape(&b, l, &place)?;
                let x = b.input(shape, "input", &place)?;
                cur = Some(match l.groups.get("neuron") {
                    Some(ng) => {
                        for k in ["weight", "bias"] {
                            if l.has(k) {
                                notes.push(format!(
                                    "netx {place}: `{k}` of the input layer is ignored, as Lava's netx ignores it"
                                ));
                            }
                        }
                        let m = cuba(&b, Some(ng), &place, &mut notes)?;
                        b.push(
                            Op::Act(Activation::Spiking(m)),
                            vec![x],
                            &format!("{place}/neuron"),
                            &place,
                        )?
                    }
                    None => x,
                });
            }
            "dense" => {
                reject(&b, l, &place, &["weight/imag", "weight_rec"])?;
                check_delay(&b, l, &place)?;
                let w = l.dataset("weight").map_err(super::h5_error)?;
                let out = out_features(&b, l, &place)?;
                let wv = lava_ints(w.f32s().map_err(super::h5_error)?);
                if out == 0 || !wv.len().is_multiple_of(out) || wv.is_empty() {
                    return Err(b.error(
                        &place,
                        format!(
                            "weight of shape {:?} does not have {out} rows (the layer's shape)",
                            w.shape
                        ),
                        false,
                    ));
                }
                let inn = wv.len() / out;
                if w.shape.len() == 2 && w.shape[0] != out {
                    return Err(b.error(
                        &place,
                        format!("weight of shape {:?} for {out} neurons", w.shape),
                        false,
                    ));
                }
                let x = match cur {
                    Some(x) => x,
                    None => b.input(vec![inn], "input", &place)?,
                };
                let x = flatten(&mut b, x, &format!("{place}/flatten"));
                let weight = b.constant(vec![out, inn], wv);
                let y = b.push(Op::Dense { weight, bias: None }, vec![x], &place, &place)?;
                let ng = l.groups.get("neuron");
                if ng.is_none() {
                    notes.push(format!(
                        "netx {place}: no neuron, so netx's default: CUBA with iDecay 0, vDecay 4096, vThMant 131072"
                    ));
                }
                let m = cuba(&b, ng, &place, &mut notes)?;
                cur = Some(b.push(
                    Op::Act(Activation::Spiking(m)),
                    vec![y],
                    &format!("{place}/neuron"),
                    &place,
                )?);
            }
            "conv" => {
                reject(&b, l, &place, &["weight/imag"])?;
                check_delay(&b, l, &place)?;
                let Some(x) = cur else {
                    return Err(b.error(
                        &place,
                        "a conv layer needs an input layer before it (its input shape)",
                        false,
                    ));
                };
                let y = conv(&mut b, l, x, &place)?;
                let shape = torch_shape(&b, l, &place)?;
                if b.shape(y) != shape.as_slice() {
                    return Err(b.error(
                        &place,
                        format!(
                            "the convolution gives {:?} but the layer's shape is {shape:?}",
                            b.shape(y)
                        ),
                        false,
                    ));
                }
                let m = cuba(&b, l.groups.get("neuron"), &place, &mut notes)?;
                cur = Some(b.push(
                    Op::Act(Activation::Spiking(m)),
                    vec![y],
                    &format!("{place}/neuron"),
                    &place,
                )?);
            }
            "flatten" => {
                let Some(x) = cur else {
                    return Err(b.error(&place, "a flatten layer needs a layer before it", false));
                };
                cur = Some(flatten(&mut b, x, &place));
            }
            "pool" | "average" | "concat" | "convT" | "unpool" => {
                return Err(b.error(
                    &place,
                    format!(
                        "layer type `{ty}` is not supported (lava-dl netx does not read it either)"
                    ),
                    true,
                ))
            }
            "dense_rec" | "dense_comp" => {
                return Err(b.error(
                    &place,
                    format!("layer type `{ty}` (recurrent or complex dense) is not supported"),
                    true,
                ))
            }
            other => {
                return Err(b.error(
                    &place,
                    format!("unknown layer type `{}`", crate::snn::nir::short(other)),
                    true,
                ))
            }
        }
    }
    let out = cur.ok_or_else(|| b.error("layer", "the file has no layer that computes", false))?;
    b.graph.outputs.push(nmc_ir::Output {
        node: out,
        name: "output".into(),
    });
    Ok((b.finish("layer")?, notes))
}

/// Errors for datasets whose meaning nmc does not implement.
fn reject(b: &Builder, l: &H5Group, place: &str, keys: &[&str]) -> Result<(), ImportError> {
    for k in keys {
        if l.find(k).is_some() {
            return Err(b.error(
                place,
                format!("`{k}` is not supported (complex or recurrent synapses)"),
                true,
            ));
        }
    }
    if let Some(bias) = l.find("bias") {
        return Err(b.error(
            place,
            format!(
                "a bias ({} values) is not supported: netx adds it as the neurons' bias current",
                bias.len()
            ),
            true,
        ));
    }
    Ok(())
}

/// Axonal delays: all zero is no delay; anything else is unsupported.
fn check_delay(b: &Builder, l: &H5Group, place: &str) -> Result<(), ImportError> {
    if let Some(d) = l.find("delay") {
        let v = d.f64s().map_err(super::h5_error)?;
        if v.iter().any(|&x| x != 0.0) {
            return Err(b.error(place, "synaptic delays are not supported", true));
        }
    }
    Ok(())
}

/// The layer's `shape` (torch order: (C, H, W) or (N,)) as an IR per-sample shape; a 2-D
/// (H, W) shape is one channel.
fn torch_shape(b: &Builder, l: &H5Group, place: &str) -> Result<Vec<usize>, ImportError> {
    let d = l.dataset("shape").map_err(super::h5_error)?;
    let v = d.i64s().map_err(super::h5_error)?;
    if v.is_empty() || v.len() > 3 || v.iter().any(|&x| x <= 0 || x > 1 << 31) {
        return Err(b.error(
            place,
            format!("`shape` {v:?} is not 1 to 3 positive sizes"),
            false,
        ));
    }
    let mut s: Vec<usize> = v.iter().map(|&x| x as usize).collect();
    if s.len() == 2 {
        s.insert(0, 1);
    }
    Ok(s)
}

/// The neuron count of a dense layer (the product of its `shape`).
fn out_features(b: &Builder, l: &H5Group, place: &str) -> Result<usize, ImportError> {
    let s = torch_shape(b, l, place)?;
    nmc_ir::limits::check_elements(&s).map_err(|m| b.error(place, m, false))
}

/// Reshapes a multi-axis value to a vector (row-major, i.e. torch's C, H, W order).
pub(crate) fn flatten(b: &mut Builder, x: NodeId, name: &str) -> NodeId {
    if b.shape(x).len() <= 1 {
        return x;
    }
    // The element count was checked when the value was built.
    let n: usize = b.shape(x).iter().product();
    let ty = nmc_ir::TensorType::f32(vec![n]);
    b.graph
        .add(Op::Reshape, vec![x], ty, Some(name.to_string()))
}

/// A pair of (h, w) values from a scalar or a 2-element dataset (slayer writes torch's order).
fn pair(
    b: &Builder,
    l: &H5Group,
    key: &str,
    default: usize,
    place: &str,
) -> Result<[usize; 2], ImportError> {
    let Some(d) = l.find(key) else {
        return Ok([default, default]);
    };
    let v = d.i64s().map_err(super::h5_error)?;
    let ok = |x: i64| (0..=1 << 20).contains(&x);
    match v.as_slice() {
        [x] if ok(*x) => Ok([*x as usize; 2]),
        [h, w] if ok(*h) && ok(*w) => Ok([*h as usize, *w as usize]),
        _ => Err(b.error(
            place,
            format!("`{key}` {v:?} is not one or two sizes"),
            false,
        )),
    }
}

fn conv(b: &mut Builder, l: &H5Group, x: NodeId, place: &str) -> Result<NodeId, ImportError> {
    let w: &H5Dataset = l.dataset("weight").map_err(super::h5_error)?;
    // slayer writes torch's 5-D [co, ci/g, kh, kw, 1] without its last axis; accept trailing 1s.
    let mut shape = w.shape.clone();
    while shape.len() > 4 && shape.last() == Some(&1) {
        shape.pop();
    }
    if shape.len() != 4 {
        return Err(b.error(
            place,
            format!(
                "conv weight of shape {:?} is not [co, ci/groups, kh, kw]",
                w.shape
            ),
            false,
        ));
    }
    let groups = match l.find("groups") {
        Some(d) => d.scalar_i64().map_err(super::h5_error)?,
        None => 1,
    };
    if !(1..=1 << 20).contains(&groups) {
        return Err(b.error(place, format!("`groups` {groups} is not positive"), false));
    }
    let [sh, sw] = pair(b, l, "stride", 1, place)?;
    let [ph, pw] = pair(b, l, "padding", 0, place)?;
    let [dh, dw] = pair(b, l, "dilation", 1, place)?;
    let geom = ConvGeom {
        kernel: [shape[2], shape[3]],
        strides: [sh, sw],
        pads: [ph, pw, ph, pw],
        dilations: [dh, dw],
        groups: groups as usize,
    };
    let wv = lava_ints(w.f32s().map_err(super::h5_error)?);
    let weight = b.constant(shape, wv);
    b.push(
        Op::Conv2d {
            weight,
            bias: None,
            geom,
        },
        vec![x],
        place,
        place,
    )
}

/// A netx CUBA neuron as nmc's `CubaLif` (the fixed definition the quantiser relies on):
/// `tau_syn = 4096 / iDecay`, `tau_mem = 4096 / vDecay` (infinite when the decay is 0),
/// `w_in = r = 1`, `v_leak = 0`, `threshold = vThMant`, reset to zero, no lower bound.
/// `None` is netx's default neuron of a dense layer (iDecay 0, vDecay 4096, vThMant 1 << 17).
pub(crate) fn cuba(
    b: &Builder,
    neuron: Option<&H5Group>,
    place: &str,
    notes: &mut Vec<String>,
) -> Result<SpikingModel, ImportError> {
    let (i_decay, v_decay, v_th) = match neuron {
        None => (0, 4096, 1 << 17),
        Some(n) => {
            let ty = n
                .dataset("type")
                .and_then(|d| d.string().map(str::to_string))
                .map_err(super::h5_error)?;
            if ty != "CUBA" && ty != "LOIHI" {
                let what = if ty == "SDNN" {
                    "sigma-delta (SDNN) neurons are not supported by the netx reader yet"
                        .to_string()
                } else if ty.contains("RF") {
                    format!("resonate-and-fire neurons (`{ty}`) are not supported")
                } else {
                    format!("neuron type `{}` is not supported", super::nir::short(&ty))
                };
                return Err(b.error(place, what, true));
            }
            let get = |k: &str| -> Result<Option<i64>, ImportError> {
                match n.datasets.get(k) {
                    Some(d) => d.scalar_i64().map(Some).map_err(super::h5_error),
                    None => Ok(None),
                }
            };
            if get("gradedSpike")?.unwrap_or(0) != 0 {
                return Err(b.error(
                    place,
                    "graded spikes (`neuron/gradedSpike`) are not supported",
                    true,
                ));
            }
            if get("messageBits")?.unwrap_or(0) != 0 {
                return Err(b.error(
                    place,
                    "graded spikes (`neuron/messageBits` > 0) are not supported",
                    true,
                ));
            }
            let need = |k: &str| -> Result<i64, ImportError> {
                get(k)?.ok_or_else(|| b.error(place, format!("the neuron has no `{k}`"), false))
            };
            (need("iDecay")?, need("vDecay")?, need("vThMant")?)
        }
    };
    for (k, v) in [("iDecay", i_decay), ("vDecay", v_decay)] {
        if !(0..=4096).contains(&v) {
            return Err(b.error(
                place,
                format!("`neuron/{k}` {v} is outside 0..=4096"),
                false,
            ));
        }
    }
    if !(1..=1 << 24).contains(&v_th) {
        return Err(b.error(
            place,
            format!("`neuron/vThMant` {v_th} is not in 1..=2^24"),
            false,
        ));
    }
    let tau = |d: i64| {
        if d == 0 {
            f32::INFINITY
        } else {
            4096.0 / d as f32
        }
    };
    let m = SpikingModel::CubaLif {
        tau_syn: tau(i_decay),
        tau_mem: tau(v_decay),
        r: 1.0,
        v_leak: 0.0,
        w_in: 1.0,
        threshold: v_th as f32,
        reset: Reset::Zero,
        v_min: f32::NEG_INFINITY,
    };
    m.check().map_err(|e| b.error(place, e, false))?;
    if let SpikingModel::CubaLif {
        tau_syn, tau_mem, ..
    } = m
    {
        notes.push(format!(
            "netx {place}: CUBA iDecay {i_decay}, vDecay {v_decay}, vThMant {v_th} -> cuba_lif tau_syn {} tau_mem {} steps, threshold {v_th}",
            num(tau_syn),
            num(tau_mem)
        ));
    }
    Ok(m)
}

/// Weights as netx reads them: `NetDict` takes `weight` with `.astype(int)`, which truncates
/// toward zero (lava-dl 0.6 `netx/utils.py`); slayer writes integers, so this changes nothing
/// for its files, and makes another writer's fractions mean what Lava makes of them.
fn lava_ints(w: Vec<f32>) -> Vec<f32> {
    w.into_iter().map(f32::trunc).collect()
}
