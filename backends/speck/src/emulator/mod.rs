//! Event-driven emulation of a Speck artifact, bit-exact with the rate-mode semantics of
//! `nmc_ir::Interpreter::run_steps` (see `nmc-ir`'s interpreter docs for the arithmetic).
//!
//! Each timestep: the input events (from the shared [`nmc_ir::RateEncoder`] or a binned event
//! stream) pass the DVS layer ([`crate::dvs::DvsRoute`]: polarity, pooling by summing events
//! into the pooled pixel, region of interest, mirrors) to the input's destination cores — a
//! dense input as the sensor events that feed each of its elements, so both take the chip's
//! path; then every used core, in source-before-consumer
//! order (a merge's core after both its sources, whose events share its one inbox and kernel:
//! sinabs' `Merge`), (1) applies each input event to the kernel entries it reaches, accumulating per-neuron
//! input and remembering which neuron positions it touched, (2) updates only the touched neurons
//! (plus every neuron of a channel with a non-zero bias, which leaks or charges every step, and
//! any neuron still above threshold after a capped step) with [`nmc_ir::if_step`], and (3) sends
//! its spikes, sum-pooled per destination, to its destinations and, if it is the output layer, to
//! the readout. A neuron that receives nothing and has no bias cannot change or fire (its state
//! stays in `[v_min, threshold)`), so skipping it is exact, and the work is proportional to
//! input events × fan-out, not to neurons × timesteps.
//!
//! Counters per core and step feed the latency and energy model ([`perf`]).

mod perf;

pub use perf::{Bound, CoreCounters, Counters, PerfReport};

use crate::artifact::{Artifact, ArtifactError, ENVELOPE};
use crate::events::Binned;
use crate::spec::{speck, CostModel};
use nmc_ir::{LayerQuant, Reset, SpikeQuant};
use perf::{PerfBuilder, StepCounts};

/// What the emulator reports for an artifact without a header or another required part.
const NOT_OURS: ArtifactError = ArtifactError::NotAnArtifact {
    target: ENVELOPE.target,
};

/// Why a run cannot happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmuError {
    /// The artifact is invalid.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The input has the wrong number of values.
    #[error("input has {got} values, the model expects {expected}")]
    InputSize {
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// An input event is outside the input map.
    #[error("input event at flat index {index} is outside the input ({numel} values)")]
    EventOutside {
        /// Flat index.
        index: u32,
        /// Input size.
        numel: usize,
    },
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOut {
    /// Output spike counts summed over the run (the IR's output shape, flattened).
    pub counts: Vec<i64>,
    /// Per-step output counts, when asked for.
    pub per_step: Option<Vec<Vec<i64>>>,
    /// With the per-step counts: the spikes each core's neurons fired in each step (before
    /// pooling), `[step][core]` over all nine cores (0 for an unused core) — what sinabs'
    /// per-layer spike counts are compared with (`tests/src/sinabs_reference.rs`).
    pub core_spikes: Option<Vec<Vec<u64>>>,
    /// Counters, latency, energy.
    pub perf: PerfReport,
}

struct CoreRt {
    id: u32,
    in_c: usize,
    in_h: usize,
    in_w: usize,
    f: usize,
    oh: usize,
    ow: usize,
    k: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    /// Kernel as `[c][ky][kx][f]`, so one tap updates `f` contiguous neurons.
    w: Vec<i64>,
    bias: Vec<i64>,
    leak: Vec<usize>,
    quant: LayerQuant,
    spk: SpikeQuant,
    /// State and accumulated input per neuron, laid out `[oy][ox][f]`.
    v: Vec<i64>,
    acc: Vec<i64>,
    touched: Vec<u32>,
    stamp: Vec<u32>,
    /// Positions with a neuron still at or above threshold (only after a capped spike count).
    carry: Vec<u32>,
    inbox: Vec<[u32; 4]>,
    /// (core index in `cores`, pooling).
    dests: Vec<(usize, u32)>,
    is_output: bool,
    step: StepCounts,
}

/// A prepared emulator for one artifact; [`Emulator::run_dense`] and [`Emulator::run_events`]
/// run one sample each from a fresh state.
pub struct Emulator {
    /// Continue from the last run's state instead of resetting (streams).
    keep_state: bool,
    cores: Vec<CoreRt>,
    input_dests: Vec<usize>,
    input_numel: usize,
    input_map: [u32; 3],
    /// The DVS layer, when the input passes it (events are then sensor events `[2, h, w]`).
    dvs: Option<crate::dvs::DvsRoute>,
    /// Sensor event index of each dense input element (with `dvs`).
    dense_to_sensor: Vec<u32>,
    input_q: nmc_ir::QuantParams,
    out_pool: u32,
    out_map: [u32; 3],
    cost: CostModel,
    depth: u32,
    /// Timesteps recorded in the artifact.
    pub default_timesteps: u32,
}

impl Emulator {
    /// Validates and prepares `a`.
    pub fn new(a: &Artifact) -> Result<Self, EmuError> {
        ENVELOPE.checked(a.header.as_ref())?;
        let sources = crate::validate::validate(a)?;
        // Source-before-consumer order of the used cores (a merge after both its sources).
        let used = sources.iter().filter(|s| !s.is_empty()).count();
        let mut order: Vec<u32> = Vec::new();
        let mut placed = vec![false; a.cnn_layers.len()];
        let mut depth_of = vec![0u32; a.cnn_layers.len()];
        while order.len() < used {
            let before = order.len();
            for (i, s) in sources.iter().enumerate() {
                if s.is_empty()
                    || placed[i]
                    || !s.iter().all(|src| src.is_none_or(|k| placed[k as usize]))
                {
                    continue;
                }
                placed[i] = true;
                depth_of[i] = 1 + s
                    .iter()
                    .map(|src| src.map_or(0, |k| depth_of[k as usize]))
                    .max()
                    .unwrap_or(0);
                order.push(i as u32);
            }
            if order.len() == before {
                return Err(nmc_backend::corrupt("destinations form a cycle").into());
            }
        }
        let index_of = |core: u32| order.iter().position(|&c| c == core).unwrap_or(0);
        let out = a.output.as_ref().ok_or(NOT_OURS)?;
        let mut cores = Vec::with_capacity(order.len());
        for &id in &order {
            let l = &a.cnn_layers[id as usize];
            let d = l.dimensions.unwrap_or_default();
            let [in_c, in_h, in_w] = d
                .input_shape
                .unwrap_or_default()
                .to_chw()
                .map(|v| v as usize);
            let [f, oh, ow] = d
                .output_shape
                .unwrap_or_default()
                .to_chw()
                .map(|v| v as usize);
            let k = d.kernel_size as usize;
            let mut w = vec![0i64; in_c * k * k * f];
            for o in 0..f {
                for c in 0..in_c {
                    for kx in 0..k {
                        for ky in 0..k {
                            let src = ((o * in_c + c) * k + kx) * k + ky;
                            w[((c * k + ky) * k + kx) * f + o] = i64::from(l.weights[src]);
                        }
                    }
                }
            }
            let bias: Vec<i64> = if l.biases.is_empty() {
                vec![0; f]
            } else {
                l.biases.iter().map(|b| i64::from(*b)).collect()
            };
            let leak = (0..f).filter(|&j| bias[j] != 0).collect();
            let st = d.stride.unwrap_or_default();
            let pd = d.padding.unwrap_or_default();
            cores.push(CoreRt {
                id,
                in_c,
                in_h,
                in_w,
                f,
                oh,
                ow,
                k,
                stride: [st.y as usize, st.x as usize],
                pad: [pd.y as usize, pd.x as usize],
                w,
                bias,
                leak,
                quant: LayerQuant {
                    weight_exp: vec![0],
                    bias: None,
                    state_bits: speck().state_bits,
                    act_shift: 0,
                    act_min: 0,
                    act_max: l.max_spikes,
                    scale: 1.0,
                    mode: nmc_ir::QuantMode::Shift,
                },
                spk: SpikeQuant {
                    threshold: l.threshold_high,
                    v_min: l.threshold_low,
                    reset: if l.return_to_zero {
                        Reset::Zero
                    } else {
                        Reset::Subtract
                    },
                },
                v: vec![0; oh * ow * f],
                acc: vec![0; oh * ow * f],
                touched: Vec::new(),
                stamp: vec![0; oh * ow],
                carry: Vec::new(),
                inbox: Vec::new(),
                dests: l
                    .destinations
                    .iter()
                    .map(|d| (index_of(d.layer), d.pooling))
                    .collect(),
                is_output: id == out.layer,
                step: StepCounts::default(),
            });
        }
        let input = a.input.as_ref().ok_or(NOT_OURS)?;
        let dvs = a.dvs_layer.as_ref().ok_or(NOT_OURS)?;
        let input_map = input.map.unwrap_or_default().to_chw();
        let dvs_route = if dvs.pass_sensor_events {
            Some(crate::dvs::DvsRoute::from_config(dvs, &speck()).map_err(nmc_backend::corrupt)?)
        } else {
            None
        };
        let dense_to_sensor = match dvs_route {
            Some(r) => {
                let view = crate::dvs::ModelView::new(r);
                let [c, h, w] = input_map;
                let [sh, sw] = r.sensor;
                let mut t = Vec::with_capacity((c * h * w) as usize);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let [p, sy, sx] = view.to_sensor(ch, y, x);
                            t.push((p * sh + sy) * sw + sx);
                        }
                    }
                }
                t
            }
            None => Vec::new(),
        };
        let out_core = &a.cnn_layers[out.layer as usize];
        let out_map = crate::validate::out_map(out_core, Some(out.pooling));
        Ok(Emulator {
            keep_state: false,
            input_dests: dvs.destinations.iter().map(|d| index_of(d.layer)).collect(),
            input_numel: input_map.iter().map(|v| *v as usize).product(),
            input_map,
            dvs: dvs_route,
            dense_to_sensor,
            input_q: nmc_ir::QuantParams {
                scale: input.scale,
                min: 0,
                max: input.levels,
            },
            out_pool: out.pooling,
            out_map,
            cost: speck().cost,
            depth: depth_of[out.layer as usize],
            default_timesteps: a.timesteps().unwrap_or(0),
            cores,
        })
    }

    /// The same emulator with other latency and energy constants (what `--chip-params` sets);
    /// outputs do not depend on them.
    pub fn with_cost(mut self, cost: CostModel) -> Self {
        self.cost = cost;
        self
    }

    /// Runs one dense sample, rate-encoded over `timesteps` steps exactly as the IR's `Quantize`
    /// node does in rate mode.
    pub fn run_dense(
        &mut self,
        x: &[f32],
        timesteps: u32,
        record_steps: bool,
    ) -> Result<RunOut, EmuError> {
        if x.len() != self.input_numel {
            return Err(EmuError::InputSize {
                got: x.len(),
                expected: self.input_numel,
            });
        }
        let levels: Vec<i64> = x
            .iter()
            .map(|v| nmc_ir::quantize(*v, &self.input_q))
            .collect();
        let mut enc = nmc_ir::RateEncoder::new(&levels, i64::from(self.input_q.max));
        let to_sensor = std::mem::take(&mut self.dense_to_sensor);
        let r = self.run(timesteps, record_steps, |_, out| {
            enc.step(|i| {
                out.push((to_sensor.get(i).copied().unwrap_or(i as u32), 1));
            })
        });
        self.dense_to_sensor = to_sensor;
        r
    }

    /// Runs one sample of spike frames: `frames[t]` holds, per element of the model input, the
    /// spikes it receives at step `t` (a spiking network's input, e.g. a NIR graph's); they take
    /// the same path into the chip as rate-encoded events.
    pub fn run_frames(
        &mut self,
        frames: &[Vec<u32>],
        record_steps: bool,
    ) -> Result<RunOut, EmuError> {
        if let Some(f) = frames.iter().find(|f| f.len() != self.input_numel) {
            return Err(EmuError::InputSize {
                got: f.len(),
                expected: self.input_numel,
            });
        }
        let to_sensor = std::mem::take(&mut self.dense_to_sensor);
        let r = self.run(frames.len() as u32, record_steps, |t, out| {
            for (i, &n) in frames[t].iter().enumerate() {
                if n > 0 {
                    out.push((to_sensor.get(i).copied().unwrap_or(i as u32), n));
                }
            }
        });
        self.dense_to_sensor = to_sensor;
        r
    }

    /// Values of the event space [`Emulator::run_events`] takes: the sensor's `[2, h, w]` when
    /// the input passes the DVS layer, else the input map.
    pub fn event_numel(&self) -> usize {
        self.dvs.map_or(self.input_numel, |r| r.sensor_numel())
    }

    /// Runs one sample of binned input events (one entry per timestep), indexed in the event
    /// space of [`Emulator::event_numel`].
    pub fn run_events(&mut self, steps: &Binned, record_steps: bool) -> Result<RunOut, EmuError> {
        let numel = self.event_numel();
        for s in steps {
            if let Some(&(index, _)) = s.iter().find(|(i, _)| *i as usize >= numel) {
                return Err(EmuError::EventOutside { index, numel });
            }
        }
        self.run(steps.len() as u32, record_steps, |t, out| {
            out.extend_from_slice(&steps[t]);
        })
    }

    /// Whether the next run continues from the state the last one left (a stream's next frame)
    /// instead of the reset state.
    pub fn keep_state(&mut self, keep: bool) {
        self.keep_state = keep;
    }

    fn reset(&mut self) {
        for c in &mut self.cores {
            c.v.iter_mut().for_each(|v| *v = 0);
            c.acc.iter_mut().for_each(|v| *v = 0);
            c.stamp.iter_mut().for_each(|v| *v = 0);
            c.touched.clear();
            c.carry.clear();
            c.inbox.clear();
        }
    }

    fn run(
        &mut self,
        timesteps: u32,
        record_steps: bool,
        mut input: impl FnMut(usize, &mut Vec<(u32, u32)>),
    ) -> Result<RunOut, EmuError> {
        if !self.keep_state {
            self.reset();
        }
        let ids: Vec<u32> = self.cores.iter().map(|c| c.id).collect();
        let mut perf = PerfBuilder::new(&self.cost, &ids, self.depth);
        let [_, oh_o, ow_o] = self.out_map.map(|v| v as usize);
        let out_numel = self.out_map.iter().map(|v| *v as usize).product();
        let mut counts = vec![0i64; out_numel];
        let mut per_step = record_steps.then(Vec::new);
        let n_cores = speck().cores.len();
        let mut core_spikes = record_steps.then(Vec::new);
        let [_, ih, iw] = self.input_map.map(|v| v as usize);
        let mut in_events: Vec<(u32, u32)> = Vec::new();
        let mut spikes: Vec<[u32; 4]> = Vec::new();
        let mut step_counts = vec![StepCounts::default(); self.cores.len()];
        for t in 0..timesteps as usize {
            let mut out_step = record_steps.then(|| vec![0i64; out_numel]);
            in_events.clear();
            input(t, &mut in_events);
            let mut n_in = 0u64;
            for &(i, n) in &in_events {
                let i = i as usize;
                let ev = match &self.dvs {
                    Some(r) => {
                        let [sh, sw] = r.sensor.map(|v| v as usize);
                        let at = r.route(
                            (i / (sh * sw)) as u32,
                            ((i / sw) % sh) as u32,
                            (i % sw) as u32,
                        );
                        let Some([c, y, x]) = at else { continue };
                        [c, y, x, n]
                    }
                    None => [
                        (i / (ih * iw)) as u32,
                        ((i / iw) % ih) as u32,
                        (i % iw) as u32,
                        n,
                    ],
                };
                n_in += u64::from(n);
                for &d in &self.input_dests {
                    self.cores[d].inbox.push(ev);
                }
            }
            let stamp = t as u32 + 1;
            for ci in 0..self.cores.len() {
                spikes.clear();
                {
                    let core = &mut self.cores[ci];
                    core.step = StepCounts::default();
                    core.deliver(stamp);
                    core.update(stamp, &mut spikes);
                }
                let (is_output, dests) = {
                    let c = &self.cores[ci];
                    (c.is_output, c.dests.clone())
                };
                let [_, oh, ow] = {
                    let c = &self.cores[ci];
                    [c.f, c.oh, c.ow]
                };
                for &(d, p) in &dests {
                    let p = p as usize;
                    let (ph, pw) = (oh / p, ow / p);
                    let mut sent = 0u64;
                    for &[j, y, x, k] in &spikes {
                        let (y, x) = (y as usize / p, x as usize / p);
                        if y < ph && x < pw {
                            self.cores[d].inbox.push([j, y as u32, x as u32, k]);
                            sent += u64::from(k);
                        }
                    }
                    self.cores[ci].step.counts.msgs_out += sent;
                }
                if is_output {
                    let p = self.out_pool as usize;
                    for &[j, y, x, k] in &spikes {
                        let (y, x) = (y as usize / p, x as usize / p);
                        if y < oh_o && x < ow_o {
                            let idx = (j as usize * oh_o + y) * ow_o + x;
                            counts[idx] += i64::from(k);
                            if let Some(o) = out_step.as_mut() {
                                o[idx] += i64::from(k);
                            }
                        }
                    }
                }
                step_counts[ci] = self.cores[ci].step;
            }
            perf.step(n_in, &step_counts);
            if let (Some(ps), Some(o)) = (per_step.as_mut(), out_step) {
                ps.push(o);
            }
            if let Some(cs) = core_spikes.as_mut() {
                let mut row = vec![0u64; n_cores];
                for (c, s) in self.cores.iter().zip(&step_counts) {
                    if let Some(r) = row.get_mut(c.id as usize) {
                        *r = s.spikes_out;
                    }
                }
                cs.push(row);
            }
        }
        let mut report = perf.finish();
        report.cores.sort_by_key(|c| c.id);
        Ok(RunOut {
            counts,
            per_step,
            core_spikes,
            perf: report,
        })
    }
}

impl CoreRt {
    /// Applies this step's input events to the kernel: accumulates input per neuron.
    fn deliver(&mut self, stamp: u32) {
        let (k, f) = (self.k, self.f);
        let [sy, sx] = self.stride;
        let [py, px] = self.pad;
        let inbox = std::mem::take(&mut self.inbox);
        for &[c, iy, ix, n] in &inbox {
            let (c, iy, ix) = (c as usize, iy as usize, ix as usize);
            if c >= self.in_c || iy >= self.in_h || ix >= self.in_w {
                continue;
            }
            self.step.counts.msgs_in += u64::from(n);
            let n = i64::from(n);
            for ky in 0..k {
                let Some(num_y) = (iy + py).checked_sub(ky) else {
                    break;
                };
                if num_y % sy != 0 || num_y / sy >= self.oh {
                    continue;
                }
                let oy = num_y / sy;
                for kx in 0..k {
                    let Some(num_x) = (ix + px).checked_sub(kx) else {
                        break;
                    };
                    if num_x % sx != 0 || num_x / sx >= self.ow {
                        continue;
                    }
                    let pos = oy * self.ow + num_x / sx;
                    if self.stamp[pos] != stamp {
                        self.stamp[pos] = stamp;
                        self.touched.push(pos as u32);
                    }
                    let w = &self.w[((c * k + ky) * k + kx) * f..][..f];
                    let a = &mut self.acc[pos * f..][..f];
                    for (a, w) in a.iter_mut().zip(w) {
                        *a += w * n;
                    }
                    self.step.counts.syn_ops += f as u64 * n as u64;
                }
            }
        }
        self.inbox = inbox;
        self.inbox.clear();
    }

    /// Updates touched, leaking and carried neurons; appends spikes `[f, y, x, k]`.
    fn update(&mut self, stamp: u32, spikes: &mut Vec<[u32; 4]>) {
        let f = self.f;
        let th = i64::from(self.spk.threshold);
        // Neurons left above threshold by a capped step are updated again, touched or not.
        for pos in std::mem::take(&mut self.carry) {
            if self.stamp[pos as usize] != stamp {
                self.stamp[pos as usize] = stamp;
                self.touched.push(pos);
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for &pos in &touched {
            let p = pos as usize;
            let (y, x) = ((p / self.ow) as u32, (p % self.ow) as u32);
            let mut carry = false;
            for j in 0..f {
                let n = p * f + j;
                let input = std::mem::take(&mut self.acc[n]) + self.bias[j];
                let k = nmc_ir::if_step(&mut self.v[n], input, &self.quant, &self.spk);
                if k > 0 {
                    spikes.push([j as u32, y, x, k as u32]);
                    self.step.spikes_out += k as u64;
                }
                carry |= self.v[n] >= th;
            }
            if carry {
                self.carry.push(pos);
            }
            self.step.counts.neuron_updates += f as u64;
        }
        if !self.leak.is_empty() {
            for p in 0..self.oh * self.ow {
                if self.stamp[p] == stamp {
                    continue;
                }
                let (y, x) = ((p / self.ow) as u32, (p % self.ow) as u32);
                let mut carry = false;
                for &j in &self.leak {
                    let n = p * f + j;
                    let k = nmc_ir::if_step(&mut self.v[n], self.bias[j], &self.quant, &self.spk);
                    if k > 0 {
                        spikes.push([j as u32, y, x, k as u32]);
                        self.step.spikes_out += k as u64;
                    }
                    carry |= self.v[n] >= th;
                }
                if carry {
                    self.carry.push(p as u32);
                }
                self.step.counts.neuron_updates += self.leak.len() as u64;
            }
        }
        self.touched = touched;
        self.touched.clear();
    }
}
