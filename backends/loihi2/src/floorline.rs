//! Loads of a Loihi 2 artifact: what each core does per inference, in expectation over the
//! activity profile. The counting conventions are the emulator's (backends/loihi2 emulator), so
//! that the model can be judged against it: a synaptic operation per stored synapse an event
//! touches, memory words = touched synapse bytes / 4 rounded up per event and core, every neuron
//! of a core updated every timestep, and one message per event per destination core. An event
//! is a change of a value from its blank-input response (the state every inference starts from).

use crate::artifact::{GroupKind, SourceKind, Weights};
use crate::emulator::noc::Noc;
use crate::memory::{dense_group_storage, SynapseStorage, SPARSE_SYNAPSE_BYTES};
use crate::{Artifact, ChipSpec};
use nmc_backend::{ActivityProfile, CoreLoad};

/// What [`modelled_loads`] gives: per-core loads, the slowest link's time per step, the expected
/// link traversals and the expected traffic over each pair of chips' links, of one inference.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelledLoads {
    /// Per core.
    pub cores: Vec<CoreLoad>,
    /// The slowest link's time per step (ns).
    pub link_ns: f64,
    /// Expected link traversals.
    pub hops: f64,
    /// Expected messages and bits over each chip boundary, per direction.
    pub links: Vec<nmc_backend::LinkPerf>,
}

/// Per-core loads, the slowest link's time per step (ns), the expected link traversals and the
/// traffic over chip boundaries; an error when the artifact's tiling is too fine to model
/// ([`crate::tiles::fanout`]).
pub fn modelled_loads(
    a: &Artifact,
    spec: &ChipSpec,
    profile: &ActivityProfile,
) -> Result<ModelledLoads, String> {
    let mut loads: Vec<CoreLoad> = a
        .cores
        .iter()
        .map(|c| CoreLoad {
            id: c.id,
            chip: c.chip,
            x: c.x,
            y: c.y,
            ..Default::default()
        })
        .collect();
    let core_index = |id: u32| a.cores.iter().position(|c| c.id == id);
    // Densities of every source (inputs first, then populations), per flat element.
    let density = |kind: i32, index: u32, len: usize| -> Vec<f64> {
        let v = if kind == SourceKind::Input as i32 {
            profile.inputs.get(index as usize)
        } else {
            profile.layers.get(index as usize).map(|l| &l.2)
        };
        match v {
            Some(v) if v.len() == len => v.clone(),
            _ => vec![nmc_backend::floorline::DEFAULT_DENSITY; len],
        }
    };
    let pop_density: Vec<Vec<f64>> = a
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| {
            density(
                SourceKind::Population as i32,
                p as u32,
                pop.shape.iter().product::<u32>() as usize,
            )
        })
        .collect();
    // Destination cores of each source: the cores of its consumers' tiles whose input windows
    // hold the element (every core of a consumer that is not tiled spatially).
    let n_in = a.inputs.len();
    let fanout = crate::tiles::fanout(a)?;
    let src_density = |k: usize| -> Vec<f64> {
        if k < n_in {
            let len = a.inputs[k].shape.iter().product::<u32>() as usize;
            density(SourceKind::Input as i32, k as u32, len)
        } else {
            pop_density[k - n_in].clone()
        }
    };
    // Messages in: every event of a source reaches each core of its element's set once.
    for (k, fan) in fanout.iter().enumerate() {
        let mut per_set = vec![0f64; fan.sets.len()];
        for (i, p) in src_density(k).iter().enumerate() {
            per_set[fan.set_of(i)] += p;
        }
        for (set, e) in fan.sets.iter().zip(&per_set) {
            for d in set {
                if let Some(i) = core_index(*d) {
                    loads[i].m_in += e;
                }
            }
        }
    }
    let mut link_ns = 0f64;
    let mut hops = 0f64;
    let mut links = Vec::new();
    for (p, pop) in a.populations.iter().enumerate() {
        let pooled = pop.pool.is_some();
        let fan = &fanout[n_in + p];
        let (_, tiles) = crate::tiles::population_tiles(pop);
        let (ph, pw) = match pop.shape.as_slice() {
            &[_, h, w] => (h as usize, w as usize),
            _ => (1, 1),
        };
        let mut noc = Noc::new(
            spec.mesh_width,
            spec.mesh_height,
            spec.chips.max(a.header.as_ref().map_or(1, |h| h.chips)),
        );
        for t in &tiles {
            let Some(ci) = core_index(t.core) else {
                continue;
            };
            let ch = t.channels();
            let l = &mut loads[ci];
            if l.layer.is_empty() {
                l.layer = pop.name.clone();
            } else if !l.layer.split(", ").any(|n| n == pop.name) {
                l.layer = format!("{}, {}", l.layer, pop.name);
            }
            l.d += (ch * t.pre_area() + if pooled { ch * t.post_area() } else { 0 }) as f64;
            // Expected events of the tile's outputs, per destination set.
            let mut per_set = vec![0f64; fan.sets.len()];
            for c in t.ch.0 as usize..t.ch.1 as usize {
                for oy in t.rows.0 as usize..t.rows.1 as usize {
                    for ox in t.cols.0 as usize..t.cols.1 as usize {
                        let i = (c * ph + oy) * pw + ox;
                        if let Some(v) = pop_density[p].get(i) {
                            per_set[fan.set_of(i)] += v;
                        }
                    }
                }
            }
            l.m_out += fan
                .sets
                .iter()
                .zip(&per_set)
                .map(|(set, e)| e * set.len() as f64)
                .sum::<f64>();
            let mut to: std::collections::BTreeMap<u32, f64> = Default::default();
            for (set, e) in fan.sets.iter().zip(&per_set) {
                for d in set {
                    *to.entry(*d).or_default() += e;
                }
            }
            for (d, e) in to {
                if let Some(di) = core_index(d) {
                    let msgs = e.round() as u64;
                    let (from, to) = (&a.cores[ci], &a.cores[di]);
                    let loc = |c: &crate::artifact::CoreMsg| nmc_ir::CoreLoc {
                        chip: c.chip,
                        x: c.x,
                        y: c.y,
                    };
                    noc.route(loc(from), loc(to), msgs, u64::from(spec.message_bits));
                }
            }
        }
        let load = noc.end_step(spec.cost.a_link.value, spec.cost.a_link_interchip.value);
        link_ns = link_ns.max(load.max_ns);
        hops += load.hops as f64;
        nmc_backend::add_links(&mut links, &noc.take_links());
        // Synaptic work of the groups feeding this population.
        for g in &pop.groups {
            let mut dens = Vec::new();
            for s in &g.sources {
                let len = s.length as usize;
                if s.kind == SourceKind::Population as i32 {
                    match pop_density.get(s.index as usize) {
                        Some(v) if v.len() == len => dens.extend_from_slice(v),
                        _ => dens.extend(std::iter::repeat_n(
                            nmc_backend::floorline::DEFAULT_DENSITY,
                            len,
                        )),
                    }
                } else {
                    dens.extend(density(s.kind, s.index, len));
                }
            }
            match (&g.kind, &g.weights) {
                (Some(GroupKind::Dense(shape)), Some(w)) => {
                    let cols = shape.in_features as usize;
                    let nz_rows = row_nonzeros(w, shape.out_features as usize, cols);
                    for sl in &pop.slices {
                        let Some(ci) = core_index(sl.core) else {
                            continue;
                        };
                        let rows = &nz_rows[sl.start as usize..sl.end as usize];
                        let nnz: usize = rows.iter().map(Vec::len).sum();
                        let storage = dense_group_storage(
                            u64::from(sl.end - sl.start),
                            cols as u64,
                            nnz as u64,
                        )
                        .0;
                        let (s, r) = if storage == SynapseStorage::Sparse {
                            let mut per_col = vec![0u64; cols];
                            rows.iter().flatten().for_each(|&c| per_col[c] += 1);
                            per_col
                                .iter()
                                .zip(&dens)
                                .fold((0.0, 0.0), |(s, r), (&n, &p)| {
                                    (
                                        s + p * n as f64,
                                        r + p * (n * SPARSE_SYNAPSE_BYTES).div_ceil(4) as f64,
                                    )
                                })
                        } else {
                            let n = u64::from(sl.end - sl.start);
                            let active: f64 = dens.iter().sum();
                            (active * n as f64, active * n.div_ceil(4) as f64)
                        };
                        loads[ci].s += s;
                        loads[ci].r += r;
                    }
                }
                (Some(GroupKind::Conv(c)), _)
                    if c.in_shape.len() == 3 && pop.pre_shape.len() == 3 =>
                {
                    let (ci_n, h, w) = (
                        c.in_shape[0] as usize,
                        c.in_shape[1] as usize,
                        c.in_shape[2] as usize,
                    );
                    let at = |v: &Vec<u32>, i: usize| v.get(i).copied().unwrap_or(1) as usize;
                    let groups = (c.groups as usize).max(1);
                    let (cig, cog) = (ci_n / groups, c.out_channels as usize / groups);
                    for t in &tiles {
                        let Some(core) = core_index(t.core) else {
                            continue;
                        };
                        // Taps landing on the tile's neurons (all of them when not tiled).
                        let span = |r: (u32, u32)| (r.0 as usize, r.1 as usize);
                        let taps_y = valid_taps(
                            h,
                            at(&c.kernel, 0),
                            at(&c.strides, 0),
                            at(&c.dilations, 0),
                            at(&c.pads, 0),
                            span(t.pre_rows),
                        );
                        let taps_x = valid_taps(
                            w,
                            at(&c.kernel, 1),
                            at(&c.strides, 1),
                            at(&c.dilations, 1),
                            at(&c.pads, 1),
                            span(t.pre_cols),
                        );
                        let (mut s, mut r) = (0.0, 0.0);
                        for ch in 0..ci_n {
                            let grp = ch / cig.max(1);
                            let lo = (t.ch.0 as usize).max(grp * cog);
                            let hi = (t.ch.1 as usize).min((grp + 1) * cog);
                            if hi <= lo {
                                continue;
                            }
                            let outs = (hi - lo) as u64;
                            for (iy, ty) in taps_y.iter().enumerate() {
                                if *ty == 0 {
                                    continue;
                                }
                                for (ix, tx) in taps_x.iter().enumerate() {
                                    let p =
                                        dens.get((ch * h + iy) * w + ix).copied().unwrap_or(0.0);
                                    let syn = outs * ty * tx;
                                    s += p * syn as f64;
                                    r += p * syn.div_ceil(4) as f64;
                                }
                            }
                        }
                        loads[core].s += s;
                        loads[core].r += r;
                    }
                }
                _ => {}
            }
        }
    }
    for l in &mut loads {
        l.m = l.m_in.max(l.m_out);
    }
    Ok(ModelledLoads {
        cores: loads,
        link_ns,
        hops,
        links,
    })
}

/// Column indices of the non-zero weights of each row.
fn row_nonzeros(w: &Weights, rows: usize, cols: usize) -> Vec<Vec<usize>> {
    match w {
        Weights::Dense(d) => (0..rows)
            .map(|r| {
                (0..cols)
                    .filter(|&c| d.values.get(r * cols + c).is_some_and(|v| *v != 0))
                    .collect()
            })
            .collect(),
        Weights::Csr(c) => (0..rows)
            .map(|r| {
                let (a, b) = (c.indptr[r] as usize, c.indptr[r + 1] as usize);
                (a..b)
                    .filter(|&k| c.values[k] != 0)
                    .map(|k| c.indices[k] as usize)
                    .collect()
            })
            .collect(),
    }
}

/// For each input coordinate along one axis, how many kernel taps reach an output in
/// `out.0..out.1`.
fn valid_taps(
    n: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad: usize,
    out: (usize, usize),
) -> Vec<u64> {
    (0..n)
        .map(|i| {
            (0..k)
                .filter(|&ky| {
                    let t = (i + pad) as isize - (ky * dil) as isize;
                    t >= 0
                        && (t as usize).is_multiple_of(stride.max(1))
                        && (out.0..out.1).contains(&((t as usize) / stride.max(1)))
                })
                .count() as u64
        })
        .collect()
}
