//! Spatial tiles of populations: which neurons a core holds and which inputs it must receive.
//!
//! A population's slices form a grid (channel bands × row bands × column bands, see
//! [`nmc_ir::CoreSlice`]) over its output plane, the values consumers read. A core holds the
//! pre-pool neurons its outputs' pooling windows read ([`Axis::pre_span`]), so with overlapping
//! windows (ResNet's 3×3/2 max pooling) neighbouring tiles both hold the shared rows: a halo of
//! neurons each of them updates. A convolution's tile needs the input rows and columns its
//! neurons' kernels read ([`Axis::input_window`]), halo included, from the tiles of its source;
//! those are the only events the source sends it ([`fanout`]). The emulator, the floorline model
//! and the memory model all resolve slices here, so that they count the same neurons and messages.
//!
//! Edge rule: a tile at the border of the plane extends to the border of what it reads (its
//! pre-pool rows to the pre-pool edge, its input window to the input edge), so a population that
//! is not tiled holds and receives exactly what it did before tiling existed.

use crate::artifact::{Artifact, GroupKind, Population, SourceKind};
use nmc_ir::CoreSlice;
use std::collections::HashMap;

/// One axis (rows or columns) of a population's plane: the pre-pool extent, the post-pool
/// extent, and the pooling window between them (kernel 1, stride 1 without pooling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// Pre-pool extent (neurons).
    pub pre: u32,
    /// Post-pool extent (outputs).
    pub post: u32,
    /// Pooling kernel.
    pub k: u32,
    /// Pooling stride.
    pub s: u32,
    /// Pooling padding before the first output.
    pub pad: u32,
}

impl Axis {
    /// The axis of an unpooled plane of extent `n`.
    pub fn plain(n: u32) -> Axis {
        Axis {
            pre: n,
            post: n,
            k: 1,
            s: 1,
            pad: 0,
        }
    }

    /// The pre-pool neurons `[lo, hi)` that outputs `[a, b)` read (the union of their pooling
    /// windows), extended to the edge at a border of the plane.
    pub fn pre_span(&self, a: u32, b: u32) -> (u32, u32) {
        let (a, b) = (u64::from(a), u64::from(b));
        let (k, s, pad, pre) = (
            u64::from(self.k),
            u64::from(self.s),
            u64::from(self.pad),
            u64::from(self.pre),
        );
        let lo = if a == 0 {
            0
        } else {
            (a * s).saturating_sub(pad).min(pre)
        };
        let hi = if b >= u64::from(self.post) {
            pre
        } else {
            ((b.max(1) - 1) * s + k).saturating_sub(pad).min(pre)
        };
        (lo as u32, hi.max(lo) as u32)
    }
}

/// The input rows (or columns) `[lo, hi)` that conv outputs `[a, b)` read along one axis of
/// extent `n` with kernel `k`, stride `s`, padding `pad` before and dilation `d`, the outputs
/// numbering `out`; extended to the input's edge at a border of the output.
pub fn input_window(
    n: u32,
    out: u32,
    k: u32,
    s: u32,
    pad: u32,
    d: u32,
    a: u32,
    b: u32,
) -> (u32, u32) {
    let (n64, k, s, pad, d) = (
        u64::from(n),
        u64::from(k),
        u64::from(s),
        u64::from(pad),
        u64::from(d),
    );
    let (a, b) = (u64::from(a), u64::from(b));
    let lo = if a == 0 {
        0
    } else {
        (a * s).saturating_sub(pad).min(n64)
    };
    let hi = if b >= u64::from(out) {
        n64
    } else if b == 0 {
        lo
    } else {
        ((b - 1) * s + (k - 1) * d + 1).saturating_sub(pad).min(n64)
    };
    (lo as u32, hi.max(lo) as u32)
}

/// A slice resolved against its population's plane: what one core holds and sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// The core.
    pub core: u32,
    /// Channels `[start, end)`.
    pub ch: (u32, u32),
    /// Output rows it sends.
    pub rows: (u32, u32),
    /// Output columns it sends.
    pub cols: (u32, u32),
    /// Pre-pool rows it holds (its outputs' windows).
    pub pre_rows: (u32, u32),
    /// Pre-pool columns it holds.
    pub pre_cols: (u32, u32),
}

impl Tile {
    /// Channels.
    pub fn channels(&self) -> u64 {
        u64::from(self.ch.1 - self.ch.0)
    }
    /// Pre-pool neurons per channel.
    pub fn pre_area(&self) -> u64 {
        u64::from(self.pre_rows.1 - self.pre_rows.0) * u64::from(self.pre_cols.1 - self.pre_cols.0)
    }
    /// Outputs per channel.
    pub fn post_area(&self) -> u64 {
        u64::from(self.rows.1 - self.rows.0) * u64::from(self.cols.1 - self.cols.0)
    }
}

/// A `[c, h, w]` population's plane: its rows and columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    /// Rows.
    pub rows: Axis,
    /// Columns.
    pub cols: Axis,
}

impl Plane {
    /// The plane of a validated artifact population (`None` for a dense `[n]` one).
    pub fn of_population(p: &Population) -> Option<Plane> {
        if p.pre_shape.len() != 3 || p.shape.len() != 3 {
            return None;
        }
        let at = |v: &[u32], i: usize, d: u32| v.get(i).copied().unwrap_or(d);
        Some(match &p.pool {
            None => Plane {
                rows: Axis::plain(p.pre_shape[1]),
                cols: Axis::plain(p.pre_shape[2]),
            },
            Some(q) => Plane {
                rows: Axis {
                    pre: p.pre_shape[1],
                    post: p.shape[1],
                    k: at(&q.kernel, 0, 1),
                    s: at(&q.strides, 0, 1),
                    pad: at(&q.pads, 0, 0),
                },
                cols: Axis {
                    pre: p.pre_shape[2],
                    post: p.shape[2],
                    k: at(&q.kernel, 1, 1),
                    s: at(&q.strides, 1, 1),
                    pad: at(&q.pads, 1, 0),
                },
            },
        })
    }

    /// Resolves `s` (rows and columns clamped to the plane).
    pub fn resolve(&self, s: &CoreSlice) -> Tile {
        let span = |r: Option<(u32, u32)>, ax: &Axis| {
            let (a, b) = r.unwrap_or((0, ax.post));
            let b = b.min(ax.post);
            (a.min(b), b)
        };
        let rows = span(s.rows, &self.rows);
        let cols = span(s.cols, &self.cols);
        Tile {
            core: s.core,
            ch: (s.start, s.end.max(s.start)),
            rows,
            cols,
            pre_rows: self.rows.pre_span(rows.0, rows.1),
            pre_cols: self.cols.pre_span(cols.0, cols.1),
        }
    }
}

/// Resolves a slice of a population with an optional plane (a dense population's slice is one
/// row and one column).
pub fn resolve(plane: Option<&Plane>, s: &CoreSlice) -> Tile {
    match plane {
        Some(p) => p.resolve(s),
        None => Tile {
            core: s.core,
            ch: (s.start, s.end.max(s.start)),
            rows: (0, 1),
            cols: (0, 1),
            pre_rows: (0, 1),
            pre_cols: (0, 1),
        },
    }
}

/// The grid a layer's slices form: channel, row and column bands, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Channel bands.
    pub channels: Vec<(u32, u32)>,
    /// Row bands (output rows; `[(0, 1)]` for a dense population).
    pub rows: Vec<(u32, u32)>,
    /// Column bands.
    pub cols: Vec<(u32, u32)>,
}

impl Grid {
    /// Index of the slice holding channel band `c`, row band `r`, column band `k`.
    pub fn index(&self, c: usize, r: usize, k: usize) -> usize {
        (c * self.rows.len() + r) * self.cols.len() + k
    }
}

/// Checks that `slices` form a grid over `channels` channels and, for a `[c, h, w]` population,
/// its `plane` (`(h, w)` outputs); returns the grid or what is wrong (naming the slice).
pub fn check_grid(
    slices: &[CoreSlice],
    channels: u32,
    plane: Option<(u32, u32)>,
) -> Result<Grid, String> {
    let Some(first) = slices.first() else {
        return Err("no slices".into());
    };
    let (h, w) = match plane {
        Some(p) => p,
        None => {
            if let Some(k) = slices.iter().position(CoreSlice::is_tile) {
                return Err(format!(
                    "slice {k} names rows or columns, but the population has no plane to tile"
                ));
            }
            (1, 1)
        }
    };
    let full = |r: Option<(u32, u32)>, n: u32| r.unwrap_or((0, n));
    // The spatial pattern of the first channel band; every band repeats it.
    let per_band = slices
        .iter()
        .take_while(|s| (s.start, s.end) == (first.start, first.end))
        .count();
    if !slices.len().is_multiple_of(per_band) {
        return Err(format!(
            "{} slices do not split into channel bands of {per_band} tile(s)",
            slices.len()
        ));
    }
    let band = &slices[..per_band];
    let mut rows: Vec<(u32, u32)> = Vec::new();
    for s in band {
        let r = full(s.rows, h);
        if rows.last() != Some(&r) {
            rows.push(r);
        }
    }
    let ncols = per_band / rows.len();
    if ncols * rows.len() != per_band {
        return Err(format!(
            "the {per_band} tiles of channel band 0 are not a grid of {} row band(s)",
            rows.len()
        ));
    }
    let cols: Vec<(u32, u32)> = band[..ncols].iter().map(|s| full(s.cols, w)).collect();
    let partition = |bands: &[(u32, u32)], n: u32, what: &str| -> Result<(), String> {
        let mut next = 0;
        for &(a, b) in bands {
            if a != next || b <= a || b > n {
                return Err(format!(
                    "{what} band [{a}, {b}): bands must cover {what}s 0..{n} in order, once"
                ));
            }
            next = b;
        }
        if next != n {
            return Err(format!("{what} bands cover {what}s [0, {next}) of {n}"));
        }
        Ok(())
    };
    partition(&rows, h, "row")?;
    partition(&cols, w, "column")?;
    let mut channel_bands = Vec::with_capacity(slices.len() / per_band);
    for (b, chunk) in slices.chunks(per_band).enumerate() {
        let (c0, c1) = (chunk[0].start, chunk[0].end);
        for (i, s) in chunk.iter().enumerate() {
            let k = b * per_band + i;
            if (s.start, s.end) != (c0, c1) {
                return Err(format!(
                    "slice {k} covers channels [{}, {}) inside channel band [{c0}, {c1})",
                    s.start, s.end
                ));
            }
            if full(s.rows, h) != rows[i / ncols] || full(s.cols, w) != cols[i % ncols] {
                return Err(format!(
                    "slice {k}: channel band {b} is not tiled like channel band 0"
                ));
            }
        }
        channel_bands.push((c0, c1));
    }
    partition(&channel_bands, channels, "channel")?;
    Ok(Grid {
        channels: channel_bands,
        rows,
        cols,
    })
}

/// Where each value of a source (a graph input or a population's outputs) must be sent: the
/// distinct destination core sets, and each element's set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Destination cores of each set, ascending.
    pub sets: Vec<Vec<u32>>,
    /// Set of each element; empty when every element goes to set 0.
    pub of_elem: Vec<u32>,
}

impl Fanout {
    /// The set element `i` goes to.
    pub fn set_of(&self, i: usize) -> usize {
        self.of_elem.get(i).map_or(0, |&s| s as usize)
    }
}

/// One consumer population's needs along one axis: per input coordinate, the range of its
/// bands whose input window contains it.
fn band_ranges(n: u32, windows: &[(u32, u32)]) -> Vec<(u32, u32)> {
    (0..n)
        .map(|i| {
            let mut lo = u32::MAX;
            let mut hi = 0;
            for (b, &(a, e)) in windows.iter().enumerate() {
                if a <= i && i < e {
                    lo = lo.min(b as u32);
                    hi = b as u32 + 1;
                }
            }
            if hi == 0 {
                (0, 0)
            } else {
                (lo, hi)
            }
        })
        .collect()
}

/// What one synapse group reading a source needs of it.
enum Need {
    /// Every element, on these cores.
    All(Vec<u32>),
    /// Per element `offset + i` of a conv input `[c, h, w]`: the row and column bands whose
    /// windows hold it, on the population's grid.
    Window {
        offset: usize,
        h: usize,
        w: usize,
        rows: Vec<(u32, u32)>,
        cols: Vec<(u32, u32)>,
        pop: usize,
    },
}

/// Most distinct destination sets of one source: a real tiling has a few per tile boundary;
/// the cap bounds what a hostile artifact can make the emulator allocate.
pub const MAX_SETS: usize = 1 << 16;

/// Most destination cores listed over all sets of an artifact.
pub const MAX_SET_ENTRIES: usize = 1 << 24;

/// The destinations of every source of a validated artifact (inputs first, then populations):
/// a consumer that is not tiled spatially needs all of a source, on all its cores; a tiled
/// convolution's tile needs its input window, on the cores of that tile's channel bands. An
/// error (naming the source) when the sets exceed [`MAX_SETS`] or [`MAX_SET_ENTRIES`].
pub fn fanout(a: &Artifact) -> Result<Vec<Fanout>, String> {
    let n_in = a.inputs.len();
    let n_src = n_in + a.populations.len();
    let mut lens: Vec<usize> = a
        .inputs
        .iter()
        .map(|i| i.shape.iter().map(|&d| d as usize).product())
        .collect();
    lens.extend(
        a.populations
            .iter()
            .map(|p| p.shape.iter().map(|&d| d as usize).product::<usize>()),
    );
    let mut needs: Vec<Vec<Need>> = (0..n_src).map(|_| Vec::new()).collect();
    let mut grids: Vec<(Grid, Vec<Tile>)> = Vec::with_capacity(a.populations.len());
    for (q, p) in a.populations.iter().enumerate() {
        let (grid, tiles) = population_tiles(p);
        let cores: Vec<u32> = tiles.iter().map(|t| t.core).collect();
        let spatial = grid.rows.len() > 1 || grid.cols.len() > 1;
        for g in &p.groups {
            let mut offset = 0usize;
            for s in &g.sources {
                let src = if s.kind == SourceKind::Input as i32 {
                    s.index as usize
                } else {
                    n_in + s.index as usize
                };
                let need = match (&g.kind, spatial) {
                    (Some(GroupKind::Conv(c)), true) => {
                        let u = |v: &[u32], i: usize, d: u32| v.get(i).copied().unwrap_or(d);
                        let (h, w) = (u(&c.in_shape, 1, 1), u(&c.in_shape, 2, 1));
                        let (oh, ow) = (u(&p.pre_shape, 1, 1), u(&p.pre_shape, 2, 1));
                        let win = |n, out, ax: usize, pads: usize, spans: Vec<(u32, u32)>| {
                            spans
                                .into_iter()
                                .map(|(pa, pb)| {
                                    input_window(
                                        n,
                                        out,
                                        u(&c.kernel, ax, 1),
                                        u(&c.strides, ax, 1),
                                        u(&c.pads, pads, 0),
                                        u(&c.dilations, ax, 1),
                                        pa,
                                        pb,
                                    )
                                })
                                .collect::<Vec<_>>()
                        };
                        // The first channel band's tiles give each row and column band's span.
                        let nc = grid.cols.len();
                        let row_spans = (0..grid.rows.len()).map(|r| tiles[r * nc].pre_rows);
                        let col_spans = (0..nc).map(|k| tiles[k].pre_cols);
                        let rw = win(h, oh, 0, 0, row_spans.collect());
                        let cw = win(w, ow, 1, 1, col_spans.collect());
                        Need::Window {
                            offset,
                            h: h as usize,
                            w: w as usize,
                            rows: band_ranges(h, &rw),
                            cols: band_ranges(w, &cw),
                            pop: q,
                        }
                    }
                    _ => Need::All(cores.clone()),
                };
                if let Some(v) = needs.get_mut(src) {
                    v.push(need);
                }
                offset += s.length as usize;
            }
        }
        grids.push((grid, tiles));
    }
    let mut out = Vec::with_capacity(n_src);
    let mut entries = 0usize;
    let too_many = |src: usize| {
        let what = if src < n_in {
            format!("input {src}")
        } else {
            format!("population {}", src - n_in)
        };
        format!(
            "{what}: its consumers' tiles need more than {MAX_SETS} destination sets or {MAX_SET_ENTRIES} destination entries"
        )
    };
    for (src, ns) in needs.iter().enumerate() {
        let mut all: Vec<u32> = ns
            .iter()
            .filter_map(|n| match n {
                Need::All(c) => Some(c.iter().copied()),
                Need::Window { .. } => None,
            })
            .flatten()
            .collect();
        all.sort_unstable();
        all.dedup();
        entries += all.len();
        if entries > MAX_SET_ENTRIES {
            return Err(too_many(src));
        }
        if ns.iter().all(|n| matches!(n, Need::All(_))) {
            out.push(Fanout {
                sets: vec![all],
                of_elem: Vec::new(),
            });
            continue;
        }
        let len = lens[src];
        let mut ids: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut sets = Vec::new();
        let mut of_elem = Vec::with_capacity(len);
        let mut key = Vec::new();
        let mut last: Option<(Vec<u32>, u32)> = None;
        for i in 0..len {
            key.clear();
            for n in ns {
                if let Need::Window {
                    offset,
                    h,
                    w,
                    rows,
                    cols,
                    ..
                } = n
                {
                    let j = offset + i;
                    let (iy, ix) = ((j % (h * w)) / w, j % w);
                    let (r, c) = (rows[iy], cols[ix]);
                    key.extend_from_slice(&[r.0, r.1, c.0, c.1]);
                }
            }
            if let Some((k, id)) = &last {
                if *k == key {
                    of_elem.push(*id);
                    continue;
                }
            }
            let id = match ids.get(&key) {
                Some(&id) => id,
                None => {
                    let id = sets.len() as u32;
                    let mut cores = all.clone();
                    let mut at = 0;
                    for n in ns {
                        if let Need::Window { pop, .. } = n {
                            let (grid, tiles) = &grids[*pop];
                            let (r0, r1, c0, c1) = (key[at], key[at + 1], key[at + 2], key[at + 3]);
                            at += 4;
                            for cb in 0..grid.channels.len() {
                                for r in r0..r1 {
                                    for c in c0..c1 {
                                        cores.push(
                                            tiles[grid.index(cb, r as usize, c as usize)].core,
                                        );
                                    }
                                }
                            }
                        }
                    }
                    cores.sort_unstable();
                    cores.dedup();
                    entries += cores.len();
                    if sets.len() >= MAX_SETS || entries > MAX_SET_ENTRIES {
                        return Err(too_many(src));
                    }
                    sets.push(cores);
                    ids.insert(key.clone(), id);
                    id
                }
            };
            of_elem.push(id);
            last = Some((key.clone(), id));
        }
        out.push(Fanout { sets, of_elem });
    }
    Ok(out)
}

/// The grid and resolved tiles of a validated population.
pub fn population_tiles(p: &Population) -> (Grid, Vec<Tile>) {
    let plane = Plane::of_population(p);
    let slices: Vec<CoreSlice> = p
        .slices
        .iter()
        .map(crate::artifact::SliceMsg::to_ir)
        .collect();
    let grid = check_grid(
        &slices,
        p.pre_shape.first().copied().unwrap_or(0),
        plane.map(|pl| (pl.rows.post, pl.cols.post)),
    )
    .unwrap_or_else(|_| Grid {
        channels: slices.iter().map(|s| (s.start, s.end)).collect(),
        rows: vec![(0, 1)],
        cols: vec![(0, 1)],
    });
    let tiles = slices.iter().map(|s| resolve(plane.as_ref(), s)).collect();
    (grid, tiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_spans_of_overlapping_pooling_share_a_halo() {
        // 112 → 56 with 3×3/2 pad 1 (ResNet's stem pooling).
        let ax = Axis {
            pre: 112,
            post: 56,
            k: 3,
            s: 2,
            pad: 1,
        };
        assert_eq!(ax.pre_span(0, 56), (0, 112));
        assert_eq!(ax.pre_span(0, 28), (0, 56));
        // Output 28's window starts at 28·2 − 1 = 55: row 55 is in both tiles.
        assert_eq!(ax.pre_span(28, 56), (55, 112));
        // Non-overlapping 2×2/2: no halo.
        let ax = Axis {
            pre: 8,
            post: 4,
            k: 2,
            s: 2,
            pad: 0,
        };
        assert_eq!((ax.pre_span(0, 2), ax.pre_span(2, 4)), ((0, 4), (4, 8)));
        assert_eq!(Axis::plain(10).pre_span(3, 7), (3, 7));
    }

    #[test]
    fn input_windows_hold_the_kernel_halo_and_reach_the_edges() {
        // 3×3 stride 1 pad 1 over 16 rows, outputs 0..8 and 8..16.
        assert_eq!(input_window(16, 16, 3, 1, 1, 1, 0, 8), (0, 9));
        assert_eq!(input_window(16, 16, 3, 1, 1, 1, 8, 16), (7, 16));
        // 7×7 stride 2 pad 3 over 224 → 112: outputs 56.. read from 56·2 − 3 = 109.
        assert_eq!(input_window(224, 112, 7, 2, 3, 1, 56, 112), (109, 224));
        assert_eq!(input_window(224, 112, 7, 2, 3, 1, 0, 56), (0, 114));
    }

    fn tile(core: u32, c: (u32, u32), r: Option<(u32, u32)>, k: Option<(u32, u32)>) -> CoreSlice {
        CoreSlice {
            core,
            start: c.0,
            end: c.1,
            rows: r,
            cols: k,
        }
    }

    #[test]
    fn grids_are_checked() {
        let ok = [
            tile(0, (0, 2), Some((0, 3)), None),
            tile(1, (0, 2), Some((3, 8)), None),
            tile(2, (2, 4), Some((0, 3)), None),
            tile(3, (2, 4), Some((3, 8)), None),
        ];
        let g = check_grid(&ok, 4, Some((8, 8))).unwrap();
        assert_eq!(g.rows, [(0, 3), (3, 8)]);
        assert_eq!(g.cols, [(0, 8)]);
        assert_eq!(g.index(1, 1, 0), 3);
        // Untiled channel slices are a grid of one row and column band.
        let ch = [CoreSlice::channels(0, 0, 1), CoreSlice::channels(1, 1, 4)];
        assert_eq!(check_grid(&ch, 4, Some((8, 8))).unwrap().rows, [(0, 8)]);
        let mut bad = ok;
        bad[3].rows = Some((4, 8));
        assert!(check_grid(&bad, 4, Some((8, 8))).is_err());
        let mut gap = ok;
        gap[1].rows = Some((4, 8));
        gap[3].rows = Some((4, 8));
        assert!(check_grid(&gap, 4, Some((8, 8)))
            .unwrap_err()
            .contains("row band [4, 8)"));
        assert!(check_grid(&ok, 4, None).is_err());
        assert!(check_grid(&ok[..3], 4, Some((8, 8))).is_err());
        assert!(check_grid(&[], 4, Some((8, 8))).is_err());
    }
}
