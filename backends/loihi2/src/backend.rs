//! Loihi 2 behind the compiler's contract ([`nmc_backend::Backend`]): its description, graded
//! quantisation, the generic greedy partitioner over interchangeable cores, lowering, and a
//! decoded artifact ([`LoadedLoihi2`]) that runs on the emulator and models its floorline loads from an
//! activity profile.

use crate::{Artifact, ChipSpec, LayerFootprint};
use nmc_backend::error::Source;
use nmc_backend::{
    uniform_space, Activity, ArtifactError, Backend, BackendError, ChipParams, Constants,
    CoreModel, CorePerf, CostParam, CostTable, LayerSizer, Loads, NativeOps, PerfSummary,
    Quantization, RunResult, SearchSpace, TargetOptions,
};
use nmc_ir::{CoreLoc, Graph, Mapping, NodeId};

/// The Loihi 2 target.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loihi2;

const NAME: &str = crate::artifact::ENVELOPE.target;

/// The spec for `chips` chips with cost constants overridden.
fn spec_with(chips: u32, params: &ChipParams) -> Result<ChipSpec, BackendError> {
    let mut spec = crate::loihi2().with_chips(chips.max(1));
    spec.cost.apply(NAME, params)?;
    Ok(spec)
}

impl Backend for Loihi2 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> String {
        let s = crate::loihi2();
        format!(
            "loihi2  Intel Loihi 2 (graded sigma-delta neurons)\n  cores per chip: {} on a {}x{} mesh\n  \
             neurons per core: {}\n  synaptic memory per core: {} bytes\n  weights: {}-bit mantissa{}, \
             shared exponent {}..={}\n  neuron state: {} bits; graded spikes up to {} bits (default {})\n",
            s.cores_per_chip,
            s.mesh_width,
            s.mesh_height,
            s.max_neurons_per_core,
            s.synapse_bytes_per_core,
            s.weight_bits,
            if s.even_weights { " (effective weights even)" } else { "" },
            s.weight_exp_range.0,
            s.weight_exp_range.1,
            s.state_bits,
            s.max_act_bits,
            s.act_bits
        )
    }

    fn describe_json(&self) -> serde_json::Value {
        let s = crate::loihi2();
        serde_json::json!({
            "name": NAME,
            "cores_per_chip": s.cores_per_chip,
            "mesh": [s.mesh_width, s.mesh_height],
            "max_neurons_per_core": s.max_neurons_per_core,
            "synapse_bytes_per_core": s.synapse_bytes_per_core,
            "weight_bits": s.weight_bits,
            "state_bits": s.state_bits,
            "max_act_bits": s.max_act_bits,
        })
    }

    fn quantization(&self) -> Quantization {
        Quantization::Graded(crate::loihi2().quant_spec())
    }

    fn runs_snn(&self) -> bool {
        true
    }

    /// The Loihi 2 quantiser and emulator take average and sum pooling, and a concatenation is
    /// a view of its producers' outputs.
    fn native_ops(&self) -> NativeOps {
        NativeOps::ANY
    }

    /// Any `--chips` (multi-chip systems); no `--timesteps` at compile: a graded artifact runs
    /// the smallest number of timesteps that gives exact outputs, and `nmc run --timesteps`
    /// chooses another.
    fn check_options(&self, opts: &TargetOptions) -> Result<(), BackendError> {
        opts.dvs.none_for(NAME)?;
        match opts.timesteps {
            Some(t) => Err(BackendError::Usage(format!(
                "--timesteps {t} does not apply to compiling for {NAME}: its artifacts run the smallest number of timesteps that gives exact outputs (give --timesteps to `nmc run` instead)"
            ))),
            None => Ok(()),
        }
    }

    fn cost_params(&self, params: &ChipParams) -> Result<Vec<CostParam>, BackendError> {
        Ok(spec_with(1, params)?.cost.params())
    }

    fn default_mapping(
        &self,
        graph: &Graph,
        opts: &TargetOptions,
    ) -> Result<Mapping, BackendError> {
        nmc_backend::greedy(graph, &Cores(crate::loihi2().with_chips(opts.chips)))
            .map_err(|e| BackendError::fit(NAME, e))
    }

    fn search_space<'g>(
        &self,
        graph: &'g Graph,
        opts: &TargetOptions,
    ) -> Result<SearchSpace<'g>, BackendError> {
        uniform_space(
            graph,
            Box::new(Cores(crate::loihi2().with_chips(opts.chips))),
        )
        .map_err(|e| BackendError::fit(NAME, e))
    }

    fn lower(
        &self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        opts: &TargetOptions,
    ) -> Result<Vec<u8>, BackendError> {
        let spec = crate::loihi2().with_chips(opts.chips);
        let art = crate::lower(graph, mapping, source_hash, &spec)
            .map_err(|e| BackendError::lower(NAME, e))?;
        Ok(crate::encode(&art))
    }

    fn is_artifact(&self, bytes: &[u8]) -> bool {
        crate::is_artifact(bytes)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn nmc_backend::Loaded>, ArtifactError> {
        Ok(Box::new(LoadedLoihi2(crate::decode(bytes)?)))
    }
}

/// The partitioner's view of a Loihi 2 system: interchangeable cores in id order over the chips.
/// Public so that a partitioner can be run against a spec with other limits (tests force
/// spatial tiling with a small neuron limit per core).
pub struct Cores(pub ChipSpec);

impl CoreModel for Cores {
    fn cores_available(&self) -> usize {
        self.0.total_cores() as usize
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, Source> {
        let fp = LayerFootprint::of(graph, layer)?;
        Ok(Box::new(Sizer {
            spec: self.0.clone(),
            fp,
        }))
    }
    fn location(&self, core: usize) -> CoreLoc {
        self.0.core_loc(core as u32).unwrap_or(CoreLoc {
            chip: u32::MAX,
            x: 0,
            y: 0,
        })
    }
}

struct Sizer {
    spec: ChipSpec,
    fp: LayerFootprint,
}

impl LayerSizer for Sizer {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), Source> {
        Ok(self.spec.check_slice(&self.fp.usage(start, end))?)
    }
    /// Convolutional populations tile over their output plane ([`crate::tiles`]).
    fn plane(&self) -> Option<(u32, u32)> {
        self.fp.plane.map(|p| (p.rows.post, p.cols.post))
    }
    fn check_tile(&self, s: &nmc_ir::CoreSlice) -> Result<(), Source> {
        Ok(self.spec.check_slice(&self.fp.usage_slice(s))?)
    }
    fn min_cores(&self) -> usize {
        let u = self.fp.usage(0, self.fp.channels as u32);
        let by = |need: u64, have: u64| need.div_ceil(have.max(1)) as usize;
        by(u.neurons, u64::from(self.spec.max_neurons_per_core))
            .max(by(u.synapse_bytes, self.spec.synapse_bytes_per_core))
            .max(by(u.state_bytes, self.spec.state_bytes_per_core))
            .max(1)
    }
}

/// A decoded Loihi 2 artifact.
#[derive(Clone, Debug)]
pub struct LoadedLoihi2(pub Artifact);

impl LoadedLoihi2 {
    fn chips(&self) -> u32 {
        self.0.header.as_ref().map_or(1, |h| h.chips).max(1)
    }
}

/// The floorline model's constants, from the same spec the emulator uses.
fn constants(spec: &ChipSpec) -> Constants {
    let c = &spec.cost;
    Constants {
        a_syn: c.a_syn.value,
        a_mem: c.a_mem.value,
        a_neu: c.a_neu.value,
        a_msg: c.a_msg.value,
        b_sync: c.b_sync.value,
        e_syn: c.e_syn.value,
        e_mem: c.e_mem.value,
        e_neu: c.e_neu.value,
        e_msg: c.e_msg.value,
        e_hop: c.e_hop.value,
        p_static: c.p_static.value,
    }
}

impl LoadedLoihi2 {
    /// Runs samples independently (in parallel) or as one stream, and folds the report.
    fn run_samples(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
        stream: bool,
        record: bool,
        probes: &[String],
    ) -> Result<RunResult, BackendError> {
        let a = &self.0;
        // Probed populations by name (snn mode only: the caller checked).
        let probe_pops: Vec<usize> = probes
            .iter()
            .map(|name| {
                a.populations
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| {
                        BackendError::Usage(format!(
                            "--probe {name}: no such layer (the layers are {})",
                            a.populations
                                .iter()
                                .map(|p| format!("\"{}\"", p.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;

        let spec = spec_with(self.chips(), params)?;
        if a.inputs.len() != 1 {
            return Err(BackendError::input(format!(
                "the artifact has {} inputs; nmc run reads one .npy",
                a.inputs.len()
            )));
        }
        let input = &a.inputs[0];
        let per: usize = input.shape.iter().map(|d| *d as usize).product();
        // Snn mode takes spike frames, `[samples, T, …input]`; graded mode one frame per sample.
        let snn = a.populations.iter().any(|p| p.cuba.is_some());
        let (xs, frames) = if snn {
            if stream {
                return Err(BackendError::Usage(
                    "--stream: a spiking network's samples each start from rest; give them as [samples, T, …]".into(),
                ));
            }
            spike_samples(samples, &input.shape)?
        } else {
            (nmc_backend::split_samples(samples, per, &input.shape)?, 0)
        };
        let q = nmc_ir::QuantParams {
            scale: input.scale,
            min: input.min,
            max: input.max,
        };
        let output = a
            .outputs
            .first()
            .ok_or_else(|| BackendError::input("artifact has no outputs"))?;
        // A spiking run lasts until the last input step has reached the output, as Lava's.
        let t = timesteps.unwrap_or_else(|| {
            if snn {
                (frames as u32).saturating_add(crate::min_timesteps(a) - 1)
            } else {
                crate::min_timesteps(a)
            }
        });
        let new_emulator = || {
            let mut emu = crate::Emulator::new(a, &spec).map_err(BackendError::input)?;
            // The report needs each step's time and bound, not each core's step: keeping only
            // those bounds the memory of a long run (--timesteps) to a few dozen bytes per step.
            emu.record_core_steps(false);
            emu.record_outputs(record);
            emu.probe(&probe_pops);
            Ok::<_, BackendError>(emu)
        };
        let one = |emu: &mut crate::Emulator, x: &[f32], first: bool| {
            let (outs, report) = if snn {
                emu.run_spikes(&spike_frames(x, per, &q)?, t)
            } else if first {
                let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
                emu.run(&[x], t)
            } else {
                let x: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
                emu.run_continue(&[x], t)
            }
            .map_err(BackendError::input)?;
            let o = outs
                .into_iter()
                .next()
                .ok_or_else(|| BackendError::input("emulator returned no outputs"))?;
            let slowest = report
                .per_step
                .iter()
                .max_by(|a, b| a.t_ns.total_cmp(&b.t_ns))
                .map(|s| (s.t_ns, s.bound));
            progress();
            Ok((
                o,
                report.latency_ns,
                report.energy_nj,
                report.synaptic_events,
                slowest,
                report.cores,
                emu.take_recorded(),
                report.links,
                emu.take_probed(),
            ))
        };
        let runs = if stream {
            // One emulator, frames in order, state kept between them.
            let mut emu = new_emulator()?;
            xs.iter()
                .enumerate()
                .map(|(i, x)| one(&mut emu, x, i == 0))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            // Samples in parallel, each worker on its own emulator, each sample from the reset
            // state; what is kept of a run is folded below in sample order.
            nmc_backend::map_samples(&xs, new_emulator, |emu, x| one(emu, x, true))?
        };
        let n = xs.len();
        let mut out_shape = vec![n];
        out_shape.extend(output.shape.iter().map(|d| *d as usize));
        let mut outputs = nmc_backend::Array {
            shape: out_shape,
            data: Vec::new(),
        };
        let mut int_outputs = Vec::with_capacity(n);
        let mut perf = PerfSummary {
            target: NAME.into(),
            samples: n,
            timesteps: t,
            ..Default::default()
        };
        let mut bounds: Vec<[u64; 3]> = Vec::new();
        let mut workload = [0u64; 3];
        let mut steps = record.then(|| {
            let mut shape = vec![n, t as usize];
            shape.extend(output.shape.iter().map(|d| *d as usize));
            nmc_backend::Array {
                shape,
                data: Vec::new(),
            }
        });
        let mut probed: Vec<nmc_backend::Probe> = probe_pops
            .iter()
            .map(|&p| {
                let pop = &a.populations[p];
                let mut shape = vec![n, t as usize];
                shape.extend(pop.pre_shape.iter().map(|d| *d as usize));
                let empty = nmc_backend::Array {
                    shape,
                    data: Vec::new(),
                };
                nmc_backend::Probe {
                    layer: pop.name.clone(),
                    spikes: empty.clone(),
                    v: empty,
                }
            })
            .collect();
        for (o, latency_ns, energy_nj, synaptic_events, slowest, cores, recorded, links, probes) in
            runs
        {
            for (p, (s, v)) in probed.iter_mut().zip(probes) {
                p.spikes.data.extend(s.iter().map(|x| *x as f32));
                p.v.data.extend(v.iter().map(|x| *x as f32));
            }
            nmc_backend::add_links(&mut perf.links, &links);
            if let Some(s) = steps.as_mut() {
                s.data
                    .extend(recorded.iter().map(|v| *v as f32 * output.scale));
            }
            outputs
                .data
                .extend(o.iter().map(|v| *v as f32 * output.scale));
            int_outputs.push(o);
            perf.latency_ns += latency_ns;
            perf.energy_nj += energy_nj;
            perf.synaptic_events += synaptic_events;
            if let Some((t_ns, bound)) = slowest {
                perf.t_step_ns += t_ns;
                workload[bound as usize] += 1;
            }
            if perf.cores.is_empty() {
                perf.cores = cores
                    .iter()
                    .map(|c| CorePerf {
                        id: c.id,
                        chip: c.chip,
                        x: c.x,
                        y: c.y,
                        ..Default::default()
                    })
                    .collect();
                bounds = vec![[0; 3]; cores.len()];
            }
            for ((p, c), b) in perf.cores.iter_mut().zip(&cores).zip(&mut bounds) {
                p.counts.add(&c.counts);
                b[c.bound as usize] += 1;
            }
        }
        nmc_backend::finish_perf(&mut perf, &bounds, &workload);
        Ok(RunResult {
            outputs,
            int_outputs,
            perf,
            steps,
            probes: probed,
        })
    }
}

/// Most timesteps an event file is binned into (`--dt` over a long stream): 2^20, the limit of
/// `--timesteps` (docs/limits.md).
const MAX_EVENT_STEPS: u32 = 1 << 20;

/// Snn-mode samples `[samples, T, …shape]`: one flat slice per sample (its `T` frames in order)
/// and `T`.
fn spike_samples<'a>(
    samples: &'a nmc_backend::Array,
    shape: &[u32],
) -> Result<(Vec<&'a [f32]>, usize), BackendError> {
    let want: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    if samples.shape.len() != want.len() + 2 || samples.shape[2..] != want[..] {
        return Err(BackendError::input(format!(
            "a spiking network takes spike frames [samples, timesteps, {}]; the array has shape {:?}",
            want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
            samples.shape
        )));
    }
    let (n, t) = (samples.shape[0], samples.shape[1]);
    let per = want.iter().product::<usize>() * t;
    Ok((
        (0..n)
            .map(|i| &samples.data[i * per..(i + 1) * per])
            .collect(),
        t,
    ))
}

/// One sample's spike frames as integers: each value must be a whole spike value the input
/// accepts (binary, or graded within its range).
fn spike_frames(
    x: &[f32],
    per: usize,
    q: &nmc_ir::QuantParams,
) -> Result<Vec<Vec<Vec<i64>>>, BackendError> {
    x.chunks(per.max(1))
        .enumerate()
        .map(|(t, f)| {
            f.iter()
                .enumerate()
                .map(|(k, &v)| {
                    if v.fract() != 0.0 || v < q.min as f32 || v > q.max as f32 {
                        Err(BackendError::input(format!(
                            "spike input at step {t}, element {k}: {v} is not a spike value (an integer in {}..={})",
                            q.min, q.max
                        )))
                    } else {
                        Ok(v as i64)
                    }
                })
                .collect::<Result<Vec<i64>, _>>()
                .map(|f| vec![f])
        })
        .collect()
}

impl nmc_backend::Loaded for LoadedLoihi2 {
    fn spike_frames(&self) -> bool {
        self.0.populations.iter().any(|p| p.cuba.is_some())
    }

    fn target(&self) -> &'static str {
        NAME
    }

    fn listing(&self) -> String {
        crate::listing(&self.0)
    }

    fn to_json(&self) -> serde_json::Value {
        let a = &self.0;
        let layers: Vec<serde_json::Value> = a
            .populations
            .iter()
            .map(|p| {
                let cores: Vec<serde_json::Value> = p
                    .slices
                    .iter()
                    .map(|s| {
                        let c = a.cores.iter().find(|c| c.id == s.core);
                        let mut j = serde_json::json!({
                            "core": s.core,
                            "channels": [s.start, s.end],
                            "chip": c.map(|c| c.chip),
                            "x": c.map(|c| c.x),
                            "y": c.map(|c| c.y),
                        });
                        // A spatial tile also names its output rows and columns.
                        let ir = s.to_ir();
                        if let Some((a, b)) = ir.rows {
                            j["rows"] = serde_json::json!([a, b]);
                        }
                        if let Some((a, b)) = ir.cols {
                            j["cols"] = serde_json::json!([a, b]);
                        }
                        j
                    })
                    .collect();
                serde_json::json!({ "name": p.name, "shape": p.shape, "cores": cores })
            })
            .collect();
        serde_json::json!({
            "target": NAME,
            "format_version": a.header.as_ref().map(|h| h.format_version),
            "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
            "layers": layers,
            "cores_used": a.cores.len(),
        })
    }

    fn run(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        self.run_with_progress(samples, timesteps, params, &|| {})
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        match self.0.inputs.as_slice() {
            [i] => Some(i.shape.iter().map(|d| *d as usize).collect()),
            _ => None,
        }
    }

    fn run_with_progress(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.run_samples(samples, timesteps, params, progress, false, false, &[])
    }

    /// Frames in order on one emulator: after the first, `run_continue` sends each input's
    /// change and leaves unchanged neurons silent.
    fn run_stream(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.run_samples(samples, timesteps, params, progress, true, false, &[])
    }

    /// Each step's output is what the output neurons have sent so far (their graded value).
    fn run_recorded(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        stream: bool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.run_samples(samples, timesteps, params, progress, stream, true, &[])
    }

    /// Snn mode: an event file `(x, y, t, p)` binned into spike frames over the input's `[2, h,
    /// w]` (polarity first; a one-channel input takes both polarities), by the stream's span cut
    /// into `--timesteps` steps or by `--dt`, then run as frames (`T + depth` steps).
    fn run_events_binned(
        &self,
        events: &nmc_backend::EventArray,
        binning: &nmc_backend::EventBinning,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        use nmc_backend::events::{bin, dense, DvsEvent, Steps};
        if !self.spike_frames() {
            return Err(BackendError::input(
                "event input (a .npy with fields x, y, t, p) is for a spiking network or speck; this loihi2 artifact runs graded neurons: give frames [samples, …]",
            ));
        }
        let shape = self.input_shape().unwrap_or_default();
        let [c, h, w] = shape.as_slice() else {
            return Err(BackendError::input(format!(
                "event input needs a [1 or 2, h, w] input; the model's is {shape:?}"
            )));
        };
        let (c, h, w) = (*c, *h, *w);
        if !(1..=2).contains(&c) {
            return Err(BackendError::input(format!(
                "event input needs a 1- or 2-channel (polarity) input; the model's is [{c}, {h}, {w}]"
            )));
        }
        let steps = match binning.dt {
            None => Steps::Span(binning.timesteps.ok_or_else(|| {
                BackendError::Usage(
                    "an event file needs --timesteps T (its span cut into T steps) or --dt".into(),
                )
            })?),
            Some(dt) => Steps::Fixed {
                dt,
                t_start: binning.t_start,
                timesteps: binning.timesteps,
            },
        };
        let list: Vec<DvsEvent> = (0..events.len())
            .map(|i| DvsEvent {
                x: events.x[i],
                y: events.y[i],
                t: events.t[i],
                p: events.p[i],
            })
            .collect();
        let (binned, _) = bin(&list, [h as u32, w as u32], steps, MAX_EVENT_STEPS)
            .map_err(BackendError::input)?;
        let plane = h * w;
        let mut data = Vec::with_capacity(binned.len() * c * plane);
        for f in dense(&binned, 2 * plane) {
            if c == 2 {
                data.extend(f.iter().map(|v| *v as f32));
            } else {
                data.extend((0..plane).map(|i| (f[i] + f[plane + i]) as f32));
            }
        }
        let frames = nmc_backend::Array {
            shape: vec![1, binned.len(), c, h, w],
            data,
        };
        self.run_samples(&frames, None, params, &|| {}, false, false, &[])
    }

    fn run_events(
        &self,
        events: &nmc_backend::EventArray,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        let binning = nmc_backend::EventBinning {
            timesteps,
            ..Default::default()
        };
        self.run_events_binned(events, &binning, params)
    }

    /// Snn mode: the recorded run, plus the named populations' spikes and voltages per step.
    fn run_probed(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        probes: &[String],
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        if !self.spike_frames() {
            return Err(BackendError::Usage(
                "--probe records the spikes and voltages of a spiking network's layers; this loihi2 artifact runs graded (sigma-delta) neurons".into(),
            ));
        }
        self.run_samples(samples, timesteps, params, progress, false, true, probes)
    }

    /// Loads modelled from the activity profile ([`crate::floorline`]), with the emulator's
    /// counting conventions.
    fn floorline_loads(
        &self,
        activity: &Activity<'_>,
        params: &ChipParams,
    ) -> Result<Loads, BackendError> {
        let profile = activity.profile()?;
        let spec = spec_with(self.chips(), params)?;
        let m = crate::floorline::modelled_loads(&self.0, &spec, profile)
            .map_err(|m| BackendError::Artifact(nmc_backend::corrupt(m)))?;
        Ok(Loads {
            cores: m.cores,
            link_ns: m.link_ns,
            hops: m.hops,
            links: m.links,
            timesteps: crate::min_timesteps(&self.0),
            chips: self.chips(),
            constants: constants(&spec),
            activity: profile.from.clone(),
            splittable: true,
        })
    }
}
