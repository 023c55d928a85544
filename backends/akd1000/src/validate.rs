//! Validation of an artifact. After [`validate`] succeeds every index is in range, every length
//! matches its shape, every size is capped, every unit is an HRC or NP of the device configured
//! as a type it can take, each layer's slices cover its neurons exactly once and fit their NP's
//! SRAM, and every value fits its declared width. The emulator can then index without checks.
//! All arithmetic on untrusted numbers is done in `u64`/`i64` after each factor is capped.

use crate::artifact::{
    Artifact, ArtifactError, LayerKindMsg, LayerMsg, PoolMsg, SourceKind, UnitTypeMsg,
};
use crate::spec::{ChipSpec, NpType};
use nmc_backend::check::{add_values, item_counts, numel, out_extent, window, MAX_WEIGHTS};
use nmc_backend::corrupt;

/// Ranks of a layer's or input's shape: `[n]` or `[c, h, w]`.
const SHAPE_RANKS: &[usize] = &[1, 3];

/// Two values, each one of `allowed` (a chip-specific set within the shared window limits).
fn pair(v: &[u32], allowed: &[u32], what: &str) -> Result<[u32; 2], ArtifactError> {
    let a = window::<2>(v, 0, what)?;
    if a.iter().any(|x| !allowed.contains(x)) {
        return Err(corrupt(format!("{what}: {a:?} not in {allowed:?}")));
    }
    Ok(a)
}

/// The shape the layers reading an input see: `shape` with the host padding `pads` (empty, or
/// `[top, left, bottom, right]` on a `[c, h, w]` input) added.
fn host_padded(shape: &[u32], pads: &[u32], what: &str) -> Result<Vec<u32>, ArtifactError> {
    match (pads, shape) {
        ([], _) => Ok(shape.to_vec()),
        (&[t, l, b, r], &[c, h, w]) => {
            let grow = |n: u32, a: u32, z: u32| {
                u32::try_from(u64::from(n) + u64::from(a) + u64::from(z))
                    .map_err(|_| corrupt(format!("{what}: host padding {pads:?} overflows")))
            };
            Ok(vec![c, grow(h, t, b)?, grow(w, l, r)?])
        }
        _ => Err(corrupt(format!(
            "{what}: host padding {pads:?} is not [top, left, bottom, right] of a [c, h, w] input {shape:?}"
        ))),
    }
}

/// The unit type of `v`, if known.
pub fn unit_type(v: i32) -> Option<UnitTypeMsg> {
    UnitTypeMsg::try_from(v).ok()
}

/// The NP type of a unit type (`None` for the HRC).
pub fn np_type(t: UnitTypeMsg) -> Option<NpType> {
    match t {
        UnitTypeMsg::Hrc => None,
        UnitTypeMsg::Cnp1 => Some(NpType::Cnp1),
        UnitTypeMsg::Cnp2 => Some(NpType::Cnp2),
        UnitTypeMsg::Fnp2 => Some(NpType::Fnp2),
        UnitTypeMsg::Fnp3 => Some(NpType::Fnp3),
    }
}

/// Checks the whole artifact against `spec` (the header is checked by [`crate::decode`]).
pub fn validate(a: &Artifact, spec: &ChipSpec) -> Result<(), ArtifactError> {
    item_counts(&[
        ("inputs", a.inputs.len()),
        ("layers", a.layers.len()),
        ("outputs", a.outputs.len()),
    ])?;
    // Each pass configures at most the whole device; there are at most as many passes as layers.
    let most_units = (spec.nps.len() + 1).saturating_mul(a.layers.len().max(1));
    if a.units.len() > most_units {
        return Err(corrupt(format!(
            "{} units; the device has {} NPs and one HRC per pass, and {} layers",
            a.units.len(),
            spec.nps.len(),
            a.layers.len()
        )));
    }
    // What the layers reading each input see: its shape after any host padding.
    let mut input_shapes = Vec::with_capacity(a.inputs.len());
    for (i, inp) in a.inputs.iter().enumerate() {
        let what = nmc_backend::check::named("input", i, &inp.name)?;
        numel(&inp.shape, SHAPE_RANKS, &what)?;
        if ![1, 2, 4, 8].contains(&inp.bits) {
            return Err(corrupt(format!("{what}: {} bits (1, 2, 4 or 8)", inp.bits)));
        }
        let seen = host_padded(inp.shape.as_slice(), &inp.host_pads, &what)?;
        numel(&seen, SHAPE_RANKS, &format!("{what}: padded"))?;
        input_shapes.push(seen);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, u) in a.units.iter().enumerate() {
        let Some(t) = unit_type(u.unit_type) else {
            return Err(corrupt(format!(
                "unit {i} has unknown type {}",
                u.unit_type
            )));
        };
        match np_type(t) {
            None => {
                if (u.col, u.row, u.id) != (spec.hrc_node.0, spec.hrc_node.1, 0) {
                    return Err(corrupt(format!(
                        "unit {i}: the HRC is at node ({}, {}), not ({}, {})",
                        spec.hrc_node.0, spec.hrc_node.1, u.col, u.row
                    )));
                }
            }
            Some(nt) => match spec.np(u.col, u.row, u.id) {
                Some(s) if s.can(nt) => {}
                Some(s) => {
                    return Err(corrupt(format!(
                        "unit {i}: NP ({}, {}, {}) cannot be {} (it can be {})",
                        u.col,
                        u.row,
                        u.id,
                        nt.name(),
                        s.types
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
                None => {
                    return Err(corrupt(format!(
                        "unit {i}: ({}, {}, {}) is not an NP of the device",
                        u.col, u.row, u.id
                    )))
                }
            },
        }
        if u.pass as usize >= a.layers.len().max(1) {
            return Err(corrupt(format!(
                "unit {i}: pass {} of a model of {} layers",
                u.pass,
                a.layers.len()
            )));
        }
        if !seen.insert((u.pass, u.col, u.row, u.id, t == UnitTypeMsg::Hrc)) {
            return Err(corrupt(format!(
                "unit {i}: ({}, {}, {}) is listed twice in pass {}",
                u.col, u.row, u.id, u.pass
            )));
        }
    }
    // Per layer: out size and output bits (0: raw potentials).
    let mut outs: Vec<(u64, u32)> = Vec::with_capacity(a.layers.len());
    let mut total = 0u64;
    for (i, l) in a.layers.iter().enumerate() {
        let what = nmc_backend::check::named("layer", i, &l.name)?;
        let (size, bits) = check_layer(a, spec, l, &what, &input_shapes, &outs)?;
        add_values(&mut total, size, &format!("{what}: layers"))?;
        outs.push((size, bits));
    }
    check_passes(a)?;
    for (i, o) in a.outputs.iter().enumerate() {
        let what = nmc_backend::check::named("output", i, &o.name)?;
        let Some(&(size, _)) = outs.get(o.layer as usize) else {
            return Err(corrupt(format!("{what}: layer {} does not exist", o.layer)));
        };
        if numel(&o.shape, &[], &what)? != size {
            return Err(corrupt(format!(
                "{what}: shape {:?} does not have the {size} values of layer {}",
                o.shape, o.layer
            )));
        }
    }
    Ok(())
}

/// Hardware passes: a layer's units are all in one pass, layers come in pass order, and passes
/// are numbered from 0 without gaps (every pass runs at least one layer; every unit belongs to
/// a layer of its pass). Runs after every slice's unit index is checked.
fn check_passes(a: &Artifact) -> Result<(), ArtifactError> {
    let mut last = 0u32;
    let mut used = vec![false; a.units.len()];
    for (i, l) in a.layers.iter().enumerate() {
        let pass_of = |s: &crate::artifact::SliceMsg| a.units[s.unit as usize].pass;
        let p = l.slices.first().map_or(0, pass_of);
        if let Some(s) = l.slices.iter().find(|s| pass_of(s) != p) {
            return Err(corrupt(format!(
                "layer {i}: its units are in passes {p} and {}",
                pass_of(s)
            )));
        }
        let expected = if i == 0 { 0..=0 } else { last..=last + 1 };
        if !expected.contains(&p) {
            return Err(corrupt(format!(
                "layer {i}: pass {p} after pass {last} (passes run in order, from 0, none empty)"
            )));
        }
        last = p;
        for s in &l.slices {
            used[s.unit as usize] = true;
        }
    }
    if let Some(u) = used.iter().position(|u| !u) {
        return Err(corrupt(format!("unit {u} runs no layer")));
    }
    Ok(())
}

fn check_layer(
    a: &Artifact,
    spec: &ChipSpec,
    l: &LayerMsg,
    what: &str,
    input_shapes: &[Vec<u32>],
    outs: &[(u64, u32)],
) -> Result<(u64, u32), ArtifactError> {
    let Ok(kind) = LayerKindMsg::try_from(l.kind) else {
        return Err(corrupt(format!("{what}: unknown kind {}", l.kind)));
    };
    let (src_size, src_bits) = match SourceKind::try_from(l.source_kind) {
        Ok(SourceKind::Input) => {
            let i = l.source_index as usize;
            match (input_shapes.get(i), a.inputs.get(i)) {
                (Some(seen), Some(inp)) => {
                    if !inp.host_pads.is_empty()
                        && (kind != LayerKindMsg::InputConv2d || l.in_shape != *seen)
                    {
                        return Err(corrupt(format!(
                            "{what}: input {i} is padded on the host to {seen:?}, which only an InputConv2D reading {seen:?} takes (this layer: {kind:?} reading {:?})",
                            l.in_shape
                        )));
                    }
                    // Validated with the inputs: the product is capped.
                    (seen.iter().map(|d| u64::from(*d)).product(), inp.bits)
                }
                _ => {
                    return Err(corrupt(format!(
                        "{what}: input {} does not exist",
                        l.source_index
                    )))
                }
            }
        }
        Ok(SourceKind::Layer) => *outs.get(l.source_index as usize).ok_or_else(|| {
            corrupt(format!(
                "{what}: source layer {} is missing or later",
                l.source_index
            ))
        })?,
        Err(_) => {
            return Err(corrupt(format!(
                "{what}: unknown source kind {}",
                l.source_kind
            )))
        }
    };
    if src_bits == 0 || src_bits != l.input_bits {
        return Err(corrupt(format!(
            "{what}: reads {}-bit values as {}-bit input",
            src_bits, l.input_bits
        )));
    }
    let in_n = numel(&l.in_shape, SHAPE_RANKS, &format!("{what}: input"))?;
    if in_n != src_size {
        return Err(corrupt(format!(
            "{what}: input shape {:?} does not match its source's {src_size} values",
            l.in_shape
        )));
    }
    numel(&l.pre_shape, SHAPE_RANKS, &format!("{what}: neurons"))?;
    let out_n = numel(&l.out_shape, SHAPE_RANKS, &format!("{what}: output"))?;
    let channels = l.pre_shape[0];
    let weights_per_channel: u64 = match kind {
        LayerKindMsg::Dense => {
            if l.pre_shape.len() != 1 || l.out_shape != l.pre_shape {
                return Err(corrupt(format!(
                    "{what}: a dense layer has [n] neurons and no pooling"
                )));
            }
            in_n
        }
        LayerKindMsg::InputConv2d | LayerKindMsg::Conv2d | LayerKindMsg::SeparableConv2d => {
            if l.in_shape.len() != 3 || l.pre_shape.len() != 3 {
                return Err(corrupt(format!(
                    "{what}: a convolution maps [c, h, w] to [c, h, w]"
                )));
            }
            let k = pair(&l.kernel, &[1, 3, 5, 7], &format!("{what}: kernel"))?;
            let s = pair(&l.strides, &[1, 2, 3], &format!("{what}: strides"))?;
            let pd: [u32; 4] = l
                .pads
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(format!("{what}: pads need 4 values")))?;
            if pd
                .iter()
                .zip([k[0], k[1], k[0], k[1]])
                .any(|(p, k)| *p >= k)
            {
                return Err(corrupt(format!(
                    "{what}: pads {pd:?} as large as the kernel {k:?}"
                )));
            }
            let oh = out_extent(l.in_shape[1], k[0], s[0], 1, pd[0], pd[2]);
            let ow = out_extent(l.in_shape[2], k[1], s[1], 1, pd[1], pd[3]);
            if Some(l.pre_shape[1]) != oh || Some(l.pre_shape[2]) != ow {
                return Err(corrupt(format!(
                    "{what}: neurons {:?} are not the convolution's output",
                    l.pre_shape
                )));
            }
            if kind == LayerKindMsg::SeparableConv2d {
                // Depthwise `[c][kh][kw]`, then pointwise `[co][c]`.
                let dw = u64::from(l.in_shape[0]) * u64::from(k[0]) * u64::from(k[1]);
                if l.dw_weights.len() as u64 != dw {
                    return Err(corrupt(format!(
                        "{what}: {} depthwise weights stored, {dw} expected",
                        l.dw_weights.len()
                    )));
                }
                u64::from(l.in_shape[0])
            } else {
                if !l.dw_weights.is_empty() {
                    return Err(corrupt(format!(
                        "{what}: depthwise weights on a {kind:?} layer"
                    )));
                }
                u64::from(l.in_shape[0]) * u64::from(k[0]) * u64::from(k[1])
            }
        }
    };
    if kind == LayerKindMsg::Dense && !l.dw_weights.is_empty() {
        return Err(corrupt(format!(
            "{what}: depthwise weights on a dense layer"
        )));
    }
    let count = u64::from(channels).saturating_mul(weights_per_channel);
    if count > MAX_WEIGHTS || l.weights.len() as u64 != count {
        return Err(corrupt(format!(
            "{what}: {} weights stored, {count} expected (at most {MAX_WEIGHTS})",
            l.weights.len()
        )));
    }
    let wb = l.weight_bits;
    let in_range = |w: i32| match wb {
        // akida's 1-bit weights are {0, 1}; it rejects −1 (docs/chips.md §7).
        1 => w == 0 || w == 1,
        2 | 4 | 8 => (-(1 << (wb - 1))..(1 << (wb - 1))).contains(&w),
        _ => false,
    };
    if let Some(w) = l
        .weights
        .iter()
        .chain(&l.dw_weights)
        .find(|w| !in_range(**w))
    {
        return Err(corrupt(format!(
            "{what}: weight {w} does not fit {wb} bits"
        )));
    }
    let pool = PoolMsg::try_from(l.pool)
        .map_err(|_| corrupt(format!("{what}: unknown pool {}", l.pool)))?;
    match pool {
        PoolMsg::None => {
            if l.out_shape != l.pre_shape {
                return Err(corrupt(format!(
                    "{what}: output {:?} differs from the neurons {:?} without pooling",
                    l.out_shape, l.pre_shape
                )));
            }
        }
        PoolMsg::Max => {
            if l.pre_shape.len() != 3 {
                return Err(corrupt(format!("{what}: pooling needs [c, h, w]")));
            }
            let k = pair(&l.pool_size, &[1, 2], &format!("{what}: pool size"))?;
            let s = pair(&l.pool_stride, &[1, 2], &format!("{what}: pool stride"))?;
            let oh = out_extent(l.pre_shape[1], k[0], s[0], 1, 0, 0);
            let ow = out_extent(l.pre_shape[2], k[1], s[1], 1, 0, 0);
            if l.out_shape.len() != 3
                || (Some(l.out_shape[1]), Some(l.out_shape[2])) != (oh, ow)
                || l.out_shape[0] != channels
            {
                return Err(corrupt(format!(
                    "{what}: output {:?} is not the pooled neurons",
                    l.out_shape
                )));
            }
        }
        PoolMsg::GlobalAvg => {
            if l.pre_shape.len() != 3 || l.out_shape != [channels, 1, 1] {
                return Err(corrupt(format!(
                    "{what}: global pooling maps [c, h, w] to [c, 1, 1]"
                )));
            }
        }
    }
    if ![0, 1, 2, 4].contains(&l.act_bits) {
        return Err(corrupt(format!("{what}: {} activation bits", l.act_bits)));
    }
    if l.threshold.len() != channels as usize || l.act_step.len() != channels as usize {
        return Err(corrupt(format!(
            "{what}: {} thresholds and {} steps for {channels} channels",
            l.threshold.len(),
            l.act_step.len()
        )));
    }
    if l.act_bits > 0 {
        let max = spec.limits.act_step_max;
        if let Some(s) = l.act_step.iter().find(|s| !(1..=max).contains(*s)) {
            return Err(corrupt(format!("{what}: act_step {s} outside 1..={max}")));
        }
        let tmax = spec.limits.threshold_max;
        if let Some(t) = l.threshold.iter().find(|t| i64::from(**t).abs() > tmax) {
            return Err(corrupt(format!("{what}: threshold {t} beyond ±{tmax}")));
        }
    } else if pool != PoolMsg::None {
        return Err(corrupt(format!(
            "{what}: a layer without activation has no pooling"
        )));
    }
    check_slices(a, spec, l, kind, what, weights_per_channel)?;
    Ok((out_n, l.act_bits))
}

/// Whether `filters` channels of a layer fit the weight SRAM of an NP of type `nt`, by the rules
/// of docs/chips.md §7.1 (an FNP2's weights are in external memory).
fn check_weight_fit(
    spec: &ChipSpec,
    l: &LayerMsg,
    kind: LayerKindMsg,
    nt: NpType,
    filters: u64,
    weights_per_channel: u64,
) -> Result<(), String> {
    match (kind, nt) {
        (_, NpType::Fnp2) => Ok(()),
        (LayerKindMsg::Dense, NpType::Fnp3) => {
            let per = spec
                .fnp3_neuron_bytes(weights_per_channel, l.weight_bits)
                .ok_or_else(|| {
                    format!(
                        "has {}-bit weights, which an FNP3 does not take",
                        l.weight_bits
                    )
                })?;
            let need = per.saturating_mul(filters);
            if need > spec.fnp3_capacity_bytes() {
                return Err(format!(
                    "needs {need} bytes of FNP3 weight SRAM, an FNP3 has {}",
                    spec.fnp3_capacity_bytes()
                ));
            }
            Ok(())
        }
        (_, NpType::Cnp1 | NpType::Cnp2) => {
            // Validated before: a convolution's kernel and input shape have their lengths.
            let (k, cin) = (l.kernel[0], u64::from(l.in_shape[0]));
            let words = if kind == LayerKindMsg::SeparableConv2d {
                spec.sep_words(k, l.weight_bits, cin, filters)
            } else {
                spec.cnp_words(k, l.weight_bits, cin, filters)
            };
            let words = words.ok_or_else(|| {
                format!(
                    "has a {k}×{k} kernel at {} bits, which a CNP does not take",
                    l.weight_bits
                )
            })?;
            if words > spec.cnp_capacity_words() {
                return Err(format!(
                    "needs {words} words of CNP weight SRAM, a CNP has {}",
                    spec.cnp_capacity_words()
                ));
            }
            Ok(())
        }
        (_, NpType::Fnp3) => Err("is not a dense layer on an FNP3".into()),
    }
}

fn check_slices(
    a: &Artifact,
    spec: &ChipSpec,
    l: &LayerMsg,
    kind: LayerKindMsg,
    what: &str,
    weights_per_channel: u64,
) -> Result<(), ArtifactError> {
    let channels = u64::from(l.pre_shape[0]);
    let rows = if kind == LayerKindMsg::Dense {
        1
    } else {
        u64::from(l.pre_shape[1])
    };
    if l.slices.is_empty() || l.slices.len() > spec.nps.len() + 1 {
        return Err(corrupt(format!("{what}: {} slices", l.slices.len())));
    }
    let mut area = 0u64;
    for (k, s) in l.slices.iter().enumerate() {
        let Some(u) = a.units.get(s.unit as usize) else {
            return Err(corrupt(format!(
                "{what}: slice {k} uses unit {} of {}",
                s.unit,
                a.units.len()
            )));
        };
        let t = unit_type(u.unit_type).unwrap_or(UnitTypeMsg::Hrc);
        let ok = match kind {
            LayerKindMsg::InputConv2d => t == UnitTypeMsg::Hrc,
            LayerKindMsg::Conv2d | LayerKindMsg::SeparableConv2d => {
                matches!(t, UnitTypeMsg::Cnp1 | UnitTypeMsg::Cnp2)
            }
            LayerKindMsg::Dense => matches!(t, UnitTypeMsg::Fnp2 | UnitTypeMsg::Fnp3),
        };
        if !ok {
            return Err(corrupt(format!(
                "{what}: slice {k} runs a {kind:?} layer on a {t:?} unit"
            )));
        }
        let (c0, c1, r0, r1) = (
            u64::from(s.c0),
            u64::from(s.c1),
            u64::from(s.r0),
            u64::from(s.r1),
        );
        if c0 >= c1 || c1 > channels || r0 >= r1 || r1 > rows {
            return Err(corrupt(format!(
                "{what}: slice {k} covers channels [{c0}, {c1}) rows [{r0}, {r1}) of {channels} × {rows}"
            )));
        }
        for t2 in &l.slices[..k] {
            let overlap = u64::from(t2.c0) < c1
                && c0 < u64::from(t2.c1)
                && u64::from(t2.r0) < r1
                && r0 < u64::from(t2.r1);
            if overlap {
                return Err(corrupt(format!("{what}: slice {k} overlaps another")));
            }
        }
        area += (c1 - c0) * (r1 - r0);
        // SRAM fit of an NP (the HRC's limits are the InputConv2D constraints).
        if let Some(nt) = np_type(t) {
            let in_bits = match kind {
                LayerKindMsg::Dense => {
                    l.in_shape.iter().map(|d| u64::from(*d)).product::<u64>()
                        * u64::from(l.input_bits)
                }
                _ => {
                    // Validated above: kernel, strides and pads have their lengths.
                    let (k, st, p) = (
                        i64::from(l.kernel[0]),
                        i64::from(l.strides[0]),
                        i64::from(l.pads[0]),
                    );
                    let h = i64::from(l.in_shape[1]);
                    let lo = (r0 as i64 * st - p).clamp(0, h);
                    let hi = ((r1 as i64 - 1) * st - p + k).clamp(lo, h);
                    (hi - lo) as u64
                        * u64::from(l.in_shape[0])
                        * u64::from(l.in_shape[2])
                        * u64::from(l.input_bits)
                }
            };
            if in_bits > spec.input_sram_bytes * 8 {
                return Err(corrupt(format!(
                    "{what}: slice {k} needs {} bytes of input SRAM, an NP has {}",
                    in_bits.div_ceil(8),
                    spec.input_sram_bytes
                )));
            }
            check_weight_fit(spec, l, kind, nt, c1 - c0, weights_per_channel)
                .map_err(|m| corrupt(format!("{what}: slice {k} {m}")))?;
        }
    }
    if area != channels * rows {
        return Err(corrupt(format!(
            "{what}: slices cover {area} of {} channel-rows",
            channels * rows
        )));
    }
    Ok(())
}
