//! Structural validation of an artifact. After [`validate`] succeeds, every index in the artifact
//! is in range, every length agrees with its shape, and every size is capped, so the emulator can
//! index without checks and its allocations are bounded. Decoding always validates; the emulator
//! validates again because artifacts can also be built in memory.
//!
//! All arithmetic on untrusted numbers is done in `u64` after each factor is capped, so no check
//! can overflow.

use crate::artifact::{
    Artifact, ArtifactError, GroupKind, PoolKindMsg, Population, SourceKind, SynapseGroup, Weights,
};
use nmc_backend::check::{self, out_extent, window, MAX_VALUES, MAX_WEIGHTS, MAX_WINDOW};
use nmc_backend::corrupt;
use std::collections::BTreeSet;

/// Most spatial tile positions (row bands × column bands) of one population: far more than any
/// plane needs (ResNet-18's stem takes tens), few enough that the tables sized by them stay small.
pub const MAX_TILE_POSITIONS: usize = 1 << 12;

/// Largest weight exponent (a left shift of a 64-bit product).
pub const MAX_WEIGHT_EXP: i32 = 31;

/// Element count of a shape of any rank up to [`nmc_backend::check::MAX_RANK`].
fn numel(shape: &[u32], what: &str) -> Result<u64, ArtifactError> {
    check::numel(shape, &[], what)
}

/// Checks the whole artifact (the header is checked by [`crate::decode`]).
pub fn validate(a: &Artifact) -> Result<(), ArtifactError> {
    let chips = a.header.as_ref().map_or(0, |h| h.chips);
    check::item_counts(&[
        ("inputs", a.inputs.len()),
        ("populations", a.populations.len()),
        ("cores", a.cores.len()),
        ("outputs", a.outputs.len()),
    ])?;

    let mut input_sizes = Vec::with_capacity(a.inputs.len());
    let mut total = 0u64;
    for (i, inp) in a.inputs.iter().enumerate() {
        let what = check::named("input", i, &inp.name)?;
        let n = numel(&inp.shape, &what)?;
        total += n;
        if total > MAX_VALUES {
            return Err(corrupt(format!(
                "{what}: inputs exceed {MAX_VALUES} values"
            )));
        }
        if inp.min > inp.max {
            return Err(corrupt(format!(
                "{what}: empty range [{}, {}]",
                inp.min, inp.max
            )));
        }
        input_sizes.push(n);
    }

    let mut seen = BTreeSet::new();
    for (i, c) in a.cores.iter().enumerate() {
        if c.id as usize != i {
            return Err(corrupt(format!("core at position {i} has id {}", c.id)));
        }
        if c.chip >= chips {
            return Err(corrupt(format!(
                "core {i} is on chip {} but the header declares {chips} chip(s)",
                c.chip
            )));
        }
        if c.x >= MAX_WINDOW || c.y >= MAX_WINDOW {
            return Err(corrupt(format!(
                "core {i} has mesh position ({}, {}) beyond {MAX_WINDOW}",
                c.x, c.y
            )));
        }
        if !seen.insert((c.chip, c.x, c.y)) {
            return Err(corrupt(format!(
                "core {i} shares location (chip {}, x {}, y {}) with another core",
                c.chip, c.x, c.y
            )));
        }
    }

    let mut post_sizes: Vec<u64> = Vec::with_capacity(a.populations.len());
    let (mut total_pre, mut total_post) = (0u64, 0u64);
    for (i, p) in a.populations.iter().enumerate() {
        let what = check::named("population", i, &p.name)?;
        let (pre, post) = check_population(a, p, &what, &input_sizes, &post_sizes)?;
        total_pre += pre;
        total_post += post;
        if total_pre > MAX_VALUES || total_post > MAX_VALUES {
            return Err(corrupt(format!(
                "{what}: populations exceed {MAX_VALUES} neurons"
            )));
        }
        post_sizes.push(post);
    }

    for (i, o) in a.outputs.iter().enumerate() {
        let what = check::named("output", i, &o.name)?;
        let Some(&len) = post_sizes.get(o.population as usize) else {
            return Err(corrupt(format!(
                "{what}: population {} does not exist ({} populations)",
                o.population,
                post_sizes.len()
            )));
        };
        if numel(&o.shape, &what)? != len {
            return Err(corrupt(format!(
                "{what}: shape {:?} does not have the {len} values of population {}",
                o.shape, o.population
            )));
        }
    }
    Ok(())
}

/// Checks one population; returns its pre-pool and post-pool sizes.
fn check_population(
    a: &Artifact,
    p: &Population,
    what: &str,
    input_sizes: &[u64],
    post_sizes: &[u64],
) -> Result<(u64, u64), ArtifactError> {
    let pre = numel(&p.pre_shape, &format!("{what}: pre-pool shape"))?;
    let post = numel(&p.shape, &format!("{what}: shape"))?;
    if p.pre_shape.len() != 1 && p.pre_shape.len() != 3 {
        return Err(corrupt(format!(
            "{what}: pre-pool shape {:?} is neither [n] nor [c, h, w]",
            p.pre_shape
        )));
    }
    let channels = p.pre_shape[0];
    match &p.pool {
        None => {
            if p.shape != p.pre_shape {
                return Err(corrupt(format!(
                    "{what}: shape {:?} differs from pre-pool shape {:?} without pooling",
                    p.shape, p.pre_shape
                )));
            }
        }
        Some(pool) => {
            if p.pre_shape.len() != 3 {
                return Err(corrupt(format!(
                    "{what}: pooling needs a [c, h, w] population"
                )));
            }
            if PoolKindMsg::try_from(pool.kind).is_err() {
                return Err(corrupt(format!("{what}: unknown pool kind {}", pool.kind)));
            }
            let k = window::<2>(&pool.kernel, 1, &format!("{what}: pool kernel"))?;
            let s = window::<2>(&pool.strides, 1, &format!("{what}: pool strides"))?;
            let pd = window::<4>(&pool.pads, 0, &format!("{what}: pool pads"))?;
            let oh = out_extent(p.pre_shape[1], k[0], s[0], 1, pd[0], pd[2]);
            let ow = out_extent(p.pre_shape[2], k[1], s[1], 1, pd[1], pd[3]);
            let (Some(oh), Some(ow)) = (oh, ow) else {
                return Err(corrupt(format!(
                    "{what}: pool window {k:?} does not fit {:?}",
                    p.pre_shape
                )));
            };
            if p.shape != [channels, oh, ow] {
                return Err(corrupt(format!(
                    "{what}: shape {:?} is not the pooled shape {:?}",
                    p.shape,
                    [channels, oh, ow]
                )));
            }
        }
    }
    if !(1..=63).contains(&p.state_bits) || p.act_shift > 63 || p.act_min > p.act_max {
        return Err(corrupt(format!(
            "{what}: bad neuron parameters (state_bits {}, act_shift {}, range [{}, {}])",
            p.state_bits, p.act_shift, p.act_min, p.act_max
        )));
    }
    if let Some(c) = &p.cuba {
        let lim = nmc_ir::CUBA_STATE_LIMIT;
        if c.du > 4096
            || c.dv > 4096
            || !(0..1 << 17).contains(&c.vth)
            || crate::artifact::ResetMsg::try_from(c.reset).is_err()
            || i64::from(c.v_min) > 0
            || i64::from(c.v_min) < -lim
            || i64::from(c.v_bias).abs() >= lim
            || p.state_bits != 24
            || p.act_shift > 16
            || p.act_min != 0
            || p.act_max != 1
            || p.pool
                .as_ref()
                .is_some_and(|q| q.kind != crate::artifact::PoolKindMsg::Sum as i32)
            || p.groups.iter().any(|g| g.weight_exp != 0)
        {
            return Err(corrupt(format!(
                "{what}: bad CUBA-LIF registers (du {}, dv {}, vth {}, reset {}, v_min {}, v_bias {}, state_bits {}, act_shift {}, range [{}, {}], pooled {}, weight exponents {:?})",
                c.du, c.dv, c.vth, c.reset, c.v_min, c.v_bias, p.state_bits, p.act_shift, p.act_min, p.act_max,
                p.pool.is_some(),
                p.groups.iter().map(|g| g.weight_exp).collect::<Vec<_>>()
            )));
        }
    }
    if !p.bias.is_empty() && p.bias.len() != channels as usize {
        return Err(corrupt(format!(
            "{what}: {} bias values for {channels} channels",
            p.bias.len()
        )));
    }
    if p.groups.is_empty() {
        return Err(corrupt(format!("{what}: no synapse groups")));
    }
    for (j, g) in p.groups.iter().enumerate() {
        let gwhat = format!("{what}, group {j}");
        check_group(g, &p.pre_shape, &gwhat, input_sizes, post_sizes)?;
    }
    check_slices(a, p, channels, what)?;
    Ok((pre, post))
}

fn check_group(
    g: &SynapseGroup,
    pre_shape: &[u32],
    what: &str,
    input_sizes: &[u64],
    post_sizes: &[u64],
) -> Result<(), ArtifactError> {
    if !(0..=MAX_WEIGHT_EXP).contains(&g.weight_exp) {
        return Err(corrupt(format!(
            "{what}: weight exponent {} outside 0..={MAX_WEIGHT_EXP}",
            g.weight_exp
        )));
    }
    if g.sources.is_empty() {
        return Err(corrupt(format!("{what}: no sources")));
    }
    let mut in_len = 0u64;
    for (k, s) in g.sources.iter().enumerate() {
        let expected = match SourceKind::try_from(s.kind) {
            Ok(SourceKind::Input) => input_sizes.get(s.index as usize),
            // Only earlier populations: this keeps the network acyclic and topologically ordered.
            Ok(SourceKind::Population) => post_sizes.get(s.index as usize),
            Err(_) => {
                return Err(corrupt(format!(
                    "{what}: source {k} has unknown kind {}",
                    s.kind
                )))
            }
        };
        let Some(&expected) = expected else {
            return Err(corrupt(format!(
                "{what}: source {k} refers to missing or later {} {}",
                if s.kind == SourceKind::Input as i32 {
                    "input"
                } else {
                    "population"
                },
                s.index
            )));
        };
        if u64::from(s.length) != expected {
            return Err(corrupt(format!(
                "{what}: source {k} has length {} but its value has {expected}",
                s.length
            )));
        }
        in_len += expected;
    }
    let wshape: Vec<u64> = match &g.kind {
        None => return Err(corrupt(format!("{what}: missing connectivity"))),
        Some(GroupKind::Dense(d)) => {
            if pre_shape != [d.out_features] {
                return Err(corrupt(format!(
                    "{what}: dense group with {} outputs feeds a population of shape {pre_shape:?}",
                    d.out_features
                )));
            }
            if u64::from(d.in_features) != in_len {
                return Err(corrupt(format!(
                    "{what}: dense group expects {} inputs, its sources give {in_len}",
                    d.in_features
                )));
            }
            vec![u64::from(d.out_features), u64::from(d.in_features)]
        }
        Some(GroupKind::Conv(c)) => {
            let ins = &c.in_shape;
            if ins.len() != 3 || numel(ins, &format!("{what}: conv input"))? != in_len {
                return Err(corrupt(format!(
                    "{what}: conv input shape {ins:?} does not match its sources ({in_len} values)"
                )));
            }
            let k = window::<2>(&c.kernel, 1, &format!("{what}: kernel"))?;
            let s = window::<2>(&c.strides, 1, &format!("{what}: strides"))?;
            let d = window::<2>(&c.dilations, 1, &format!("{what}: dilations"))?;
            let pd = window::<4>(&c.pads, 0, &format!("{what}: pads"))?;
            if c.groups == 0
                || c.out_channels == 0
                || ins[0] % c.groups != 0
                || c.out_channels % c.groups != 0
            {
                return Err(corrupt(format!(
                    "{what}: {} groups do not divide {} input and {} output channels",
                    c.groups, ins[0], c.out_channels
                )));
            }
            let oh = out_extent(ins[1], k[0], s[0], d[0], pd[0], pd[2]);
            let ow = out_extent(ins[2], k[1], s[1], d[1], pd[1], pd[3]);
            let (Some(oh), Some(ow)) = (oh, ow) else {
                return Err(corrupt(format!(
                    "{what}: kernel {k:?} does not fit input {ins:?}"
                )));
            };
            if pre_shape != [c.out_channels, oh, ow] {
                return Err(corrupt(format!(
                    "{what}: conv output {:?} differs from the population's pre-pool shape {pre_shape:?}",
                    [c.out_channels, oh, ow]
                )));
            }
            vec![
                u64::from(c.out_channels),
                u64::from(ins[0] / c.groups),
                u64::from(k[0]),
                u64::from(k[1]),
            ]
        }
    };
    let count = wshape.iter().fold(1u64, |n, d| n.saturating_mul(*d));
    let cap = match &g.kind {
        Some(GroupKind::Dense(_)) => check::MAX_DENSE_GROUP_WEIGHTS,
        _ => MAX_WEIGHTS,
    };
    if count > cap {
        return Err(corrupt(format!(
            "{what}: {count} weights exceed the cap of {cap}"
        )));
    }
    let rows = wshape[0];
    let cols = count / rows;
    match &g.weights {
        None => Err(corrupt(format!("{what}: missing weights"))),
        Some(Weights::Dense(w)) => {
            if w.values.len() as u64 != count {
                return Err(corrupt(format!(
                    "{what}: {} weights stored, shape {wshape:?} needs {count}",
                    w.values.len()
                )));
            }
            Ok(())
        }
        Some(Weights::Csr(w)) => check_csr(&w.indptr, &w.indices, w.values.len(), rows, cols)
            .map_err(|m| corrupt(format!("{what}: csr weights: {m}"))),
    }
}

fn check_csr(
    indptr: &[u32],
    indices: &[u32],
    nvals: usize,
    rows: u64,
    cols: u64,
) -> Result<(), String> {
    if indptr.len() as u64 != rows + 1 {
        return Err(format!("{} row pointers for {rows} rows", indptr.len()));
    }
    if indptr[0] != 0 {
        return Err("first row pointer is not 0".into());
    }
    let nnz = indptr[indptr.len() - 1] as usize;
    if nnz != indices.len() || nnz != nvals {
        return Err(format!(
            "last row pointer {nnz}, {} indices, {nvals} values",
            indices.len()
        ));
    }
    // Monotone pointers ending at nnz keep every row range inside `indices`.
    if let Some(r) = indptr.windows(2).position(|w| w[0] > w[1]) {
        return Err(format!("row pointers decrease at row {r}"));
    }
    for r in 0..indptr.len() - 1 {
        let row = &indices[indptr[r] as usize..indptr[r + 1] as usize];
        if let Some(&c) = row.iter().find(|&&c| u64::from(c) >= cols) {
            return Err(format!(
                "index {c} out of range in row {r} ({cols} columns)"
            ));
        }
        if row.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("indices of row {r} are not strictly increasing"));
        }
    }
    Ok(())
}

fn check_slices(
    a: &Artifact,
    p: &Population,
    channels: u32,
    what: &str,
) -> Result<(), ArtifactError> {
    for (k, s) in p.slices.iter().enumerate() {
        if s.core as usize >= a.cores.len() {
            return Err(corrupt(format!(
                "{what}: slice {k} uses core {}, but the artifact has {} core(s)",
                s.core,
                a.cores.len()
            )));
        }
    }
    check::item_counts(&[("slices", p.slices.len())])
        .map_err(|e| corrupt(format!("{what}: {e}")))?;
    let slices: Vec<nmc_ir::CoreSlice> = p.slices.iter().map(|s| s.to_ir()).collect();
    let plane = crate::tiles::Plane::of_population(p).map(|pl| (pl.rows.post, pl.cols.post));
    let grid = crate::tiles::check_grid(&slices, channels, plane)
        .map_err(|m| corrupt(format!("{what}: slices: {m}")))?;
    let spatial = grid.rows.len() * grid.cols.len();
    if spatial > MAX_TILE_POSITIONS {
        return Err(corrupt(format!(
            "{what}: slices: {} row × {} column bands exceed {MAX_TILE_POSITIONS} tile positions",
            grid.rows.len(),
            grid.cols.len()
        )));
    }
    Ok(())
}
