//! Event-driven emulation of an artifact, bit-exact with `nmc_ir::Interpreter`.
//!
//! Semantics: sigma-delta graded neurons with threshold 0 and one timestep of synaptic delay per
//! hop (docs/chips.md §1.3). The rule is that of Lava master's `PySigmaDeltaModelFixedCorrected`
//! (docs/chips.md §1.4): the activation is quantised first and each event is the change relative
//! to what the neuron has already sent, so no low bits are lost; measured side by side, a graded
//! network matches that model exactly at every step (docs/chips.md §7). It is *not* the released
//! lava-nc 0.10 `PySigmaDeltaModelFixed`, which shifts each delta right by `state_exp` and so
//! loses low bits (a ReLU neuron can then read −1). One deliberate difference from both: nmc
//! clamps the activation to the layer's `[act_min, act_max]` (the integer range its quantiser
//! chose), where Lava lets it grow; on calibrated inputs the clamp does not bind. Each step has
//! two phases:
//! 1. **neurons**: every population updates the neurons whose `sigma` changed (all of them on the
//!    first step after a reset, so bias-only outputs appear): `y = activate(sigma + bias)`, then
//!    pooling over the affected windows, then `delta = y − prev`; a non-zero delta is an event;
//! 2. **synapses**: every event of the step (and on step 0 the graph inputs, sent as deltas from
//!    0) is delivered to its consumers' synapse groups and accumulated into their `sigma`, to be
//!    seen by their neuron phase of the next step.
//!
//! `sigma` accumulates `(w·delta) << weight_exp`. Because the exponent is non-negative this is
//! linear in the deltas, and the deltas of a source telescope to its current value, so once the
//! deltas stop `sigma = Σ_g (W_g·x_g) << e_g`, exactly the reference interpreter's sum: a
//! population at depth `d` (synapse hops from the inputs) is exact from the end of step `d` on.
//!
//! Work is proportional to events × fan-out: dense groups are transposed at construction into
//! per-input fan-out lists; conv groups visit the kernel footprint of the event.

mod kernels;
mod net;
pub mod noc;
mod perf;

pub use kernels::Kernels;
pub use perf::{Bound, CoreStep, CoreTotals, Counters, PerfReport, StepReport};

use crate::artifact::{Artifact, ArtifactError, SourceKind};
use crate::memory::{FitError, LayerFootprint, SliceUsage};
use crate::spec::{ChipSpec, CostModel};
use net::{Consumer, Event, PopRt};
use nmc_backend::{check_int_inputs, IntInput};
use nmc_ir::CoreLoc;
use noc::Noc;
use perf::PerfBuilder;

/// Why an artifact cannot be emulated, or a run cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmuError {
    /// The inputs do not suit the artifact.
    #[error(transparent)]
    Input(#[from] nmc_backend::InputError),
    /// The artifact is invalid.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The artifact needs more chips than the emulated system has.
    #[error("the artifact uses {needed} chip(s), the system has {available}")]
    Chips {
        /// Chips in the artifact's header.
        needed: u32,
        /// Chips in the spec.
        available: u32,
    },
    /// A core is not at a location of the emulated system.
    #[error("core {core}: {message}")]
    Placement {
        /// The core.
        core: u32,
        /// What is wrong.
        message: String,
    },
    /// A core's slices exceed the chip's per-core limits.
    #[error("core {core} does not fit: {fit}")]
    DoesNotFit {
        /// The core.
        core: u32,
        /// Resource, needed and available.
        fit: FitError,
    },
}

/// Neuron updates in a step above which populations update in parallel.
const PARALLEL_MIN_NEURONS: usize = 1 << 14;

/// A graph input at run time.
struct InputRt {
    len: usize,
    min: i32,
    max: i32,
    /// Last value sent per element.
    prev: Vec<i64>,
    /// Elements sent this step, per destination set ([`crate::tiles::Fanout`]).
    sent: Vec<u64>,
}

/// An emulated Loihi 2 system loaded with one artifact.
pub struct Emulator {
    cost: CostModel,
    message_bits: u64,
    chips: u32,
    cores: Vec<CoreLoc>,
    inputs: Vec<InputRt>,
    pops: Vec<PopRt>,
    /// Per source (inputs, then populations): the synapse groups reading it.
    consumers: Vec<Vec<Consumer>>,
    /// Per source: the distinct core sets its events are delivered to, and each element's set
    /// (a tile of a consumer receives only its input window).
    fanout: Vec<crate::tiles::Fanout>,
    outputs: Vec<u32>,
    noc: Noc,
    counters: Vec<Counters>,
    outbox: Vec<Event>,
    taps: Vec<(usize, usize)>,
    /// No step has run since the last reset.
    fresh: bool,
    /// The settled response to an all-zero input, which every sample starts from (like the
    /// initial state a chip is loaded with), so that a frame's events are exactly its changes.
    baseline: Vec<[Vec<i64>; 5]>,
    /// Neurons each core updates per timestep: Loihi's neuro-cores update every neuron every
    /// step whatever the input (the floorline's compute floor, docs/papers.md §1.3), so the counter
    /// charges them all while the emulator itself only recomputes neurons whose input changed.
    neurons_per_core: Vec<u64>,
    /// Whether step reports list every core (see [`Emulator::record_core_steps`]).
    record_cores: bool,
    /// How dense groups receive events (see [`Emulator::set_kernels`]).
    kernels: Kernels,
    /// Whether each step appends the first output's values to `recorded`.
    recording: bool,
    recorded: Vec<i64>,
    /// Snn mode: populations whose spikes and voltages each step appends (`run --probe`).
    probes: Vec<usize>,
    probed: Vec<(Vec<i64>, Vec<i64>)>,
}

/// Timesteps after which every output is exact: the longest path in synapse hops from an input
/// to an output, plus one (step 0 only injects the inputs). Never panics, even on an invalid
/// artifact.
pub fn min_timesteps(a: &Artifact) -> u32 {
    let mut depth: Vec<u32> = Vec::with_capacity(a.populations.len());
    for (i, p) in a.populations.iter().enumerate() {
        let d = p
            .groups
            .iter()
            .flat_map(|g| &g.sources)
            .map(|s| {
                let from_pop = s.kind == SourceKind::Population as i32 && (s.index as usize) < i;
                if from_pop {
                    depth[s.index as usize]
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0);
        depth.push(d + 1);
    }
    a.outputs
        .iter()
        .map(|o| depth.get(o.population as usize).copied().unwrap_or(0))
        .max()
        .unwrap_or(0)
        + 1
}

impl Emulator {
    /// Loads `artifact` on the system `spec` describes: validates it, checks placement and
    /// per-core limits, and prepares fan-out tables.
    pub fn new(artifact: &Artifact, spec: &ChipSpec) -> Result<Emulator, EmuError> {
        let header = crate::artifact::ENVELOPE.checked(artifact.header.as_ref())?;
        crate::validate::validate(artifact)?;
        if header.chips > spec.chips {
            return Err(EmuError::Chips {
                needed: header.chips,
                available: spec.chips,
            });
        }
        let mut cores = Vec::with_capacity(artifact.cores.len());
        for c in &artifact.cores {
            let loc = CoreLoc {
                chip: c.chip,
                x: c.x,
                y: c.y,
            };
            if !spec.has_loc(loc) {
                return Err(EmuError::Placement {
                    core: c.id,
                    message: format!(
                        "location (chip {}, x {}, y {}) is outside the {}×{} mesh",
                        c.chip, c.x, c.y, spec.mesh_width, spec.mesh_height
                    ),
                });
            }
            cores.push(loc);
        }
        // Fit before allocating: this bounds every table built below by the chip's memories.
        let mut usage = vec![SliceUsage::default(); cores.len()];
        for p in &artifact.populations {
            let fp = LayerFootprint::of_population(p);
            for s in &p.slices {
                usage[s.core as usize] += fp.usage_slice(&s.to_ir());
            }
        }
        for (core, u) in usage.iter().enumerate() {
            spec.check_slice(u).map_err(|fit| EmuError::DoesNotFit {
                core: core as u32,
                fit,
            })?;
        }

        let n_in = artifact.inputs.len();
        let fanout = crate::tiles::fanout(artifact).map_err(nmc_backend::corrupt)?;
        // Messages are counted per (slice, destination set); bound that table.
        for (p, f) in artifact.populations.iter().zip(&fanout[n_in..]) {
            let cells = p.slices.len().saturating_mul(f.sets.len());
            if cells > crate::tiles::MAX_SET_ENTRIES {
                return Err(EmuError::Artifact(nmc_backend::corrupt(format!(
                    "population \"{}\": {} slices × {} destination sets exceed {}",
                    p.name,
                    p.slices.len(),
                    f.sets.len(),
                    crate::tiles::MAX_SET_ENTRIES
                ))));
            }
        }
        let inputs: Vec<InputRt> = artifact
            .inputs
            .iter()
            .map(|i| {
                let len = i.shape.iter().map(|&d| d as usize).product();
                InputRt {
                    len,
                    min: i.min,
                    max: i.max,
                    prev: vec![0; len],
                    sent: Vec::new(),
                }
            })
            .collect();
        let mut pops: Vec<PopRt> = artifact.populations.iter().map(PopRt::new).collect();
        for (p, f) in pops.iter_mut().zip(&fanout[n_in..]) {
            p.set_fanout(f);
        }
        let mut consumers = vec![Vec::new(); n_in + pops.len()];
        for (q, p) in artifact.populations.iter().enumerate() {
            for (g, grp) in p.groups.iter().enumerate() {
                let mut offset = 0u32;
                for s in &grp.sources {
                    let src = if s.kind == SourceKind::Input as i32 {
                        s.index as usize
                    } else {
                        n_in + s.index as usize
                    };
                    consumers[src].push(Consumer {
                        pop: q as u32,
                        group: g as u32,
                        offset,
                    });
                    offset += s.length;
                }
            }
        }
        let mut emu = Emulator {
            cost: spec.cost.clone(),
            message_bits: u64::from(spec.message_bits),
            chips: header.chips.max(1),
            noc: Noc::new(spec.mesh_width, spec.mesh_height, header.chips.max(1)),
            counters: vec![Counters::default(); cores.len()],
            cores,
            inputs,
            pops,
            consumers,
            fanout,
            outputs: artifact.outputs.iter().map(|o| o.population).collect(),
            outbox: Vec::new(),
            taps: Vec::new(),
            fresh: true,
            record_cores: true,
            baseline: Vec::new(),
            neurons_per_core: Vec::new(),
            kernels: Kernels::Auto,
            recording: false,
            recorded: Vec::new(),
            probes: Vec::new(),
            probed: Vec::new(),
        };
        for (inp, f) in emu.inputs.iter_mut().zip(&emu.fanout) {
            inp.sent = vec![0; f.sets.len().max(1)];
        }
        let mut per_core = vec![0u64; emu.cores.len()];
        for p in &emu.pops {
            p.count_neurons(&mut per_core);
        }
        emu.neurons_per_core = per_core;
        emu.settle(min_timesteps(artifact));
        Ok(emu)
    }

    /// Runs the network on an all-zero input until it is quiet and keeps that state as the
    /// baseline. Work done here is not reported: it is configuration, not inference.
    fn settle(&mut self, steps: u32) {
        if self.is_snn() {
            // A spiking network starts from rest (Lava's initial state): nothing to settle.
            self.baseline = self.pops.iter().map(|p| p.state()).collect();
            self.fresh = false;
            return;
        }
        self.fresh = true;
        let mut perf = PerfBuilder::new(&self.cores, false);
        for _ in 0..steps.max(1) {
            self.neuron_phase();
            self.synapse_phase();
            self.close_step(&mut perf);
        }
        self.baseline = self.pops.iter().map(|p| p.state()).collect();
        self.noc.take_links();
        self.fresh = false;
    }

    /// Whether each [`StepReport`] lists every core (default: yes). Long runs in a search loop
    /// can turn it off: the report then keeps per-step totals and per-core totals only, instead
    /// of timesteps × cores entries.
    pub fn record_core_steps(&mut self, on: bool) {
        self.record_cores = on;
    }

    /// Chooses how dense synapse groups receive events. Outputs and counters are the same for
    /// every choice; [`Kernels::Events`] is the plain event-driven reference.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// Records the first output's values after every timestep from now on (see
    /// [`Emulator::take_recorded`]): what `run --record` writes.
    pub fn record_outputs(&mut self, on: bool) {
        self.recording = on;
    }

    /// The values recorded since the last call, step after step (`steps × output length`).
    pub fn take_recorded(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.recorded)
    }

    /// Returns to the settled baseline, as before the first sample.
    pub fn reset(&mut self) {
        for i in &mut self.inputs {
            i.prev.fill(0);
            i.sent.fill(0);
        }
        for (p, b) in self.pops.iter_mut().zip(&self.baseline) {
            p.restore(b);
        }
        self.outbox.clear();
        self.noc.take_links();
        self.counters.fill(Counters::default());
        self.fresh = self.baseline.is_empty();
    }

    /// Runs one sample from a clean state for `timesteps` steps; returns the output tensors
    /// (flat, one per artifact output) and the performance report. Outputs are exact once
    /// `timesteps >= min_timesteps(artifact)`.
    pub fn run(
        &mut self,
        inputs: &[Vec<i64>],
        timesteps: u32,
    ) -> Result<(Vec<Vec<i64>>, PerfReport), EmuError> {
        self.check_inputs(inputs)?;
        self.reset();
        self.run_continue(inputs, timesteps)
    }

    /// Runs the next frame without clearing state: the inputs send only their change since the
    /// previous frame, and neurons whose input does not change stay silent (the temporal
    /// sparsity of sigma-delta networks). Outputs are exact after `min_timesteps` steps.
    pub fn run_continue(
        &mut self,
        inputs: &[Vec<i64>],
        timesteps: u32,
    ) -> Result<(Vec<Vec<i64>>, PerfReport), EmuError> {
        self.check_inputs(inputs)?;
        let mut perf = PerfBuilder::new(&self.cores, self.record_cores);
        for t in 0..timesteps {
            if t == 0 {
                self.inject(inputs, false);
            }
            self.neuron_phase();
            self.synapse_phase();
            self.close_step(&mut perf);
            if self.recording {
                if let Some(&p) = self.outputs.first() {
                    self.recorded.extend_from_slice(&self.pops[p as usize].prev);
                }
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|&p| self.pops[p as usize].prev.clone())
            .collect();
        let mut report = perf.finish(&self.cost);
        report.links = self.noc.take_links();
        Ok((outputs, report))
    }

    /// Whether the artifact runs in snn mode (its populations are CUBA-LIF neurons).
    pub fn is_snn(&self) -> bool {
        self.pops.iter().any(PopRt::is_cuba)
    }

    /// Snn mode: records the spikes and voltages of populations `pops` (indices into the
    /// artifact's populations) after every step of [`Emulator::run_spikes`] from now on.
    pub fn probe(&mut self, pops: &[usize]) {
        self.probes = pops
            .iter()
            .copied()
            .filter(|&p| p < self.pops.len())
            .collect();
        self.probed = vec![(Vec::new(), Vec::new()); self.probes.len()];
    }

    /// Per probed population, its spikes and voltages step after step since the last call
    /// (`steps × neurons` each).
    pub fn take_probed(&mut self) -> Vec<(Vec<i64>, Vec<i64>)> {
        let empty = vec![(Vec::new(), Vec::new()); self.probes.len()];
        std::mem::replace(&mut self.probed, empty)
    }

    /// Snn mode: runs one sample from rest for `timesteps` steps, sending `frames[t]` (per graph
    /// input, flat spike values) at step `t` and nothing after the last frame. Returns each
    /// output's spike counts over the run and the performance report; with
    /// [`Emulator::record_outputs`], every step's spikes of the first output are kept.
    pub fn run_spikes(
        &mut self,
        frames: &[Vec<Vec<i64>>],
        timesteps: u32,
    ) -> Result<(Vec<Vec<i64>>, PerfReport), EmuError> {
        for f in frames {
            self.check_inputs(f)?;
        }
        self.reset();
        let mut counts: Vec<Vec<i64>> = self
            .outputs
            .iter()
            .map(|&p| vec![0; self.pops[p as usize].prev.len()])
            .collect();
        let mut perf = PerfBuilder::new(&self.cores, self.record_cores);
        for t in 0..timesteps as usize {
            if let Some(f) = frames.get(t) {
                self.inject(f, true);
            }
            self.neuron_phase();
            self.synapse_phase();
            self.close_step(&mut perf);
            for (c, &p) in counts.iter_mut().zip(&self.outputs) {
                c.iter_mut()
                    .zip(&self.pops[p as usize].prev)
                    .for_each(|(c, s)| *c += s);
            }
            if self.recording {
                if let Some(&p) = self.outputs.first() {
                    self.recorded.extend_from_slice(&self.pops[p as usize].prev);
                }
            }
            for (&p, (s, v)) in self.probes.iter().zip(&mut self.probed) {
                let (spikes, volts) = self.pops[p].spikes_and_voltages();
                s.extend_from_slice(spikes);
                v.extend_from_slice(volts);
            }
        }
        let mut report = perf.finish(&self.cost);
        report.links = self.noc.take_links();
        Ok((counts, report))
    }

    fn check_inputs(&self, inputs: &[Vec<i64>]) -> Result<(), EmuError> {
        let expected: Vec<IntInput> = self
            .inputs
            .iter()
            .map(|i| IntInput {
                len: i.len,
                min: i64::from(i.min),
                max: i64::from(i.max),
            })
            .collect();
        Ok(check_int_inputs(inputs, &expected)?)
    }

    /// Queues the inputs as events: each element's change since the last frame (graded), or,
    /// with `whole` (snn mode), each non-zero value as it is (a spike is sent whole).
    fn inject(&mut self, inputs: &[Vec<i64>], whole: bool) {
        for (i, ((inp, x), fan)) in self
            .inputs
            .iter_mut()
            .zip(inputs)
            .zip(&self.fanout)
            .enumerate()
        {
            for (k, (&v, prev)) in x.iter().zip(inp.prev.iter_mut()).enumerate() {
                let delta = if whole { v } else { v - *prev };
                if delta != 0 {
                    self.outbox.push(Event {
                        src: i as u32,
                        idx: k as u32,
                        delta,
                    });
                    if !whole {
                        *prev = v;
                    }
                    inp.sent[fan.set_of(k)] += 1;
                }
            }
        }
    }

    /// Populations update independently (each reads its own sums and writes its own state and
    /// events), so with many neurons to update they run in parallel, each into its own buffer;
    /// the buffers join the outbox in population order, as the sequential loop fills it.
    fn neuron_phase(&mut self) {
        use rayon::prelude::*;
        let n_in = self.inputs.len() as u32;
        let full = self.fresh;
        let work: usize = self.pops.iter().map(|p| p.pending(full)).sum();
        if work >= PARALLEL_MIN_NEURONS && self.pops.len() > 1 && rayon::current_num_threads() > 1 {
            self.pops.par_iter_mut().enumerate().for_each(|(p, pop)| {
                let mut out = std::mem::take(&mut pop.outbuf);
                pop.update(n_in + p as u32, full, &mut out);
                pop.outbuf = out;
            });
            for pop in &mut self.pops {
                self.outbox.append(&mut pop.outbuf);
            }
        } else {
            for (p, pop) in self.pops.iter_mut().enumerate() {
                pop.update(n_in + p as u32, full, &mut self.outbox);
            }
        }
        self.fresh = false;
    }

    fn synapse_phase(&mut self) {
        let Emulator {
            pops,
            consumers,
            counters,
            outbox,
            taps,
            kernels,
            ..
        } = self;
        // The outbox holds each source's events as one run (inputs, then populations in order):
        // a run is delivered to each consumer as a batch where the dense kernel pays, else event
        // by event.
        let mut start = 0;
        while start < outbox.len() {
            let src = outbox[start].src;
            let len = outbox[start..].iter().take_while(|e| e.src == src).count();
            let run = &outbox[start..start + len];
            for c in &consumers[src as usize] {
                let pop = &mut pops[c.pop as usize];
                let batched = *kernels != Kernels::Events
                    && pop.accept_batch(
                        c.group as usize,
                        c.offset as usize,
                        run,
                        *kernels,
                        counters,
                    );
                if !batched {
                    for ev in run {
                        pop.accept(
                            c.group as usize,
                            (c.offset + ev.idx) as usize,
                            ev.delta,
                            counters,
                            taps,
                        );
                    }
                }
            }
            start += len;
        }
        outbox.clear();
    }

    /// Counts and routes the step's messages, then costs the step.
    fn close_step(&mut self, perf: &mut PerfBuilder) {
        let n_in = self.inputs.len();
        for (inp, fan) in self.inputs.iter_mut().zip(&self.fanout) {
            for (sent, dests) in inp.sent.iter_mut().zip(&fan.sets) {
                if *sent > 0 {
                    for &d in dests {
                        self.counters[d as usize].msgs_in += *sent;
                    }
                    *sent = 0;
                }
            }
        }
        for (p, pop) in self.pops.iter_mut().enumerate() {
            let sets = &self.fanout[n_in + p].sets;
            let per = pop.sets;
            for (k, sent) in pop.sent.iter_mut().enumerate() {
                if *sent == 0 {
                    continue;
                }
                let (s, set) = (k / per, k % per);
                let dests = &sets[set];
                let src = pop.slices[s].core as usize;
                self.counters[src].msgs_out += *sent * dests.len() as u64;
                for &d in dests {
                    self.counters[d as usize].msgs_in += *sent;
                    self.noc.route(
                        self.cores[src],
                        self.cores[d as usize],
                        *sent,
                        self.message_bits,
                    );
                }
                *sent = 0;
            }
        }
        for (c, n) in self.counters.iter_mut().zip(&self.neurons_per_core) {
            c.neuron_updates += n;
        }
        let links = self
            .noc
            .end_step(self.cost.a_link.value, self.cost.a_link_interchip.value);
        perf.step(&self.cost, &mut self.counters, links, self.chips);
    }
}
