//! Event-based emulation of an artifact, bit-exact with `nmc_ir::Interpreter` on the quantised
//! graph.
//!
//! The host's part comes first: an input with host padding (`InputMsg::host_pads`) is
//! zero-padded, each channel with code 0 (the code of real 0.0), before the first layer reads
//! it; the layer then runs Valid on the padded image.
//!
//! A frame flows through the layers in order (Akida 1.0 runs a frame through its layer pipeline;
//! there are no timesteps). A layer receives its source's **non-zero** values as events, in the
//! vendor's conventions the artifact stores: a convolution event at input position `(c, y, x)`
//! reaches every output `(o, oy, ox)` with `oy·s = y + j − (kh − 1 − pad_top)` for kernel row `j`
//! of the flipped kernel (a true convolution), and likewise for columns; a dense event at
//! `(c, h, w)` is column `h + H·w + H·W·c` of the weight matrix. Each event is delivered only to
//! the NPs whose slice it touches (channel group × row band), which count it. Work is therefore
//! proportional to the non-zero activations times their fan-out. Then every NP evaluates its
//! neurons: `p = sat32(Σ w·x − threshold)` and, with an activation,
//! `clamp(ceil(p / act_step), 0, 2^bits − 1)`; max pooling pools the activations; global average
//! pooling sums the potentials of a channel before the threshold (the `1/N` is in the step).
//!
//! Performance: see [`crate::spec::CostModel`] for the formulas and [`PerfReport`] for what is
//! counted.

use crate::artifact::{Artifact, LayerKindMsg, PoolMsg, SourceKind, ENVELOPE};
use crate::spec::{ChipSpec, CostModel};
use crate::validate::unit_type;

/// Why an artifact cannot be emulated, or a frame cannot run (the cases every emulator shares).
pub type EmuError = nmc_backend::RunError;

use nmc_backend::{check_int_inputs, IntInput};
pub use nmc_backend::{Bound, Counters};

/// What one unit (HRC or NP) did for one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitPerf {
    /// Mesh column.
    pub col: u32,
    /// Mesh row.
    pub row: u32,
    /// NP slot.
    pub id: u32,
    /// "HRC", "CNP1", "FNP3", …
    pub unit_type: &'static str,
    /// The layer it belongs to.
    pub layer: u32,
    /// The unit's counters for the frame, as the AKD1000 counts them:
    /// - `S`: a stored weight applied to one event (zero weights included, since the NP reads
    ///   them);
    /// - `R`: weight-SRAM words read: per event, the bits of the weights it touches over 50-bit
    ///   words;
    /// - `D`: neurons evaluated (threshold, step and activation), plus pooled outputs;
    /// - messages in: events received; out: events sent (non-zero outputs).
    pub counts: Counters,
    /// Mesh hops from the nearest unit of the source layer (the DMA node for graph inputs).
    pub hops_in: u64,
    /// `t_np` in ns.
    pub t_ns: f64,
    /// The largest term.
    pub bound: Bound,
}

/// One layer of the pipeline for one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerPerf {
    /// Layer name.
    pub name: String,
    /// Units it runs on.
    pub units: usize,
    /// Slowest unit's time (ns).
    pub t_ns: f64,
    /// Time to carry its input over the mesh: `a_hop` × the longest hop count (ns).
    pub hop_ns: f64,
}

/// Performance of one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerfReport {
    /// Hardware passes the frame ran in.
    pub passes: u32,
    /// Time spent at pass boundaries reconfiguring the mesh and moving activations (ns).
    pub reload_ns: f64,
    /// Latency: along the path of layers from the input to the output, the sum of each layer's
    /// slowest unit and input hops (ns).
    pub latency_ns: f64,
    /// Pipeline interval: the slowest unit's time; the throughput is `1e9 / interval` frames/s.
    pub interval_ns: f64,
    /// Energy (nJ).
    pub energy_nj: f64,
    /// Synaptic operations over all units.
    pub synaptic_events: u64,
    /// Per unit, in artifact order.
    pub units: Vec<UnitPerf>,
    /// Per layer, in order.
    pub layers: Vec<LayerPerf>,
}

#[derive(Clone, Copy)]
struct ConvRt {
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// `kh − 1 − pad_top`, `kw − 1 − pad_left`.
    off_h: i64,
    off_w: i64,
}

#[derive(Clone, Copy)]
struct SliceRt {
    unit: usize,
    c0: usize,
    c1: usize,
    r0: usize,
    r1: usize,
}

struct LayerRt {
    name: String,
    dense: bool,
    /// Source: `Ok(input)` or `Err(layer)`.
    src: Result<usize, usize>,
    in_shape: Vec<usize>,
    pre: [usize; 3],
    out_len: usize,
    conv: Option<ConvRt>,
    pool: PoolMsg,
    pool_size: [usize; 2],
    pool_stride: [usize; 2],
    out_hw: [usize; 2],
    act_max: Option<i64>,
    weight_bits: u64,
    /// Conv: `[co][ci][kh][kw]` flipped (an InputConv2D's stored kernel flipped at load);
    /// dense: transposed `[in (column-major order)][out]`.
    weights: Vec<i64>,
    /// Dense: IR flat index → Akida column.
    column: Vec<usize>,
    /// SeparableConv2D: the depthwise kernels `[c][kh][kw]`, flipped as stored; `weights` then
    /// holds the pointwise kernels `[co][c]`.
    dw: Option<Vec<i64>>,
    threshold: Vec<i64>,
    step: Vec<i64>,
    slices: Vec<SliceRt>,
}

/// One graph input as the emulator takes it.
struct InputRt {
    /// Values per sample (the model's shape).
    len: usize,
    /// Largest code.
    max: i64,
    /// Host padding: `[c, h, w]` and `[top, left, bottom, right]`.
    pad: Option<([usize; 3], [usize; 4])>,
}

impl InputRt {
    /// The image as the chip receives it: zero-padded on the host if the artifact says so.
    fn host_side<'x>(&self, x: &'x [i64]) -> std::borrow::Cow<'x, [i64]> {
        let Some(([c, h, w], [t, l, b, r])) = self.pad else {
            return std::borrow::Cow::Borrowed(x);
        };
        let (ph, pw) = (h + t + b, w + l + r);
        let mut out = vec![0i64; c * ph * pw];
        for ci in 0..c {
            for y in 0..h {
                let from = (ci * h + y) * w;
                let to = (ci * ph + y + t) * pw + l;
                out[to..to + w].copy_from_slice(&x[from..from + w]);
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

/// An emulated AKD1000 loaded with one artifact.
pub struct Emulator {
    cost: CostModel,
    units: Vec<(u32, u32, u32, &'static str)>,
    inputs: Vec<InputRt>,
    layers: Vec<LayerRt>,
    outputs: Vec<usize>,
    /// Per unit: its layer.
    unit_layer: Vec<u32>,
    /// Per layer: the hop count of each of its units from its source (computed once).
    hops: Vec<Vec<u64>>,
    /// Per layer: its hardware pass.
    layer_pass: Vec<u32>,
    /// Per pass after the first: bytes moved between host and device before it starts (its
    /// program and the activations that cross into it, plus those leaving the pass before);
    /// last, pass 0's program, which the next frame reloads when there are several passes.
    boundary_bytes: Vec<u64>,
}

/// Per pass boundary (before pass 1, 2, …): the bytes moved between host and device, by the
/// cost model's rule (spec.rs `CostModel`): the next pass's program, the weight memory of its
/// NPs ([`ChipSpec::np_weight_bytes`]), plus each layer output that crosses the boundary, once
/// out to the host and once back in.
fn pass_boundary_bytes(
    a: &Artifact,
    spec: &ChipSpec,
    layer_pass: &[u32],
    passes: usize,
) -> Vec<u64> {
    let mut program = vec![0u64; passes];
    let mut crossing = vec![0u64; passes];
    for (li, l) in a.layers.iter().enumerate() {
        let p = layer_pass[li] as usize;
        let inputs: u64 = l.in_shape.iter().map(|d| u64::from(*d)).product();
        for s in &l.slices {
            let u = &a.units[s.unit as usize];
            let Some(t) = unit_type(u.unit_type).and_then(crate::validate::np_type) else {
                continue;
            };
            let k = l.kernel.first().copied().unwrap_or(1);
            let cin = u64::from(l.in_shape.first().copied().unwrap_or(1));
            let filters = u64::from(s.c1 - s.c0);
            program[p] += if l.kind == LayerKindMsg::SeparableConv2d as i32 {
                spec.sep_words(k, l.weight_bits, cin, filters)
                    .map_or(0, |w| (w * spec.weight_word_bits).div_ceil(8))
            } else {
                spec.np_weight_bytes(t, k, l.weight_bits, cin, inputs, filters)
                    .unwrap_or(0)
            };
        }
        if l.source_kind == SourceKind::Layer as i32 {
            let src = l.source_index as usize;
            if layer_pass[src] as usize != p {
                let bits = u64::from(a.layers[src].act_bits.max(1)).min(32);
                let bytes = (inputs * bits).div_ceil(8);
                // Out after the source's pass, in before this one (counted at each boundary
                // the value crosses once: leaving, and arriving).
                crossing[layer_pass[src] as usize + 1] += bytes;
                crossing[p] += bytes;
            }
        }
    }
    // The last entry: pass 0's program, which the next frame reloads after the last pass.
    let mut out: Vec<u64> = (1..passes).map(|p| program[p] + crossing[p]).collect();
    out.push(program[0]);
    out
}

fn sat32(v: i64) -> i64 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

fn ceil_div(a: i64, d: i64) -> i64 {
    -((-a).div_euclid(d))
}

impl Emulator {
    /// Loads `artifact` (validated here too: it may have been built in memory).
    pub fn new(artifact: &Artifact, spec: &ChipSpec) -> Result<Emulator, EmuError> {
        ENVELOPE.checked(artifact.header.as_ref())?;
        crate::validate::validate(artifact, spec)?;
        let units: Vec<(u32, u32, u32, &'static str)> = artifact
            .units
            .iter()
            .map(|u| {
                (
                    u.col,
                    u.row,
                    u.id,
                    crate::listing::unit_type_name(unit_type(u.unit_type).map_or(-1, |t| t as i32)),
                )
            })
            .collect();
        let mut unit_layer = vec![0u32; units.len()];
        let mut layers = Vec::with_capacity(artifact.layers.len());
        for (li, l) in artifact.layers.iter().enumerate() {
            let us = |v: &[u32]| v.iter().map(|d| *d as usize).collect::<Vec<_>>();
            let in_shape = us(&l.in_shape);
            let pre_v = us(&l.pre_shape);
            let pre = if pre_v.len() == 3 {
                [pre_v[0], pre_v[1], pre_v[2]]
            } else {
                [pre_v[0], 1, 1]
            };
            let dense = l.kind == LayerKindMsg::Dense as i32;
            let src = if l.source_kind == SourceKind::Input as i32 {
                Ok(l.source_index as usize)
            } else {
                Err(l.source_index as usize)
            };
            let conv = (!dense).then(|| ConvRt {
                kh: l.kernel[0] as usize,
                kw: l.kernel[1] as usize,
                sh: l.strides[0] as usize,
                sw: l.strides[1] as usize,
                off_h: i64::from(l.kernel[0]) - 1 - i64::from(l.pads[0]),
                off_w: i64::from(l.kernel[1]) - 1 - i64::from(l.pads[1]),
            });
            let n_in: usize = in_shape.iter().product();
            let (weights, column) = if dense {
                let out = pre[0];
                let mut t = vec![0i64; l.weights.len()];
                for o in 0..out {
                    for j in 0..n_in {
                        t[j * out + o] = i64::from(l.weights[o * n_in + j]);
                    }
                }
                let column: Vec<usize> = if in_shape.len() == 3 {
                    let (h, w) = (in_shape[1], in_shape[2]);
                    (0..n_in)
                        .map(|f| {
                            let (ci, hi, wi) = (f / (h * w), (f / w) % h, f % w);
                            crate::lower::column_major_index(&in_shape, ci, hi, wi)
                        })
                        .collect()
                } else {
                    (0..n_in).collect()
                };
                (t, column)
            } else if l.kind == LayerKindMsg::InputConv2d as i32 {
                // Stored as a cross-correlation (akida's InputConvolutional); the event
                // delivery below runs true convolutions, so flip it once here.
                let flipped = crate::lower::flip_kernels(
                    &l.weights,
                    l.kernel[0] as usize,
                    l.kernel[1] as usize,
                );
                (flipped.iter().map(|w| i64::from(*w)).collect(), Vec::new())
            } else {
                (
                    l.weights.iter().map(|w| i64::from(*w)).collect(),
                    Vec::new(),
                )
            };
            let pool = PoolMsg::try_from(l.pool).unwrap_or(PoolMsg::None);
            let p2 = |v: &[u32]| {
                [
                    v.first().map_or(1, |x| *x as usize),
                    v.get(1).map_or(1, |x| *x as usize),
                ]
            };
            let out_hw = if l.out_shape.len() == 3 {
                [l.out_shape[1] as usize, l.out_shape[2] as usize]
            } else {
                [1, 1]
            };
            let slices: Vec<SliceRt> = l
                .slices
                .iter()
                .map(|s| SliceRt {
                    unit: s.unit as usize,
                    c0: s.c0 as usize,
                    c1: s.c1 as usize,
                    r0: s.r0 as usize,
                    r1: s.r1 as usize,
                })
                .collect();
            for s in &slices {
                unit_layer[s.unit] = li as u32;
            }
            layers.push(LayerRt {
                name: l.name.clone(),
                dense,
                src,
                in_shape,
                pre,
                out_len: l.out_shape.iter().map(|d| *d as usize).product(),
                conv,
                pool,
                pool_size: p2(&l.pool_size),
                pool_stride: p2(&l.pool_stride),
                out_hw,
                act_max: (l.act_bits > 0).then(|| (1i64 << l.act_bits) - 1),
                weight_bits: u64::from(l.weight_bits),
                weights,
                column,
                dw: (l.kind == LayerKindMsg::SeparableConv2d as i32)
                    .then(|| l.dw_weights.iter().map(|w| i64::from(*w)).collect()),
                threshold: l.threshold.iter().map(|t| i64::from(*t)).collect(),
                step: l.act_step.iter().map(|t| i64::from(*t).max(1)).collect(),
                slices,
            });
        }
        // Validated: every layer has slices, all in one pass.
        let layer_pass: Vec<u32> = artifact
            .layers
            .iter()
            .map(|l| {
                l.slices
                    .first()
                    .map_or(0, |s| artifact.units[s.unit as usize].pass)
            })
            .collect();
        let passes = layer_pass.last().map_or(1, |p| p + 1) as usize;
        let boundary_bytes = pass_boundary_bytes(artifact, spec, &layer_pass, passes);
        let dma = (spec.dmas[0].0, spec.dmas[0].1);
        let hops = layers
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let from: Vec<(u32, u32)> = match l.src {
                    Ok(_) => vec![dma],
                    // A source in an earlier pass comes back from the host through the DMA.
                    Err(p) if layer_pass[p] != layer_pass[li] => vec![dma],
                    Err(p) => layers[p]
                        .slices
                        .iter()
                        .map(|s| (units[s.unit].0, units[s.unit].1))
                        .collect(),
                };
                l.slices
                    .iter()
                    .map(|s| {
                        let at = (units[s.unit].0, units[s.unit].1);
                        from.iter()
                            .map(|f| ChipSpec::hops(*f, at))
                            .min()
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        Ok(Emulator {
            cost: spec.cost.clone(),
            units,
            inputs: artifact
                .inputs
                .iter()
                .map(|i| {
                    let us: Vec<usize> = i.shape.iter().map(|d| *d as usize).collect();
                    // Validated: host pads are empty or four values on a `[c, h, w]` input.
                    let pad = match (us.as_slice(), i.host_pads.as_slice()) {
                        (&[c, h, w], &[t, l, b, r]) => {
                            Some(([c, h, w], [t, l, b, r].map(|p| p as usize)))
                        }
                        _ => None,
                    };
                    InputRt {
                        len: us.iter().product(),
                        max: (1i64 << i.bits) - 1,
                        pad,
                    }
                })
                .collect(),
            layers,
            outputs: artifact.outputs.iter().map(|o| o.layer as usize).collect(),
            unit_layer,
            hops,
            layer_pass,
            boundary_bytes,
        })
    }

    /// Runs one frame; returns the integer outputs (one vector per graph output, in the IR's
    /// row-major order) and the performance report.
    pub fn run(&self, inputs: &[Vec<i64>]) -> Result<(Vec<Vec<i64>>, PerfReport), EmuError> {
        let expected: Vec<IntInput> = self
            .inputs
            .iter()
            .map(|i| IntInput {
                len: i.len,
                min: 0,
                max: i.max,
            })
            .collect();
        check_int_inputs(inputs, &expected)?;
        let inputs: Vec<std::borrow::Cow<[i64]>> = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(i, x)| i.host_side(x))
            .collect();
        let mut perf: Vec<UnitPerf> = self
            .units
            .iter()
            .zip(&self.unit_layer)
            .map(|(&(col, row, id, ty), &layer)| UnitPerf {
                col,
                row,
                id,
                unit_type: ty,
                layer,
                ..Default::default()
            })
            .collect();
        let mut values: Vec<Vec<i64>> = Vec::with_capacity(self.layers.len());
        for (li, l) in self.layers.iter().enumerate() {
            let x: &[i64] = match l.src {
                Ok(i) => &inputs[i],
                Err(p) => &values[p],
            };
            for (s, &h) in l.slices.iter().zip(&self.hops[li]) {
                perf[s.unit].hops_in = h;
            }
            let acc = if l.dense {
                self.dense(l, x, &mut perf)
            } else if l.dw.is_some() {
                self.separable(l, x, &mut perf)
            } else {
                self.conv(l, x, &mut perf)
            };
            values.push(self.neurons(l, &acc, &mut perf));
        }
        let outs = self.outputs.iter().map(|&o| values[o].clone()).collect();
        Ok((outs, self.report(perf)))
    }

    fn dense(&self, l: &LayerRt, x: &[i64], perf: &mut [UnitPerf]) -> Vec<i64> {
        let out = l.pre[0];
        let mut acc = vec![0i64; out];
        for (f, &v) in x.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let j = l.column[f];
            let row = &l.weights[j * out..(j + 1) * out];
            for s in &l.slices {
                let p = &mut perf[s.unit];
                p.counts.msgs_in += 1;
                let n = (s.c1 - s.c0) as u64;
                p.counts.syn_ops += n;
                p.counts.mem_reads += (n * l.weight_bits).div_ceil(50);
                for o in s.c0..s.c1 {
                    acc[o] += row[o] * v;
                }
            }
        }
        acc
    }

    fn conv(&self, l: &LayerRt, x: &[i64], perf: &mut [UnitPerf]) -> Vec<i64> {
        let Some(c) = l.conv else {
            return vec![0; l.pre.iter().product()];
        };
        let (ci_n, h, w) = (l.in_shape[0], l.in_shape[1], l.in_shape[2]);
        let [co, oh, ow] = l.pre;
        let mut acc = vec![0i64; co * oh * ow];
        let per_o = ci_n * c.kh * c.kw;
        // Output rows (with kernel row j) and columns (with kernel column j) an input row or
        // column reaches: o·s = i + j − off.
        let reach = |i: usize, k: usize, s: usize, off: i64, n: usize| -> Vec<(usize, usize)> {
            (0..k)
                .filter_map(|j| {
                    let t = i as i64 + j as i64 - off;
                    (t >= 0 && t % s as i64 == 0 && ((t / s as i64) as usize) < n)
                        .then(|| ((t / s as i64) as usize, j))
                })
                .collect()
        };
        let cols: Vec<Vec<(usize, usize)>> = (0..w)
            .map(|ix| reach(ix, c.kw, c.sw, c.off_w, ow))
            .collect();
        for (f, &v) in x.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let (ci, iy, ix) = (f / (h * w), (f / w) % h, f % w);
            let rows = reach(iy, c.kh, c.sh, c.off_h, oh);
            let cs = &cols[ix];
            if cs.is_empty() {
                continue;
            }
            for s in &l.slices {
                let taps: Vec<&(usize, usize)> = rows
                    .iter()
                    .filter(|(oy, _)| (s.r0..s.r1).contains(oy))
                    .collect();
                if taps.is_empty() {
                    continue;
                }
                let p = &mut perf[s.unit];
                p.counts.msgs_in += 1;
                let n = ((s.c1 - s.c0) * taps.len() * cs.len()) as u64;
                p.counts.syn_ops += n;
                p.counts.mem_reads += (n * l.weight_bits).div_ceil(50);
                for o in s.c0..s.c1 {
                    let wo = &l.weights[o * per_o + ci * c.kh * c.kw..];
                    for &&(oy, jy) in &taps {
                        let arow = &mut acc[(o * oh + oy) * ow..(o * oh + oy + 1) * ow];
                        for &(ox, jx) in cs {
                            arow[ox] += wo[jy * c.kw + jx] * v;
                        }
                    }
                }
            }
        }
        acc
    }

    /// A SeparableConv2D: the depthwise sums first, each input event reaching the outputs of its
    /// own channel through the flipped kernel (as [`Emulator::conv`] does per filter), kept at
    /// full precision (docs/chips.md §3.6); then every non-zero depthwise sum is an event for the
    /// pointwise kernels. An NP computes the depthwise sums of its row band for all channels (its
    /// filters need them all), so an input event counts on every NP whose band it reaches.
    fn separable(&self, l: &LayerRt, x: &[i64], perf: &mut [UnitPerf]) -> Vec<i64> {
        let (Some(c), Some(dw)) = (l.conv, l.dw.as_ref()) else {
            return vec![0; l.pre.iter().product()];
        };
        let (ci_n, h, w) = (l.in_shape[0], l.in_shape[1], l.in_shape[2]);
        let [co, oh, ow] = l.pre;
        let reach = |i: usize, k: usize, s: usize, off: i64, n: usize| -> Vec<(usize, usize)> {
            (0..k)
                .filter_map(|j| {
                    let t = i as i64 + j as i64 - off;
                    (t >= 0 && t % s as i64 == 0 && ((t / s as i64) as usize) < n)
                        .then(|| ((t / s as i64) as usize, j))
                })
                .collect()
        };
        let cols: Vec<Vec<(usize, usize)>> = (0..w)
            .map(|ix| reach(ix, c.kw, c.sw, c.off_w, ow))
            .collect();
        // Band of each NP (slices are channel groups × row bands).
        let mut d = vec![0i64; ci_n * oh * ow];
        for (f, &v) in x.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let (ci, iy, ix) = (f / (h * w), (f / w) % h, f % w);
            let rows = reach(iy, c.kh, c.sh, c.off_h, oh);
            let cs = &cols[ix];
            if cs.is_empty() || rows.is_empty() {
                continue;
            }
            for s in &l.slices {
                let taps = rows
                    .iter()
                    .filter(|(oy, _)| (s.r0..s.r1).contains(oy))
                    .count();
                if taps == 0 {
                    continue;
                }
                let p = &mut perf[s.unit];
                p.counts.msgs_in += 1;
                let n = (taps * cs.len()) as u64;
                p.counts.syn_ops += n;
                p.counts.mem_reads += (n * l.weight_bits).div_ceil(50);
            }
            let k = &dw[ci * c.kh * c.kw..(ci + 1) * c.kh * c.kw];
            for &(oy, jy) in &rows {
                let drow = &mut d[(ci * oh + oy) * ow..(ci * oh + oy + 1) * ow];
                for &(ox, jx) in cs {
                    drow[ox] += k[jy * c.kw + jx] * v;
                }
            }
        }
        let mut acc = vec![0i64; co * oh * ow];
        for (f, &v) in d.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let (ci, oy, ox) = (f / (oh * ow), (f / ow) % oh, f % ow);
            for s in &l.slices {
                if !(s.r0..s.r1).contains(&oy) {
                    continue;
                }
                let p = &mut perf[s.unit];
                let n = (s.c1 - s.c0) as u64;
                p.counts.syn_ops += n;
                p.counts.mem_reads += (n * l.weight_bits).div_ceil(50);
                for o in s.c0..s.c1 {
                    acc[(o * oh + oy) * ow + ox] += l.weights[o * ci_n + ci] * v;
                }
            }
        }
        acc
    }

    fn neurons(&self, l: &LayerRt, acc: &[i64], perf: &mut [UnitPerf]) -> Vec<i64> {
        let [co, oh, ow] = l.pre;
        let act = |o: usize, pot: i64| -> i64 {
            let p = sat32(pot - l.threshold[o]);
            match l.act_max {
                Some(max) => ceil_div(p, l.step[o]).clamp(0, max),
                None => p,
            }
        };
        let unit_of = |o: usize, r: usize| -> Option<usize> {
            l.slices
                .iter()
                .find(|s| (s.c0..s.c1).contains(&o) && (s.r0..s.r1).contains(&r))
                .map(|s| s.unit)
        };
        for s in &l.slices {
            perf[s.unit].counts.neuron_updates += ((s.c1 - s.c0) * (s.r1 - s.r0) * ow) as u64;
        }
        match l.pool {
            PoolMsg::GlobalAvg => {
                let mut out = vec![0i64; co];
                for (o, y) in out.iter_mut().enumerate() {
                    // Saturating only matters for hostile artifacts (over 2^22 positions).
                    let sum = acc[o * oh * ow..(o + 1) * oh * ow]
                        .iter()
                        .fold(0i64, |a, b| a.saturating_add(*b));
                    *y = act(o, sum);
                    if let Some(u) = unit_of(o, 0) {
                        perf[u].counts.neuron_updates += 1;
                        perf[u].counts.msgs_out += u64::from(*y != 0);
                    }
                }
                out
            }
            PoolMsg::Max => {
                let y: Vec<i64> = acc
                    .iter()
                    .enumerate()
                    .map(|(i, a)| act(i / (oh * ow), *a))
                    .collect();
                let [ph, pw] = l.pool_size;
                let [sh, sw] = l.pool_stride;
                let [qh, qw] = l.out_hw;
                let mut out = vec![0i64; l.out_len];
                for o in 0..co {
                    for qy in 0..qh {
                        for qx in 0..qw {
                            let mut m = i64::MIN;
                            for dy in 0..ph {
                                for dx in 0..pw {
                                    let (yy, xx) = (qy * sh + dy, qx * sw + dx);
                                    if yy < oh && xx < ow {
                                        m = m.max(y[(o * oh + yy) * ow + xx]);
                                    }
                                }
                            }
                            let m = if m == i64::MIN { 0 } else { m };
                            out[(o * qh + qy) * qw + qx] = m;
                            if let Some(u) = unit_of(o, qy * sh) {
                                perf[u].counts.neuron_updates += 1;
                                perf[u].counts.msgs_out += u64::from(m != 0);
                            }
                        }
                    }
                }
                out
            }
            PoolMsg::None => {
                let rows = if l.dense { 1 } else { oh };
                let per_row = if l.dense { 1 } else { ow };
                let mut out = vec![0i64; acc.len()];
                for s in &l.slices {
                    let mut sent = 0u64;
                    for o in s.c0..s.c1 {
                        for r in s.r0..s.r1.min(rows) {
                            for k in 0..per_row {
                                let i = (o * rows + r) * per_row + k;
                                out[i] = act(o, acc[i]);
                                sent += u64::from(out[i] != 0);
                            }
                        }
                    }
                    perf[s.unit].counts.msgs_out += sent;
                }
                out
            }
        }
    }

    fn report(&self, mut units: Vec<UnitPerf>) -> PerfReport {
        let c = &self.cost;
        let mut energy_pj = 0.0;
        let mut synaptic_events = 0;
        for u in &mut units {
            let k = u.counts;
            let syn = c.a_syn.value * k.syn_ops as f64;
            let neu = c.a_neu.value * k.neuron_updates as f64;
            let mem = c.a_mem.value * k.mem_reads as f64;
            let ev = c.a_event.value * k.messages() as f64;
            // Floorline vocabulary (docs/papers.md §1.3): synaptic processing (operations and the
            // weight reads feeding them) is the memory slope; neuron evaluations the compute floor.
            let (memory, compute) = (syn.max(mem), neu);
            u.t_ns = compute.max(memory).max(ev);
            u.bound = Bound::of(memory, compute, ev);
            energy_pj += c.e_syn.value * k.syn_ops as f64
                + c.e_mem.value * k.mem_reads as f64
                + c.e_neu.value * k.neuron_updates as f64
                + c.e_event.value * k.messages() as f64
                + c.e_hop.value * (k.msgs_in * u.hops_in) as f64;
            synaptic_events += k.syn_ops;
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        // Latency to the end of each layer: its source's, plus its input hops and slowest unit.
        let mut done: Vec<f64> = Vec::with_capacity(self.layers.len());
        // When each pass may start: the previous pass finished, then the boundary's transfers.
        let mut pass_start = 0.0f64;
        let mut pass_end = 0.0f64;
        let mut current = 0u32;
        let mut reload_ns = 0.0;
        for (li, l) in self.layers.iter().enumerate() {
            let p = self.layer_pass[li];
            if p != current {
                let bytes = self.boundary_bytes[p as usize - 1] as f64;
                let t = c.a_pass.value + c.a_load.value * bytes;
                reload_ns += t;
                energy_pj += c.e_load.value * bytes;
                pass_start = pass_end + t;
                current = p;
            }
            let t = l
                .slices
                .iter()
                .map(|s| units[s.unit].t_ns)
                .fold(0.0, f64::max);
            let hops = self.hops[li].iter().copied().max().unwrap_or(0);
            let hop_ns = c.a_hop.value * hops as f64;
            let start = match l.src {
                Ok(_) => pass_start,
                Err(p) => done.get(p).copied().unwrap_or(0.0).max(pass_start),
            };
            done.push(start + hop_ns + t);
            pass_end = pass_end.max(start + hop_ns + t);
            let mut distinct: Vec<usize> = l.slices.iter().map(|s| s.unit).collect();
            distinct.sort_unstable();
            distinct.dedup();
            layers.push(LayerPerf {
                name: l.name.clone(),
                units: distinct.len(),
                t_ns: t,
                hop_ns,
            });
        }
        let latency = self
            .outputs
            .iter()
            .filter_map(|&o| done.get(o).copied())
            .fold(0.0, f64::max);
        // Several passes reconfigure the mesh for every frame: no pipelining across frames, and
        // the next frame first reloads pass 0.
        let passes = current + 1;
        let latency = if passes > 1 {
            latency.max(pass_end)
        } else {
            latency
        };
        let interval = if passes > 1 {
            let first = *self.boundary_bytes.last().unwrap_or(&0) as f64;
            latency + c.a_pass.value + c.a_load.value * first
        } else {
            units.iter().map(|u| u.t_ns).fold(0.0, f64::max)
        };
        energy_pj += c.p_static.value * latency;
        PerfReport {
            passes,
            reload_ns,
            latency_ns: latency,
            interval_ns: interval,
            energy_nj: energy_pj / 1e3,
            synaptic_events,
            units,
            layers,
        }
    }
}
