//! A readable, deterministic text listing of an artifact, for snapshots and review. Weights are
//! summarised as shape, non-zero count and the same FNV-1a content hash the IR text format prints
//! for the constant they came from, so a listing can be matched against the IR by eye.

use crate::artifact::{Artifact, GroupKind, PoolKindMsg, Population, SourceKind, Weights};
use nmc_backend::check::MAX_WEIGHTS;
use std::fmt::Write;

/// The listing. Meant for validated artifacts; on others it never panics but may print nonsense.
pub fn listing(a: &Artifact) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_listing(&mut s, a);
    s
}

fn write_listing(s: &mut String, a: &Artifact) -> std::fmt::Result {
    match &a.header {
        Some(h) => writeln!(
            s,
            "artifact {} format {} source {:016x} chips {}",
            h.target, h.format_version, h.source_hash, h.chips
        )?,
        None => writeln!(s, "artifact (no header)")?,
    }
    for (i, inp) in a.inputs.iter().enumerate() {
        writeln!(
            s,
            "input {i} \"{}\" {:?} scale {:?} range [{}, {}]",
            inp.name, inp.shape, inp.scale, inp.min, inp.max
        )?;
    }
    for (i, p) in a.populations.iter().enumerate() {
        write_population(s, a, i, p)?;
    }
    for (i, o) in a.outputs.iter().enumerate() {
        writeln!(
            s,
            "output {i} \"{}\" {:?} scale {:?} <- population {}",
            o.name, o.shape, o.scale, o.population
        )?;
    }
    writeln!(s, "cores {}", a.cores.len())?;
    for c in &a.cores {
        writeln!(s, "  core {} chip {} x {} y {}", c.id, c.chip, c.x, c.y)?;
    }
    Ok(())
}

fn write_population(s: &mut String, a: &Artifact, i: usize, p: &Population) -> std::fmt::Result {
    let pre: u64 = p.pre_shape.iter().map(|&d| u64::from(d)).product();
    let channels = u64::from(p.pre_shape.first().copied().unwrap_or(1).max(1));
    let per_channel = pre / channels;
    writeln!(
        s,
        "population {i} \"{}\" shape {:?} pre {:?} neurons {pre}",
        p.name, p.shape, p.pre_shape
    )?;
    match &p.cuba {
        None => writeln!(
            s,
            "  neuron sigma-delta state {}b shift {} act [{}, {}] scale {:?}",
            p.state_bits, p.act_shift, p.act_min, p.act_max, p.scale
        )?,
        Some(c) => {
            let c = c.to_ir();
            writeln!(
                s,
                "  neuron cuba-lif state {}b shift {} du {} dv {} vth {} v_bias {} v_min {} reset {}",
                p.state_bits,
                p.act_shift,
                c.du,
                c.dv,
                c.vth,
                c.v_bias,
                c.v_min,
                c.reset.name()
            )?
        }
    }
    for (j, g) in p.groups.iter().enumerate() {
        let from: Vec<String> = g
            .sources
            .iter()
            .map(|src| {
                let kind = if src.kind == SourceKind::Input as i32 {
                    "input"
                } else {
                    "population"
                };
                format!("{kind} {} ({})", src.index, src.length)
            })
            .collect();
        let (kind, wshape): (String, Vec<u64>) = match &g.kind {
            Some(GroupKind::Dense(d)) => (
                format!("dense {}x{}", d.out_features, d.in_features),
                vec![u64::from(d.out_features), u64::from(d.in_features)],
            ),
            Some(GroupKind::Conv(c)) => {
                let cin = c.in_shape.first().copied().unwrap_or(0);
                let cig = cin.checked_div(c.groups).unwrap_or(0);
                let k = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
                (
                    format!(
                        "conv in {:?} out {} kernel {:?} stride {:?} pads {:?} dilation {:?} groups {}",
                        c.in_shape, c.out_channels, c.kernel, c.strides, c.pads, c.dilations, c.groups
                    ),
                    vec![
                        u64::from(c.out_channels),
                        u64::from(cig),
                        u64::from(k(&c.kernel, 0)),
                        u64::from(k(&c.kernel, 1)),
                    ],
                )
            }
            None => ("(no connectivity)".into(), vec![]),
        };
        writeln!(
            s,
            "  group {j} {kind} exp {} from {}",
            g.weight_exp,
            from.join(" + ")
        )?;
        let (storage, nnz, hash) = weights_summary(&wshape, g.weights.as_ref());
        writeln!(s, "    weights {wshape:?} {storage} nnz {nnz} hash {hash}")?;
    }
    if p.bias.is_empty() {
        writeln!(s, "  bias none")?;
    } else {
        let shape = [p.bias.len() as u64];
        let hash = content_hash(&shape, p.bias.iter().copied());
        let nnz = p.bias.iter().filter(|b| **b != 0).count();
        writeln!(s, "  bias [{}] nnz {nnz} hash {hash:016x}", p.bias.len())?;
    }
    if let Some(pool) = &p.pool {
        let kind = match PoolKindMsg::try_from(pool.kind) {
            Ok(PoolKindMsg::Max) => "max",
            Ok(PoolKindMsg::Avg) if pool.count_include_pad => "avg (pads counted)",
            Ok(PoolKindMsg::Avg) => "avg",
            Ok(PoolKindMsg::Sum) => "sum",
            Err(_) => "unknown",
        };
        writeln!(
            s,
            "  pool {kind} kernel {:?} stride {:?} pads {:?}",
            pool.kernel, pool.strides, pool.pads
        )?;
    }
    let plane = crate::tiles::Plane::of_population(p);
    for sl in &p.slices {
        let at = match a.cores.get(sl.core as usize) {
            Some(c) => format!("(chip {}, x {}, y {})", c.chip, c.x, c.y),
            None => "(missing)".into(),
        };
        let ir = sl.to_ir();
        match plane.filter(|_| ir.is_tile()) {
            // A spatial tile: its output rectangle and the pre-pool neurons it holds.
            Some(pl) => {
                let t = pl.resolve(&ir);
                writeln!(
                    s,
                    "  tile channels [{}, {}) rows [{}, {}) cols [{}, {}) neurons rows [{}, {}) cols [{}, {}) -> core {} {at}",
                    t.ch.0,
                    t.ch.1,
                    t.rows.0,
                    t.rows.1,
                    t.cols.0,
                    t.cols.1,
                    t.pre_rows.0,
                    t.pre_rows.1,
                    t.pre_cols.0,
                    t.pre_cols.1,
                    sl.core
                )?;
            }
            None => writeln!(
                s,
                "  slice channels [{}, {}) neurons [{}, {}) -> core {} {at}",
                sl.start,
                sl.end,
                u64::from(sl.start) * per_channel,
                u64::from(sl.end) * per_channel,
                sl.core
            )?,
        }
    }
    Ok(())
}

/// `nmc_ir::Constant::hash` of an i32 constant, computed on a stream of dense values.
fn content_hash(shape: &[u64], values: impl Iterator<Item = i32>) -> u64 {
    let bytes = b"i32"
        .iter()
        .copied()
        .chain(shape.iter().flat_map(|d| d.to_le_bytes()))
        .chain(values.flat_map(i32::to_le_bytes));
    nmc_ir::fnv1a(bytes)
}

/// (storage, nnz, hash) of a group's weights.
fn weights_summary(shape: &[u64], w: Option<&Weights>) -> (&'static str, usize, String) {
    let count = shape.iter().fold(1u64, |n, d| n.saturating_mul(*d));
    let rows = shape.first().copied().unwrap_or(0);
    let cols = count.checked_div(rows).unwrap_or(0);
    let hashable = count <= MAX_WEIGHTS && !shape.is_empty();
    match w {
        None => ("(none)", 0, "-".into()),
        Some(Weights::Dense(d)) => {
            let nnz = d.values.iter().filter(|v| **v != 0).count();
            let ok = hashable && d.values.len() as u64 == count;
            let hash = ok.then(|| content_hash(shape, d.values.iter().copied()));
            (
                "dense",
                nnz,
                hash.map_or("-".into(), |h| format!("{h:016x}")),
            )
        }
        Some(Weights::Csr(c)) => {
            let nnz = c.values.iter().filter(|v| **v != 0).count();
            let hash = hashable.then(|| {
                let dense = (0..rows).flat_map(|r| {
                    let at = |i: u64| c.indptr.get(i as usize).map_or(0, |&v| v as usize);
                    let (a, b) = (at(r), at(r + 1));
                    let idx = c.indices.get(a..b).unwrap_or(&[]);
                    let vals = c.values.get(a..b).unwrap_or(&[]);
                    let mut k = 0usize;
                    (0..cols).map(move |col| {
                        if idx.get(k).is_some_and(|&i| u64::from(i) == col) {
                            k += 1;
                            vals.get(k - 1).copied().unwrap_or(0)
                        } else {
                            0
                        }
                    })
                });
                content_hash(shape, dense)
            });
            ("csr", nnz, hash.map_or("-".into(), |h| format!("{h:016x}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{CsrWeights, DenseWeights};

    #[test]
    fn hash_matches_the_ir_constant_hash_for_both_storages() {
        let vals = vec![0, 2, 0, 0, -4, 0, 0, 0, 6, 0, 0, 0];
        let ir = nmc_ir::Constant::i32(vec![3, 4], vals.clone()).hash();
        let dense = Weights::Dense(DenseWeights {
            values: vals.clone(),
        });
        let (_, nnz, h) = weights_summary(&[3, 4], Some(&dense));
        assert_eq!((nnz, h), (3, format!("{ir:016x}")));
        let csr = Weights::Csr(CsrWeights {
            indptr: vec![0, 1, 2, 3],
            indices: vec![1, 0, 0],
            values: vec![2, -4, 6],
        });
        let (kind, nnz, h) = weights_summary(&[3, 4], Some(&csr));
        assert_eq!((kind, nnz, h), ("csr", 3, format!("{ir:016x}")));
    }
}
