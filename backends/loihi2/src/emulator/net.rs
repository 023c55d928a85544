//! The emulator's runtime form of an artifact: weights rearranged for event-driven delivery
//! (dense matrices transposed to per-input fan-out lists, conv kernels kept dense for footprint
//! iteration), consumer lists per source, and the neuron state of each population.
//!
//! Everything here is built from a validated artifact, so indices are trusted.

use super::kernels::{DenseMatrix, Kernels, PARALLEL_MIN_MACS};
use crate::artifact::{GroupKind, PoolKindMsg, Population, SynapseGroup, Weights};
use crate::memory::{dense_group_storage, SynapseStorage, SPARSE_SYNAPSE_BYTES};
use nmc_backend::Counters;
use nmc_ir::LayerQuant;

/// A synapse group reading a source's values at `offset` of its input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Consumer {
    pub pop: u32,
    pub group: u32,
    pub offset: u32,
}

/// One emitted (or injected) delta.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// Source id: inputs first, then populations.
    pub src: u32,
    /// Flat index in the source's value.
    pub idx: u32,
    /// New value minus the last one sent.
    pub delta: i64,
}

/// A dense group as fan-out lists: column `i`'s synapses are `rows/vals[col_ptr[i]..col_ptr[i+1]]`,
/// rows ascending. Only non-zero weights are listed.
pub(crate) struct DenseRt {
    exp: u32,
    col_ptr: Vec<u32>,
    rows: Vec<u32>,
    vals: Vec<i64>,
    /// Per slice of the population: whether the slice stores this group sparsely.
    sparse_slice: Vec<bool>,
    /// The row-major copy for steps where many inputs change (`None` where it would not pay).
    matrix: Option<Box<DenseMatrix>>,
}

/// A conv group: dense kernels `[co, cig, kh, kw]` and the geometry.
pub(crate) struct ConvRt {
    exp: u32,
    h: usize,
    w: usize,
    cig: usize,
    cog: usize,
    /// Channel groups.
    groups: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    pt: usize,
    pl: usize,
    dh: usize,
    dw: usize,
    oh: usize,
    ow: usize,
    weights: Vec<i32>,
    /// The kernels as a `[co, cig·kh·kw]` matrix for the dense kernel (`None` if too wide).
    matrix: Option<DenseMatrix>,
    /// Scratch of the dense kernel.
    scratch: ConvScratch,
    /// Per row band of the population's grid, valid kernel rows per input row whose output row
    /// is in the band's pre-pool rows, and the same per column band: an input at `(iy, ix)`
    /// reaches `taps_y[r][iy] · taps_x[c][ix]` neurons per output channel of a tile in row band
    /// `r` and column band `c` (one band each when the population is not tiled).
    taps_y: Vec<Vec<u32>>,
    taps_x: Vec<Vec<u32>>,
    /// Scratch of batched charging: events per (channel group, taps) pair.
    tap_hist: Vec<u64>,
}

/// Scratch of the dense convolution kernel: the batch's deltas as an input map (zero elsewhere,
/// and returned to zero after each batch), one channel group's receptive fields
/// (`[oh·ow, cig·kh·kw]`) and its sums (`[oh·ow, cog]`).
#[derive(Default)]
struct ConvScratch {
    dmap: Vec<i16>,
    fields: Vec<i16>,
    sums: Vec<i32>,
}

/// Output positions per parallel task of the convolution kernel.
const POSITIONS_PER_TASK: usize = 256;

pub(crate) enum GroupRt {
    Dense(DenseRt),
    Conv(Box<ConvRt>),
}

pub(crate) struct PoolRt {
    kind: PoolKindMsg,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    pt: usize,
    pl: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    include_pad: bool,
}

/// One slice (tile) of a population at run time: its core, channels, and the indices of its row
/// and column bands (which select the tap tables of a conv group).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileRt {
    pub core: u32,
    pub start: u32,
    pub end: u32,
    /// Row band and column band in the population's grid.
    pub band: (u32, u32),
    /// Pre-pool neurons and outputs per channel the tile holds (halo included).
    pub pre_area: u64,
    pub post_area: u64,
}

/// A population at run time.
pub(crate) struct PopRt {
    pre_hw: usize,
    post_hw: usize,
    quant: LayerQuant,
    bias: Vec<i64>,
    groups: Vec<GroupRt>,
    pool: Option<PoolRt>,
    /// The slices, in the artifact's (grid) order.
    pub slices: Vec<TileRt>,
    /// Channel band of each channel, row band of each output row, column band of each output
    /// column, the bands per axis, and the output width: the tile of an output.
    band_of_channel: Vec<u32>,
    row_band: Vec<u32>,
    col_band: Vec<u32>,
    grid_rows: usize,
    grid_cols: usize,
    post_w: usize,
    /// Destination set of each output (empty: all in set 0) and the number of sets
    /// ([`crate::tiles::fanout`]).
    out_set: Vec<u32>,
    pub sets: usize,
    /// Accumulated, exponent-shifted synaptic input per pre-pool neuron.
    sigma: Vec<i64>,
    /// Current activation per pre-pool neuron (pooled populations only).
    act: Vec<i64>,
    /// Last value sent per post-pool output.
    pub prev: Vec<i64>,
    dirty: Vec<u32>,
    is_dirty: Vec<bool>,
    pdirty: Vec<u32>,
    is_pdirty: Vec<bool>,
    /// Deltas emitted this step per slice and destination set, `[slice · sets + set]` (routed
    /// at the end of the step).
    pub sent: Vec<u64>,
    /// This population's events of the step when populations update in parallel.
    pub outbuf: Vec<Event>,
    /// Snn mode: the CUBA-LIF registers, and each neuron's current and voltage.
    cuba: Option<nmc_ir::CubaQuant>,
    u: Vec<i64>,
    v: Vec<i64>,
}

fn dense_rows(g: &SynapseGroup, rows: usize, cols: usize) -> Vec<Vec<(u32, i32)>> {
    let mut out = vec![Vec::new(); rows];
    match &g.weights {
        Some(Weights::Dense(d)) => {
            for (r, row) in out.iter_mut().enumerate() {
                for (c, &v) in d.values[r * cols..(r + 1) * cols].iter().enumerate() {
                    if v != 0 {
                        row.push((c as u32, v));
                    }
                }
            }
        }
        Some(Weights::Csr(c)) => {
            for (r, row) in out.iter_mut().enumerate() {
                let (a, b) = (c.indptr[r] as usize, c.indptr[r + 1] as usize);
                for (&i, &v) in c.indices[a..b].iter().zip(&c.values[a..b]) {
                    if v != 0 {
                        row.push((i, v));
                    }
                }
            }
        }
        None => {}
    }
    out
}

fn build_dense(g: &SynapseGroup, rows: usize, cols: usize, slices: &[TileRt]) -> DenseRt {
    let by_row = dense_rows(g, rows, cols);
    let mut col_ptr = vec![0u32; cols + 1];
    for row in &by_row {
        for &(c, _) in row {
            col_ptr[c as usize + 1] += 1;
        }
    }
    for i in 0..cols {
        col_ptr[i + 1] += col_ptr[i];
    }
    let nnz = col_ptr[cols] as usize;
    let mut fill = col_ptr.clone();
    let mut out_rows = vec![0u32; nnz];
    let mut vals = vec![0i64; nnz];
    // Rows in ascending order, so each column's list is sorted by row.
    for (r, row) in by_row.iter().enumerate() {
        for &(c, v) in row {
            let at = fill[c as usize] as usize;
            out_rows[at] = r as u32;
            vals[at] = i64::from(v);
            fill[c as usize] += 1;
        }
    }
    let sparse_slice = slices
        .iter()
        .map(|&TileRt { start, end, .. }| {
            let nnz: usize = by_row[start as usize..end as usize]
                .iter()
                .map(Vec::len)
                .sum();
            dense_group_storage(u64::from(end - start), cols as u64, nnz as u64).0
                == SynapseStorage::Sparse
        })
        .collect();
    DenseRt {
        exp: g.weight_exp as u32,
        col_ptr,
        rows: out_rows,
        vals,
        sparse_slice,
        matrix: DenseMatrix::new(&by_row, cols).map(Box::new),
    }
}

/// `oh × ow` is the population's pre-pool plane, which validation tied to the geometry;
/// `row_spans`/`col_spans` the pre-pool rows and columns of each row and column band.
fn build_conv(
    g: &SynapseGroup,
    c: &crate::artifact::ConvShape,
    oh: usize,
    ow: usize,
    row_spans: &[(u32, u32)],
    col_spans: &[(u32, u32)],
) -> ConvRt {
    let u = |v: u32| v as usize;
    let (cin, h, w) = (u(c.in_shape[0]), u(c.in_shape[1]), u(c.in_shape[2]));
    let (kh, kw) = (u(c.kernel[0]), u(c.kernel[1]));
    let groups = u(c.groups);
    let (cig, cog) = (cin / groups, u(c.out_channels) / groups);
    let count = u(c.out_channels) * cig * kh * kw;
    let weights = match &g.weights {
        Some(Weights::Dense(d)) => d.values.clone(),
        Some(Weights::Csr(s)) => {
            let cols = cig * kh * kw;
            let mut v = vec![0i32; count];
            for r in 0..u(c.out_channels) {
                let (a, b) = (s.indptr[r] as usize, s.indptr[r + 1] as usize);
                for (&i, &x) in s.indices[a..b].iter().zip(&s.values[a..b]) {
                    v[r * cols + i as usize] = x;
                }
            }
            v
        }
        None => vec![0; count],
    };
    ConvRt {
        exp: g.weight_exp as u32,
        h,
        w,
        cig,
        cog,
        groups,
        kh,
        kw,
        sh: u(c.strides[0]),
        sw: u(c.strides[1]),
        pt: u(c.pads[0]),
        pl: u(c.pads[1]),
        dh: u(c.dilations[0]),
        dw: u(c.dilations[1]),
        oh,
        ow,
        matrix: DenseMatrix::from_dense(&weights, u(c.out_channels), cig * kh * kw),
        weights,
        scratch: ConvScratch::default(),
        taps_y: row_spans
            .iter()
            .map(|&(a, b)| {
                let (s, p, d) = (u(c.strides[0]), u(c.pads[0]), u(c.dilations[0]));
                tap_counts(h, kh, s, p, d, (u(a), u(b).min(oh)))
            })
            .collect(),
        taps_x: col_spans
            .iter()
            .map(|&(a, b)| {
                let (s, p, d) = (u(c.strides[1]), u(c.pads[1]), u(c.dilations[1]));
                tap_counts(w, kw, s, p, d, (u(a), u(b).min(ow)))
            })
            .collect(),
        tap_hist: Vec::new(),
    }
}

/// Per input index along one axis: how many kernel offsets `k` put it at an output in
/// `out.0..out.1`, i.e. `(i + pad − k·dil)` is a non-negative multiple of `stride` whose quotient
/// is in the range.
fn tap_counts(
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    out: (usize, usize),
) -> Vec<u32> {
    (0..len)
        .map(|i| {
            (0..k)
                .filter(|&kk| {
                    let t = (i + pad) as isize - (kk * dil) as isize;
                    t >= 0
                        && (t as usize).is_multiple_of(stride)
                        && (out.0..out.1).contains(&(t as usize / stride))
                })
                .count() as u32
        })
        .collect()
}

impl ConvRt {
    /// The kernel taps an input at flat position `i` reaches: `(k, output position)` pairs,
    /// `k = ky·kw + kx`, into `taps` (cleared first).
    fn taps(&self, i: usize, taps: &mut Vec<(usize, usize)>) {
        let hw = self.h * self.w;
        let (iy, ix) = ((i % hw) / self.w, i % self.w);
        taps.clear();
        for ky in 0..self.kh {
            let t = (iy + self.pt) as isize - (ky * self.dh) as isize;
            if t < 0 || !(t as usize).is_multiple_of(self.sh) || t as usize / self.sh >= self.oh {
                continue;
            }
            let oy = t as usize / self.sh;
            for kx in 0..self.kw {
                let t = (ix + self.pl) as isize - (kx * self.dw) as isize;
                if t < 0 || !(t as usize).is_multiple_of(self.sw) || t as usize / self.sw >= self.ow
                {
                    continue;
                }
                let ox = t as usize / self.sw;
                taps.push((ky * self.kw + kx, oy * self.ow + ox));
            }
        }
    }

    /// The sums of channel group `grp` at every output position, into `sc.sums` (`[pos, cog]`),
    /// from the delta map `sc.dmap`: receptive fields gathered (zero where padded), then one dot
    /// product per (position, output channel); position blocks run in parallel on big layers.
    fn group_sums(&self, m: &DenseMatrix, sc: &mut ConvScratch, grp: usize) {
        use rayon::prelude::*;
        let (ohw, k) = (self.oh * self.ow, self.cig * self.kh * self.kw);
        sc.fields.resize(ohw * k, 0);
        sc.sums.resize(ohw * self.cog, 0);
        let base = grp * self.cig * self.h * self.w;
        let dmap = &sc.dmap;
        let task = |(t, (f, s)): (usize, (&mut [i16], &mut [i32]))| {
            self.block_sums(m, &dmap[base..], grp, t * POSITIONS_PER_TASK, f, s)
        };
        let (fields, sums) = (POSITIONS_PER_TASK * k, POSITIONS_PER_TASK * self.cog);
        if ohw * k * self.cog >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1 {
            sc.fields
                .par_chunks_mut(fields)
                .zip(sc.sums.par_chunks_mut(sums))
                .enumerate()
                .for_each(task);
        } else {
            sc.fields
                .chunks_mut(fields)
                .zip(sc.sums.chunks_mut(sums))
                .enumerate()
                .for_each(task);
        }
    }

    /// [`ConvRt::group_sums`] for the positions from `pos0` on that `fields`/`sums` hold.
    fn block_sums(
        &self,
        m: &DenseMatrix,
        dmap: &[i16],
        grp: usize,
        pos0: usize,
        fields: &mut [i16],
        sums: &mut [i32],
    ) {
        let hw = self.h * self.w;
        let k = self.cig * self.kh * self.kw;
        for (j, (f, s)) in fields
            .chunks_exact_mut(k)
            .zip(sums.chunks_exact_mut(self.cog))
            .enumerate()
        {
            let pos = pos0 + j;
            let (oy, ox) = (pos / self.ow, pos % self.ow);
            let mut at = 0;
            let mut any = false;
            for c in 0..self.cig {
                for ky in 0..self.kh {
                    let iy = (oy * self.sh + ky * self.dh) as isize - self.pt as isize;
                    for kx in 0..self.kw {
                        let ix = (ox * self.sw + kx * self.dw) as isize - self.pl as isize;
                        let inside =
                            iy >= 0 && (iy as usize) < self.h && ix >= 0 && (ix as usize) < self.w;
                        f[at] = if inside {
                            dmap[c * hw + iy as usize * self.w + ix as usize]
                        } else {
                            0
                        };
                        any |= f[at] != 0;
                        at += 1;
                    }
                }
            }
            if !any {
                s.fill(0);
                continue;
            }
            for (o, v) in s.iter_mut().enumerate() {
                *v = m.row_dot(grp * self.cog + o, 0, f);
            }
        }
    }

    /// Output channels of the channel group input `i` belongs to.
    fn out_range(&self, i: usize) -> (usize, usize) {
        let grp = i / (self.h * self.w) / self.cig;
        (grp * self.cog, (grp + 1) * self.cog)
    }

    /// [`ConvRt::charge`] of every input in `inputs`, summed per tile band and (channel group,
    /// taps) first: each event's memory words are rounded up on their own, so equal events round
    /// equally and the sums are the same as event by event.
    fn charge_batch(
        &mut self,
        inputs: impl Iterator<Item = usize>,
        slices: &[TileRt],
        counters: &mut [Counters],
    ) {
        let hw = self.h * self.w;
        let per = self.kh * self.kw + 1;
        let groups = self.groups;
        let batch: Vec<usize> = inputs.collect();
        if groups * per > 1 << 16 {
            // Huge kernels times many groups: a histogram would cost more than it saves.
            for &i in &batch {
                self.charge(i, slices, counters);
            }
            return;
        }
        for (r, ty) in self.taps_y.iter().enumerate() {
            for (k, tx) in self.taps_x.iter().enumerate() {
                let band = (r as u32, k as u32);
                if !slices.iter().any(|t| t.band == band) {
                    continue;
                }
                self.tap_hist.clear();
                self.tap_hist.resize(groups * per, 0);
                for &i in &batch {
                    let (iy, ix) = ((i % hw) / self.w, i % self.w);
                    let taps = (ty[iy] * tx[ix]) as usize;
                    let grp = i / hw / self.cig;
                    self.tap_hist[grp * per + taps] += 1;
                }
                for grp in 0..groups {
                    let (o0, o1) = (grp * self.cog, (grp + 1) * self.cog);
                    for taps in 1..per {
                        let n = self.tap_hist[grp * per + taps];
                        if n == 0 {
                            continue;
                        }
                        for t in slices.iter().filter(|t| t.band == band) {
                            let lo = (t.start as usize).max(o0);
                            let hi = (t.end as usize).min(o1);
                            if hi > lo {
                                let syn = ((hi - lo) * taps) as u64;
                                let c = &mut counters[t.core as usize];
                                c.syn_ops += n * syn;
                                c.mem_reads += n * syn.div_ceil(4);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Charges one event of input `i` to every tile holding neurons it reaches: the synapses
    /// visited (channels of the tile in the event's channel group × kernel taps landing on the
    /// tile's neurons) and the memory words read (see [`DenseRt::charge`]).
    fn charge(&self, i: usize, slices: &[TileRt], counters: &mut [Counters]) {
        let (o0, o1) = self.out_range(i);
        let hw = self.h * self.w;
        let (iy, ix) = ((i % hw) / self.w, i % self.w);
        for t in slices {
            let lo = (t.start as usize).max(o0);
            let hi = (t.end as usize).min(o1);
            if hi > lo {
                let taps = (self.taps_y[t.band.0 as usize][iy] * self.taps_x[t.band.1 as usize][ix])
                    as usize;
                let syn = ((hi - lo) * taps) as u64;
                if syn == 0 {
                    continue;
                }
                let c = &mut counters[t.core as usize];
                c.syn_ops += syn;
                c.mem_reads += syn.div_ceil(4);
            }
        }
    }
}

impl DenseRt {
    /// Charges the delivery of one event at input `i` to every core holding a slice: synapses
    /// visited and memory words read, as the slice stores the group (dense rows or sparse
    /// lists). Both delivery kernels call this once per event, so counters cannot depend on
    /// which one ran.
    fn charge(&self, i: usize, slices: &[TileRt], counters: &mut [Counters]) {
        let col = &self.rows[self.col_ptr[i] as usize..self.col_ptr[i + 1] as usize];
        for (
            s,
            &TileRt {
                core, start, end, ..
            },
        ) in slices.iter().enumerate()
        {
            let (syn, bytes) = if self.sparse_slice[s] {
                let n = (col.partition_point(|&r| r < end) - col.partition_point(|&r| r < start))
                    as u64;
                (n, n * SPARSE_SYNAPSE_BYTES)
            } else {
                let n = u64::from(end - start);
                (n, n)
            };
            let c = &mut counters[core as usize];
            c.syn_ops += syn;
            c.mem_reads += bytes.div_ceil(4);
        }
    }
}

impl PopRt {
    pub(crate) fn new(p: &Population) -> PopRt {
        let channels = p.pre_shape[0] as usize;
        let pre: usize = p.pre_shape.iter().map(|&d| d as usize).product();
        let post: usize = p.shape.iter().map(|&d| d as usize).product();
        let (grid, tiles) = crate::tiles::population_tiles(p);
        let nc = grid.cols.len();
        let slices: Vec<TileRt> = tiles
            .iter()
            .enumerate()
            .map(|(k, t)| TileRt {
                core: t.core,
                start: t.ch.0,
                end: t.ch.1,
                band: (((k / nc) % grid.rows.len()) as u32, (k % nc) as u32),
                pre_area: t.pre_area(),
                post_area: t.post_area(),
            })
            .collect();
        let mut band_of_channel = vec![0u32; channels];
        for (k, &(start, end)) in grid.channels.iter().enumerate() {
            band_of_channel[start as usize..end as usize].fill(k as u32);
        }
        let bands = |bands: &[(u32, u32)]| -> Vec<u32> {
            let mut v = Vec::new();
            for (k, &(_, b)) in bands.iter().enumerate() {
                v.resize(b as usize, k as u32);
            }
            v
        };
        let row_band = bands(&grid.rows);
        let col_band = bands(&grid.cols);
        let row_spans: Vec<(u32, u32)> = (0..grid.rows.len())
            .map(|r| tiles[r * nc].pre_rows)
            .collect();
        let col_spans: Vec<(u32, u32)> = (0..nc).map(|k| tiles[k].pre_cols).collect();
        let groups = p
            .groups
            .iter()
            .map(|g| match g.kind.as_ref().expect("validated") {
                GroupKind::Dense(d) => GroupRt::Dense(build_dense(
                    g,
                    d.out_features as usize,
                    d.in_features as usize,
                    &slices,
                )),
                GroupKind::Conv(c) => GroupRt::Conv(Box::new(build_conv(
                    g,
                    c,
                    p.pre_shape[1] as usize,
                    p.pre_shape[2] as usize,
                    &row_spans,
                    &col_spans,
                ))),
            })
            .collect();
        let pool = p.pool.as_ref().map(|q| PoolRt {
            kind: PoolKindMsg::try_from(q.kind).unwrap_or(PoolKindMsg::Max),
            kh: q.kernel[0] as usize,
            kw: q.kernel[1] as usize,
            sh: q.strides[0] as usize,
            sw: q.strides[1] as usize,
            pt: q.pads[0] as usize,
            pl: q.pads[1] as usize,
            h: p.pre_shape[1] as usize,
            w: p.pre_shape[2] as usize,
            oh: p.shape[1] as usize,
            ow: p.shape[2] as usize,
            include_pad: q.count_include_pad,
        });
        let mut bias = vec![0i64; channels];
        for (b, &v) in bias.iter_mut().zip(&p.bias) {
            *b = i64::from(v);
        }
        PopRt {
            pre_hw: pre / channels,
            post_hw: post / channels,
            quant: LayerQuant {
                weight_exp: Vec::new(),
                bias: None,
                state_bits: p.state_bits,
                act_shift: p.act_shift,
                act_min: p.act_min,
                act_max: p.act_max,
                scale: p.scale,
                mode: nmc_ir::QuantMode::Shift,
            },
            bias,
            groups,
            sent: vec![0; slices.len()],
            slices,
            band_of_channel,
            post_w: if p.shape.len() == 3 {
                p.shape[2] as usize
            } else {
                1
            },
            grid_rows: grid.rows.len(),
            grid_cols: nc,
            row_band,
            col_band,
            out_set: Vec::new(),
            sets: 1,
            sigma: vec![0; pre],
            act: if pool.is_some() {
                vec![0; pre]
            } else {
                Vec::new()
            },
            pool,
            prev: vec![0; post],
            dirty: Vec::new(),
            is_dirty: vec![false; pre],
            pdirty: Vec::new(),
            is_pdirty: vec![false; post],
            outbuf: Vec::new(),
            cuba: p.cuba.as_ref().map(|c| c.to_ir()),
            u: if p.cuba.is_some() {
                vec![0; pre]
            } else {
                Vec::new()
            },
            v: if p.cuba.is_some() {
                vec![0; pre]
            } else {
                Vec::new()
            },
        }
    }

    /// Snn mode: this step's spikes and each neuron's voltage after the step.
    pub(crate) fn spikes_and_voltages(&self) -> (&[i64], &[i64]) {
        (&self.prev, &self.v)
    }

    /// Whether this is an snn-mode (CUBA-LIF) population.
    pub(crate) fn is_cuba(&self) -> bool {
        self.cuba.is_some()
    }

    /// Back to the state before any input: all sums and sent values zero.
    /// The neuron state (for the settled baseline every sample starts from).
    pub(crate) fn state(&self) -> [Vec<i64>; 5] {
        [
            self.sigma.clone(),
            self.act.clone(),
            self.prev.clone(),
            self.u.clone(),
            self.v.clone(),
        ]
    }

    /// Restores a state taken by [`PopRt::state`] and clears pending work.
    pub(crate) fn restore(&mut self, state: &[Vec<i64>; 5]) {
        self.reset();
        self.sigma.copy_from_slice(&state[0]);
        self.act.copy_from_slice(&state[1]);
        self.prev.copy_from_slice(&state[2]);
        self.u.copy_from_slice(&state[3]);
        self.v.copy_from_slice(&state[4]);
    }

    /// Neurons (pre-pool, plus pooled outputs) each core updates per timestep, added to `per_core`.
    pub(crate) fn count_neurons(&self, per_core: &mut [u64]) {
        for t in &self.slices {
            let ch = u64::from(t.end - t.start);
            let pooled = if self.pool.is_some() {
                ch * t.post_area
            } else {
                0
            };
            per_core[t.core as usize] += ch * t.pre_area + pooled;
        }
    }

    /// Takes the destination sets of this population's outputs ([`crate::tiles::fanout`]).
    pub(crate) fn set_fanout(&mut self, f: &crate::tiles::Fanout) {
        self.sets = f.sets.len().max(1);
        self.out_set = f.of_elem.clone();
        self.sent = vec![0; self.slices.len() * self.sets];
    }

    pub(crate) fn reset(&mut self) {
        self.u.fill(0);
        self.v.fill(0);
        self.sigma.fill(0);
        self.act.fill(0);
        self.prev.fill(0);
        self.dirty.clear();
        self.is_dirty.fill(false);
        self.pdirty.clear();
        self.is_pdirty.fill(false);
        self.sent.fill(0);
    }

    fn emit(&mut self, src: u32, out: usize, y: i64, outbox: &mut Vec<Event>) {
        let delta = y - self.prev[out];
        if delta != 0 {
            self.prev[out] = y;
            outbox.push(Event {
                src,
                idx: out as u32,
                delta,
            });
            let ch = out / self.post_hw;
            let band = self.band_of_channel[ch] as usize;
            let slice = if self.grid_rows == 1 && self.grid_cols == 1 {
                band
            } else {
                let pos = out % self.post_hw;
                let (oy, ox) = (pos / self.post_w, pos % self.post_w);
                (band * self.grid_rows + self.row_band[oy] as usize) * self.grid_cols
                    + self.col_band[ox] as usize
            };
            let set = self.out_set.get(out).map_or(0, |&s| s as usize);
            self.sent[slice * self.sets + set] += 1;
        }
    }

    /// Neurons (and pooled outputs) the next [`PopRt::update`] visits.
    pub(crate) fn pending(&self, full: bool) -> usize {
        if full || self.is_cuba() {
            self.sigma.len() + self.prev.len()
        } else {
            self.dirty.len() + self.pdirty.len()
        }
    }

    /// Neuron phase of a step: updates the neurons whose input changed (all of them when
    /// `full`), pools, and emits the deltas of changed outputs as events from source `src`.
    pub(crate) fn update(&mut self, src: u32, full: bool, outbox: &mut Vec<Event>) {
        if let Some(c) = self.cuba {
            self.update_cuba(src, &c, outbox);
            return;
        }
        let mut list = std::mem::take(&mut self.dirty);
        if full {
            list.clear();
            list.extend(0..self.sigma.len() as u32);
        }
        for &n in &list {
            let n = n as usize;
            self.is_dirty[n] = false;
            let ch = n / self.pre_hw;
            let y = nmc_ir::activate(self.sigma[n].wrapping_add(self.bias[ch]), &self.quant);
            if self.pool.is_none() {
                self.emit(src, n, y, outbox);
            } else if y != self.act[n] {
                self.act[n] = y;
                if !full {
                    self.mark_windows(n);
                }
            }
        }
        list.clear();
        self.dirty = list;
        if self.pool.is_some() {
            let mut plist = std::mem::take(&mut self.pdirty);
            if full {
                plist.clear();
                plist.extend(0..self.prev.len() as u32);
            }
            for &o in &plist {
                let o = o as usize;
                self.is_pdirty[o] = false;
                let y = self.pooled(o);
                self.emit(src, o, y, outbox);
            }
            plist.clear();
            self.pdirty = plist;
        }
    }

    /// Neuron phase of an snn-mode population: every neuron steps (its state decays whether or
    /// not input arrived) on the step's summed input, which is then cleared; each spike is an
    /// event of value 1, sent the step it happens. `prev` holds this step's spikes. A neuron at
    /// rest (no current, voltage, input or bias) stays at rest, so it is skipped.
    fn update_cuba(&mut self, src: u32, c: &nmc_ir::CubaQuant, outbox: &mut Vec<Event>) {
        let shift = self.quant.act_shift;
        let idle = c.v_bias == 0;
        let pooled = self.pool.is_some();
        for n in 0..self.sigma.len() {
            let a = self.sigma[n].wrapping_add(self.bias[n / self.pre_hw]);
            self.sigma[n] = 0;
            let spiked = !(idle && a == 0 && self.u[n] == 0 && self.v[n] == 0)
                && c.step(&mut self.u[n], &mut self.v[n], a, shift);
            if pooled {
                self.act[n] = i64::from(spiked);
            } else {
                self.prev[n] = 0;
                if spiked {
                    // `emit` sends the change from `prev` (0 here) and leaves `prev` at 1.
                    self.emit(src, n, 1, outbox);
                }
            }
        }
        if pooled {
            // A sum pool sends each window's spike count, whole, every step it is non-zero.
            for o in 0..self.prev.len() {
                let y = self.pooled(o);
                self.prev[o] = 0;
                if y != 0 {
                    self.emit(src, o, y, outbox);
                }
            }
        }
        for &n in &self.dirty {
            self.is_dirty[n as usize] = false;
        }
        self.dirty.clear();
    }

    /// Marks every pooled output whose window holds pre-pool neuron `n`.
    fn mark_windows(&mut self, n: usize) {
        let p = self.pool.as_ref().expect("pooled population");
        let hw = p.h * p.w;
        let (ch, iy, ix) = (n / hw, (n % hw) / p.w, n % p.w);
        // Window oy covers rows oy·sh − pt ..= oy·sh − pt + kh − 1.
        let range = |i: usize, pad: usize, k: usize, s: usize, o: usize| {
            let hi = ((i + pad) / s).min(o.saturating_sub(1));
            let lo = (i + pad + 1).saturating_sub(k).div_ceil(s);
            (lo, hi)
        };
        let (y0, y1) = range(iy, p.pt, p.kh, p.sh, p.oh);
        let (x0, x1) = range(ix, p.pl, p.kw, p.sw, p.ow);
        let (oh, ow) = (p.oh, p.ow);
        if y0 > y1 || x0 > x1 {
            return;
        }
        for oy in y0..=y1 {
            for ox in x0..=x1 {
                let o = (ch * oh + oy) * ow + ox;
                if !self.is_pdirty[o] {
                    self.is_pdirty[o] = true;
                    self.pdirty.push(o as u32);
                }
            }
        }
    }

    /// Pooled value of output `o`, exactly as the reference interpreter computes it.
    fn pooled(&self, o: usize) -> i64 {
        let p = self.pool.as_ref().expect("pooled population");
        let ohw = p.oh * p.ow;
        let (ch, oy, ox) = (o / ohw, (o % ohw) / p.ow, o % p.ow);
        let (mut max, mut sum, mut n) = (i64::MIN, 0i64, 0usize);
        for ky in 0..p.kh {
            let iy = (oy * p.sh + ky) as isize - p.pt as isize;
            if iy < 0 || iy >= p.h as isize {
                continue;
            }
            for kx in 0..p.kw {
                let ix = (ox * p.sw + kx) as isize - p.pl as isize;
                if ix < 0 || ix >= p.w as isize {
                    continue;
                }
                let v = self.act[(ch * p.h + iy as usize) * p.w + ix as usize];
                max = max.max(v);
                sum += v;
                n += 1;
            }
        }
        match p.kind {
            PoolKindMsg::Max => {
                if n == 0 {
                    0
                } else {
                    max
                }
            }
            PoolKindMsg::Sum => sum,
            PoolKindMsg::Avg => {
                let d = if p.include_pad { p.kh * p.kw } else { n };
                sum.div_euclid(d.max(1) as i64)
            }
        }
    }

    fn mark(is_dirty: &mut [bool], dirty: &mut Vec<u32>, n: usize) {
        if !is_dirty[n] {
            is_dirty[n] = true;
            dirty.push(n as u32);
        }
    }

    /// Delivery of one event to synapse group `group` at input position `i`: accumulates into
    /// the neurons it reaches and charges every core holding a slice of this population.
    pub(crate) fn accept(
        &mut self,
        group: usize,
        i: usize,
        delta: i64,
        counters: &mut [Counters],
        taps: &mut Vec<(usize, usize)>,
    ) {
        let PopRt {
            groups,
            sigma,
            dirty,
            is_dirty,
            slices,
            ..
        } = self;
        match &groups[group] {
            GroupRt::Dense(g) => {
                let (a, b) = (g.col_ptr[i] as usize, g.col_ptr[i + 1] as usize);
                for (&r, &w) in g.rows[a..b].iter().zip(&g.vals[a..b]) {
                    let r = r as usize;
                    sigma[r] = sigma[r].wrapping_add(w.wrapping_mul(delta) << g.exp);
                    Self::mark(is_dirty, dirty, r);
                }
                g.charge(i, slices, counters);
            }
            GroupRt::Conv(g) => {
                g.taps(i, taps);
                let cl = (i / (g.h * g.w)) % g.cig;
                let (o0, o1) = g.out_range(i);
                let (khw, ohw) = (g.kh * g.kw, g.oh * g.ow);
                for o in o0..o1 {
                    let wbase = (o * g.cig + cl) * khw;
                    for &(k, pos) in taps.iter() {
                        let w = i64::from(g.weights[wbase + k]);
                        if w != 0 {
                            let n = o * ohw + pos;
                            sigma[n] = sigma[n].wrapping_add(w.wrapping_mul(delta) << g.exp);
                            Self::mark(is_dirty, dirty, n);
                        }
                    }
                }
                g.charge(i, slices, counters);
            }
        }
    }

    /// Delivery of a batch of events of one source, read by group `group` at input offset
    /// `offset`, through a dense kernel (see [`super::kernels`]). Returns `false`, having changed
    /// nothing, where the kernel would not pay or not be exact: the caller then delivers the
    /// events one by one with [`PopRt::accept`].
    pub(crate) fn accept_batch(
        &mut self,
        group: usize,
        offset: usize,
        events: &[Event],
        kernels: Kernels,
        counters: &mut [Counters],
    ) -> bool {
        let PopRt {
            groups,
            sigma,
            dirty,
            is_dirty,
            slices,
            ..
        } = self;
        let Some(lo) = events.iter().map(|e| offset + e.idx as usize).min() else {
            return true;
        };
        let hi = events
            .iter()
            .map(|e| offset + e.idx as usize)
            .max()
            .unwrap_or(lo)
            + 1;
        let max_abs = events
            .iter()
            .map(|e| e.delta.unsigned_abs())
            .max()
            .unwrap_or(0);
        if max_abs > i16::MAX as u64 {
            return false;
        }
        let mut add = |n: usize, s: i32, exp: u32| {
            if s != 0 {
                sigma[n] = sigma[n].wrapping_add(i64::from(s) << exp);
                Self::mark(is_dirty, dirty, n);
            }
        };
        match &mut groups[group] {
            GroupRt::Dense(g) => {
                let Some(m) = g.matrix.as_mut() else {
                    return false;
                };
                let span = hi - lo;
                // Few changed inputs: one column multiply–add each; many: the product over the
                // span (cheaper per synapse by about the vector width, but it visits them all).
                if m.columns.is_some()
                    && events.len() * 2 < span
                    && m.exact(max_abs as i64, events.len())
                {
                    m.accumulate_columns(
                        events
                            .iter()
                            .map(|e| (offset + e.idx as usize, e.delta as i16)),
                    );
                } else {
                    if (kernels == Kernels::Auto && !m.pays(events.len(), span))
                        || !m.exact(max_abs as i64, span)
                    {
                        return false;
                    }
                    m.deltas[lo..hi].fill(0);
                    for e in events {
                        // A source sends at most one delta per element and step; should two
                        // ever meet here, the events path handles them.
                        let d = &mut m.deltas[offset + e.idx as usize];
                        if *d != 0 {
                            return false;
                        }
                        *d = e.delta as i16;
                    }
                    m.multiply(lo, hi);
                }
                for (r, &s) in m.sums.iter().enumerate() {
                    add(r, s, g.exp);
                }
                for e in events {
                    g.charge(offset + e.idx as usize, slices, counters);
                }
                true
            }
            GroupRt::Conv(g) => {
                let Some(m) = g.matrix.as_ref() else {
                    return false;
                };
                let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
                let k = g.cig * g.kh * g.kw;
                let groups_in = (hi - 1) / hw / g.cig - lo / hw / g.cig + 1;
                // Event path: each event reaches cog output channels at about kh·kw/(sh·sw)
                // taps; the kernel computes every output of the touched channel groups.
                let visits = (events.len() * g.cog * g.kh * g.kw) as f64 / (g.sh * g.sw) as f64;
                let dense = (groups_in * ohw * k * (g.cog + 1)) as f64;
                if (kernels == Kernels::Auto && visits * super::kernels::DENSE_ADVANTAGE < dense)
                    || !m.exact(max_abs as i64, k)
                {
                    return false;
                }
                let mut sc = std::mem::take(&mut g.scratch);
                let channels = g.cig * g.groups;
                if sc.dmap.len() != channels * hw {
                    sc.dmap = vec![0; channels * hw];
                }
                let mut ok = true;
                for e in events {
                    let d = &mut sc.dmap[offset + e.idx as usize];
                    ok &= *d == 0;
                    *d = e.delta as i16;
                }
                if ok {
                    let first = lo / hw / g.cig;
                    for grp in first..first + groups_in {
                        g.group_sums(m, &mut sc, grp);
                        for (pos, sums) in sc.sums.chunks_exact(g.cog).enumerate() {
                            for (j, &s) in sums.iter().enumerate() {
                                add((grp * g.cog + j) * ohw + pos, s, g.exp);
                            }
                        }
                    }
                }
                for e in events {
                    sc.dmap[offset + e.idx as usize] = 0;
                }
                g.scratch = sc;
                if ok {
                    g.charge_batch(
                        events.iter().map(|e| offset + e.idx as usize),
                        slices,
                        counters,
                    );
                }
                ok
            }
        }
    }
}
