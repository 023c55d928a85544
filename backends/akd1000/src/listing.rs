//! A readable, deterministic text listing of an artifact, for snapshots, review and
//! `nmc inspect`: per layer its Akida kind, geometry, widths and which units (node, slot, type)
//! hold which slice. Weights and per-channel parameters are summarised by count, non-zeros and
//! an FNV-1a hash of the stored (vendor-order) values.

use crate::artifact::{Artifact, LayerKindMsg, LayerMsg, PoolMsg, SourceKind, UnitTypeMsg};
use std::fmt::Write;

/// Vendor name of a stored unit type.
pub fn unit_type_name(t: i32) -> &'static str {
    match UnitTypeMsg::try_from(t) {
        Ok(UnitTypeMsg::Hrc) => "HRC",
        Ok(UnitTypeMsg::Cnp1) => "CNP1",
        Ok(UnitTypeMsg::Cnp2) => "CNP2",
        Ok(UnitTypeMsg::Fnp2) => "FNP2",
        Ok(UnitTypeMsg::Fnp3) => "FNP3",
        Err(_) => "unknown",
    }
}

/// Vendor name of a stored layer kind.
pub fn layer_kind_name(k: i32) -> &'static str {
    match LayerKindMsg::try_from(k) {
        Ok(LayerKindMsg::InputConv2d) => "InputConv2D",
        Ok(LayerKindMsg::Conv2d) => "Conv2D",
        Ok(LayerKindMsg::Dense) => "Dense",
        Ok(LayerKindMsg::SeparableConv2d) => "SeparableConv2D",
        Err(_) => "unknown",
    }
}

/// The listing. Meant for validated artifacts; on others it never panics but may print nonsense.
pub fn listing(a: &Artifact) -> String {
    let mut s = String::new();
    let _ = write_listing(&mut s, a);
    s
}

fn hash_i32(v: impl Iterator<Item = i64>) -> String {
    format!(
        "{:016x}",
        nmc_ir::fnv1a(v.flat_map(|x| (x as i32).to_le_bytes()))
    )
}

fn dims(v: &[u32]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

fn write_listing(s: &mut String, a: &Artifact) -> std::fmt::Result {
    match &a.header {
        Some(h) => writeln!(
            s,
            "artifact {} format {} source {:016x}",
            h.target, h.format_version, h.source_hash
        )?,
        None => writeln!(s, "artifact (no header)")?,
    }
    for (i, inp) in a.inputs.iter().enumerate() {
        writeln!(
            s,
            "input {i} \"{}\" {:?} uint{} scale {:?}",
            inp.name, inp.shape, inp.bits, inp.scale
        )?;
        if let &[t, l, b, r] = inp.host_pads.as_slice() {
            let grow = |n: Option<&u32>, a: u32, z: u32| {
                n.map_or(0, |n| u64::from(*n) + u64::from(a) + u64::from(z))
            };
            writeln!(
                s,
                "  host zero-padding top/left/bottom/right {t}/{l}/{b}/{r} (code 0 = real 0.0) -> [{}, {}, {}]",
                inp.shape.first().copied().unwrap_or(0),
                grow(inp.shape.get(1), t, b),
                grow(inp.shape.get(2), l, r)
            )?;
        }
    }
    for (i, l) in a.layers.iter().enumerate() {
        write_layer(s, a, i, l)?;
    }
    for (i, o) in a.outputs.iter().enumerate() {
        writeln!(
            s,
            "output {i} \"{}\" {:?} scale {:?} <- layer {}",
            o.name, o.shape, o.scale, o.layer
        )?;
    }
    let nps = a
        .units
        .iter()
        .filter(|u| u.unit_type != UnitTypeMsg::Hrc as i32)
        .count();
    writeln!(s, "units {} ({nps} NPs)", a.units.len())?;
    let passes = a.units.iter().map(|u| u.pass + 1).max().unwrap_or(1);
    // Passes are shown only when there are several (a model that fits the mesh has one).
    let pass = |p: u32| {
        if passes > 1 {
            format!(" pass {p}")
        } else {
            String::new()
        }
    };
    for (i, u) in a.units.iter().enumerate() {
        if u.unit_type == UnitTypeMsg::Hrc as i32 {
            writeln!(
                s,
                "  unit {i} HRC node ({}, {}){}",
                u.col,
                u.row,
                pass(u.pass)
            )?;
        } else {
            writeln!(
                s,
                "  unit {i} {} np ({}, {}, {}){}",
                unit_type_name(u.unit_type),
                u.col,
                u.row,
                u.id,
                pass(u.pass)
            )?;
        }
    }
    if passes > 1 {
        writeln!(s, "passes {passes} (the mesh is reconfigured between them)")?;
        for p in 0..passes {
            let layers: Vec<String> = a
                .layers
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.slices
                        .first()
                        .and_then(|sl| a.units.get(sl.unit as usize))
                        .map(|u| u.pass)
                        == Some(p)
                })
                .map(|(i, _)| i.to_string())
                .collect();
            let nps = a
                .units
                .iter()
                .filter(|u| u.pass == p && u.unit_type != UnitTypeMsg::Hrc as i32)
                .count();
            writeln!(s, "  pass {p}: layers {} on {nps} NPs", layers.join(", "))?;
        }
    }
    Ok(())
}

fn write_layer(s: &mut String, a: &Artifact, i: usize, l: &LayerMsg) -> std::fmt::Result {
    let src = if l.source_kind == SourceKind::Input as i32 {
        format!("input {}", l.source_index)
    } else {
        format!("layer {}", l.source_index)
    };
    let kind = layer_kind_name(l.kind);
    writeln!(
        s,
        "layer {i} \"{}\" {kind} <- {src} {:?}",
        l.name, l.in_shape
    )?;
    if l.kind == LayerKindMsg::Dense as i32 {
        let order = if l.in_shape.len() == 3 {
            " (input flattened column-major: h + H·w + H·W·c)"
        } else {
            ""
        };
        writeln!(s, "  dense {:?}{order}", l.pre_shape)?;
    } else if l.kind == LayerKindMsg::SeparableConv2d as i32 {
        writeln!(
            s,
            "  depthwise kernel {} stride {} pads {:?}, then pointwise 1×1 -> {:?} (depthwise kernels flipped: true convolution; depthwise sums at full precision)",
            dims(&l.kernel),
            dims(&l.strides),
            l.pads,
            l.pre_shape
        )?;
    } else {
        let orientation = if l.kind == LayerKindMsg::InputConv2d as i32 {
            "kernels as given: cross-correlation"
        } else {
            "kernels flipped: true convolution"
        };
        writeln!(
            s,
            "  conv kernel {} stride {} pads {:?} -> {:?} ({orientation})",
            dims(&l.kernel),
            dims(&l.strides),
            l.pads,
            l.pre_shape
        )?;
    }
    match PoolMsg::try_from(l.pool) {
        Ok(PoolMsg::Max) => writeln!(
            s,
            "  pool max {} stride {} -> {:?}",
            dims(&l.pool_size),
            dims(&l.pool_stride),
            l.out_shape
        )?,
        Ok(PoolMsg::GlobalAvg) => writeln!(
            s,
            "  pool global-average (of potentials) -> {:?}",
            l.out_shape
        )?,
        _ => {}
    }
    let act = if l.act_bits == 0 {
        "none (raw 32-bit potentials)".to_string()
    } else {
        format!("{} bits, ceil((p - threshold) / step)", l.act_bits)
    };
    writeln!(
        s,
        "  bits input {} weights {} activation {act} scale {:?}",
        l.input_bits, l.weight_bits, l.scale
    )?;
    let nnz = l.weights.iter().filter(|w| **w != 0).count();
    writeln!(
        s,
        "  weights {} nnz {nnz} hash {}",
        l.weights.len(),
        hash_i32(l.weights.iter().map(|w| i64::from(*w)))
    )?;
    let (lo, hi) = l
        .act_step
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    writeln!(
        s,
        "  threshold [{}] hash {} act_step [{}] range {}..={} hash {}",
        l.threshold.len(),
        hash_i32(l.threshold.iter().map(|t| i64::from(*t))),
        l.act_step.len(),
        if l.act_step.is_empty() { 0 } else { lo },
        hi,
        hash_i32(l.act_step.iter().map(|t| i64::from(*t)))
    )?;
    for sl in &l.slices {
        let at = match a.units.get(sl.unit as usize) {
            Some(u) if u.unit_type == UnitTypeMsg::Hrc as i32 => {
                format!("HRC node ({}, {})", u.col, u.row)
            }
            Some(u) => format!(
                "{} np ({}, {}, {})",
                unit_type_name(u.unit_type),
                u.col,
                u.row,
                u.id
            ),
            None => "(missing)".into(),
        };
        writeln!(
            s,
            "  slice channels [{}, {}) rows [{}, {}) -> unit {} {at}",
            sl.c0, sl.c1, sl.r0, sl.r1, sl.unit
        )?;
    }
    Ok(())
}
