//! Speck as the compiler sees it ([`Speck`], an [`nmc_backend::Backend`]): rate mode, layer →
//! core matching, the samna-shaped artifact; and a decoded artifact ([`LoadedSpeck`], an
//! [`nmc_backend::Loaded`]) run on the event-driven emulator.

use crate::artifact::{Artifact, OutputSpec, ENVELOPE};
use crate::events::Steps;
use crate::mapping::AssignError;
use crate::network::Network;
use crate::spec::{speck, ChipSpec, DEFAULT_TIMESTEPS, INPUT_LEVELS, MAX_TIMESTEPS};
use crate::{Emulator, MemoryUse, PerfReport, RunOut};
use nmc_backend::{
    finish_perf, layer_name, split_samples, Activity, Array, ArtifactError, Backend, BackendError,
    ChipParams, Constants, CoreLoad, CorePerf, CostParam, CostTable, EventArray, EventBinning,
    Genome, Loaded, Loads, NativeOps, PerfSummary, Quantization, RateOptions, RunResult,
    SearchSpace, TargetOptions,
};
use nmc_ir::{CoreLoc, CoreSlice, Graph, Mapping, NodeId};

/// SynSense Speck (DYNAP-CNN).
pub struct Speck;

/// A decoded, validated Speck artifact.
pub struct LoadedSpeck(pub Artifact);

fn rate_options() -> RateOptions {
    let s = speck();
    RateOptions {
        weight_bits: s.weight_bits,
        bias_bits: s.bias_bits,
        state_bits: s.state_bits,
        input_levels: INPUT_LEVELS,
        target: ENVELOPE.target,
    }
}

fn loc(core: usize) -> CoreLoc {
    CoreLoc {
        chip: 0,
        x: core as u32,
        y: 0,
    }
}

/// The Speck network of a quantised graph, or the error that says why there is none: chip
/// limits are "does not fit" (exit code 3), missing features "cannot lower" (exit code 1).
fn network(graph: &Graph) -> Result<Network, BackendError> {
    crate::extract(graph, &speck()).map_err(|p| {
        if p.all_limits() {
            BackendError::fit(ENVELOPE.target, p)
        } else {
            BackendError::lower(ENVELOPE.target, p)
        }
    })
}

/// Layer → core assignment by bipartite matching (Edmonds–Karp, as sinabs) of an extracted
/// network; every layer gets one whole core, so the mapping has one slice per layer and the core
/// id is the Speck core index.
fn matching(graph: &Graph, net: &Network) -> Result<Mapping, BackendError> {
    let spec = speck();
    let needs: Vec<MemoryUse> = net.layers.iter().map(|l| l.memory).collect();
    let cores = crate::assign(&needs, &spec.cores)
        .map_err(|e| BackendError::fit(ENVELOPE.target, assign_message(&e, net, graph, &spec)))?;
    let mut mapping = Mapping {
        placement: (0..spec.cores.len()).map(loc).collect(),
        ..Default::default()
    };
    for (l, core) in net.layers.iter().zip(cores) {
        mapping.layers.insert(
            l.node,
            vec![CoreSlice::channels(core, 0, l.neuron_shape[0])],
        );
    }
    Ok(mapping)
}

/// The matching's error with layer names, memory needs and the cores that have the most.
fn assign_message(e: &AssignError, net: &Network, graph: &Graph, spec: &ChipSpec) -> String {
    let name = |i: usize| graph.node_ref(net.layers[i].node);
    match e {
        AssignError::TooManyLayers { layers, cores } => format!(
            "the network has {layers} layers but speck has {cores} cores (one layer per core)"
        ),
        AssignError::Unplaceable(v) => v
            .iter()
            .map(|u| {
                let parts: Vec<String> = u
                    .overflows
                    .iter()
                    .map(|(m, need, cap)| {
                        let (_, ids) = spec.largest(|c| m.capacity(c));
                        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                        format!(
                            "{m} needs {need} entries, the largest core has {cap} (core {})",
                            ids.join(", ")
                        )
                    })
                    .collect();
                format!("layer {} fits no core: {}", name(u.layer), parts.join("; "))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        AssignError::Crowded { layers, cores } => {
            let names: Vec<String> = layers
                .iter()
                .map(|&i| {
                    let m = net.layers[i].memory;
                    format!(
                        "{} (kernel {}, neuron {}, bias {})",
                        name(i),
                        m.kernel,
                        m.neuron,
                        m.bias
                    )
                })
                .collect();
            format!(
                "{} layers fit only cores {cores:?} between them, which are too few: {}",
                layers.len(),
                names.join(", ")
            )
        }
    }
}

/// Timesteps must be in `1..=MAX_TIMESTEPS`.
fn check_timesteps(t: u32) -> Result<(), String> {
    if t == 0 || t > MAX_TIMESTEPS {
        return Err(format!(
            "{t} timesteps: speck runs 1..={MAX_TIMESTEPS} timesteps"
        ));
    }
    Ok(())
}

/// The spec with cost constants overridden (names as in `nmc targets --params`); an unknown name
/// is a usage error.
fn spec_with(params: &ChipParams) -> Result<ChipSpec, BackendError> {
    let mut spec = speck();
    spec.cost.apply(ENVELOPE.target, params)?;
    Ok(spec)
}

impl Backend for Speck {
    fn name(&self) -> &'static str {
        ENVELOPE.target
    }

    fn description(&self) -> String {
        let s = speck();
        let mut out = format!(
            "speck  SynSense Speck / DYNAP-CNN (rate mode: integrate-and-fire, spike counts)\n  cores: {} \
             (one layer each; memories in entries, kernel/neuron/bias):\n",
            s.cores.len()
        );
        for (i, c) in s.cores.iter().enumerate() {
            out.push_str(&format!(
                "    core {i}: {}/{}/{}\n",
                c.kernel_memory, c.neuron_memory, c.bias_memory
            ));
        }
        out.push_str(&format!(
            "  kernel ≤ {k}×{k} square; channels ≤ {}; input ≤ {i}×{i}; output map ≤ {o}×{o}\n  \
             stride {:?}; padding 0..={}; sum pooling {:?}; ≤ {} destinations per layer, each with its own pooling\n  \
             merges: a layer may read the sum of two spike maps of one shape (sinabs Merge)\n  \
             weights {}-bit, bias {}-bit, state {}-bit; dvs input {d}×{d}, {} polarities\n  \
             dvs layer: sum pooling of the input {:?} per axis, region of interest, mirrors, polarity merge/select\n  \
             default timesteps: {}\n",
            s.max_channels,
            s.strides,
            s.max_padding,
            s.pool_sizes,
            s.max_destinations,
            s.weight_bits,
            s.bias_bits,
            s.state_bits,
            s.dvs_channels,
            s.pool_sizes,
            DEFAULT_TIMESTEPS,
            k = s.max_kernel,
            i = s.max_input,
            o = s.max_output,
            d = s.dvs_size,
        ));
        out
    }

    fn describe_json(&self) -> serde_json::Value {
        let s = speck();
        let cores: Vec<serde_json::Value> = s
            .cores
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({
                    "id": i,
                    "kernel_memory": c.kernel_memory,
                    "neuron_memory": c.neuron_memory,
                    "bias_memory": c.bias_memory,
                })
            })
            .collect();
        serde_json::json!({
            "name": "speck",
            "mode": "rate",
            "cores": cores,
            "max_kernel": s.max_kernel,
            "max_channels": s.max_channels,
            "max_input": s.max_input,
            "max_output": s.max_output,
            "strides": s.strides,
            "max_padding": s.max_padding,
            "pool_sizes": s.pool_sizes,
            "max_destinations": s.max_destinations,
            "weight_bits": s.weight_bits,
            "bias_bits": s.bias_bits,
            "state_bits": s.state_bits,
            "default_timesteps": DEFAULT_TIMESTEPS,
        })
    }

    fn quantization(&self) -> Quantization {
        Quantization::Rate(rate_options())
    }

    fn snn_refusal(&self) -> String {
        "speck's DYNAP-CNN cores run integrate-and-fire neurons only (rate mode, as sinabs' IAF): replace LIF/CubaLIF by IF neurons to compile for speck".into()
    }

    /// Speck pools events by summing (sinabs turns AvgPool2d into SumPool2d) and has no
    /// concatenation (a core reads one input map).
    fn native_ops(&self) -> NativeOps {
        NativeOps {
            avg_pool: false,
            sum_pool: true,
            concat: false,
        }
    }

    fn default_timesteps(&self) -> Option<u32> {
        Some(DEFAULT_TIMESTEPS)
    }

    fn check_options(&self, opts: &TargetOptions) -> Result<(), BackendError> {
        opts.one_device("speck is one chip (nmc does not chain speck boards)")?;
        if let Some(t) = opts.timesteps {
            check_timesteps(t).map_err(BackendError::Usage)?;
        }
        Ok(())
    }

    fn cost_params(&self, params: &ChipParams) -> Result<Vec<CostParam>, BackendError> {
        Ok(spec_with(params)?.cost.params())
    }

    /// Layer → core matching ([`matching`]).
    fn default_mapping(
        &self,
        graph: &Graph,
        opts: &TargetOptions,
    ) -> Result<Mapping, BackendError> {
        self.check_options(opts)?;
        matching(graph, &network(graph)?)
    }

    /// Which core each layer takes. Every layer takes one whole core (one unit, no extras); the
    /// placement is a priority list over the nine cores and a layer takes the first free core its
    /// memories fit. The greedy genome reproduces [`Backend::default_mapping`].
    fn search_space<'g>(
        &self,
        graph: &'g Graph,
        opts: &TargetOptions,
    ) -> Result<SearchSpace<'g>, BackendError> {
        self.check_options(opts)?;
        let net = network(graph)?;
        let greedy = matching(graph, &net)?;
        let spec = speck();
        let n = net.layers.len();
        let mut base: Vec<usize> = net
            .layers
            .iter()
            .filter_map(|l| greedy.layers.get(&l.node).and_then(|s| s.first()))
            .map(|s| s.core as usize)
            .collect();
        let rest: Vec<usize> = (0..spec.cores.len())
            .filter(|c| !base.contains(c))
            .collect();
        base.extend(rest);
        let problem = nmc_backend::Problem {
            min_cores: vec![1; n],
            max_extra: vec![0; n],
            step: Vec::new(),
            allowed: net
                .layers
                .iter()
                .map(|l| spec.cores.iter().map(|c| l.memory.fits(c)).collect())
                .collect(),
            base,
            spatial: Vec::new(),
            max_tiles: Vec::new(),
            positions: (0..spec.cores.len()).map(loc).collect(),
        };
        let names = net
            .layers
            .iter()
            .map(|l| layer_name(graph, l.node))
            .collect();
        let layers: Vec<(NodeId, u32)> = net
            .layers
            .iter()
            .map(|l| (l.node, l.neuron_shape[0]))
            .collect();
        let shape = problem.clone();
        let cores = spec.cores.len();
        let decode = move |g: &Genome| -> Option<Mapping> {
            let at = shape.layer_positions(g)?;
            let mut m = Mapping {
                placement: (0..cores).map(loc).collect(),
                ..Default::default()
            };
            for (&(node, channels), p) in layers.iter().zip(at) {
                m.layers.insert(
                    node,
                    vec![CoreSlice::channels(*p.first()? as u32, 0, channels)],
                );
            }
            Some(m)
        };
        Ok(SearchSpace {
            problem,
            names,
            greedy,
            decode: Box::new(decode),
            note: Some(
                "speck runs each layer on one whole core, its nine cores work at the same speed and \
                 events are routed without a distance cost (nmc's Speck cost model, backends/speck/src/spec.rs: no public timing, docs/chips.md §5.4), so no choice of cores \
                 changes the latency; the search only checks the alternatives"
                    .into(),
            ),
        })
    }

    fn lower(
        &self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        opts: &TargetOptions,
    ) -> Result<Vec<u8>, BackendError> {
        let timesteps = opts.timesteps.unwrap_or(DEFAULT_TIMESTEPS);
        check_timesteps(timesteps).map_err(BackendError::Usage)?;
        let net = network(graph)?;
        let cores: Vec<u32> = net
            .layers
            .iter()
            .map(|l| match mapping.layers.get(&l.node).map(Vec::as_slice) {
                Some([s]) if s.start == 0 && s.end == l.neuron_shape[0] && !s.is_tile() => {
                    Ok(s.core)
                }
                _ => Err(BackendError::lower(
                    ENVELOPE.target,
                    format!(
                        "layer {}: a speck layer takes exactly one whole core",
                        graph.node_ref(l.node)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?;
        let art = crate::lower(&net, &cores, &speck(), source_hash, timesteps, &opts.dvs).map_err(
            |e| match e {
                crate::LowerError::Options(m) => BackendError::Usage(m),
                e => BackendError::lower(ENVELOPE.target, e),
            },
        )?;
        Ok(crate::encode(&art))
    }

    fn is_artifact(&self, bytes: &[u8]) -> bool {
        crate::is_artifact(bytes)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Loaded>, ArtifactError> {
        Ok(Box::new(LoadedSpeck(crate::decode(bytes)?)))
    }
}

/// Sums per-sample reports into the `run --report` JSON.
struct Summary {
    perf: PerfSummary,
    bounds: Vec<[u64; 3]>,
    workload: [u64; 3],
}

impl Summary {
    fn new(n: usize, timesteps: u32) -> Self {
        Summary {
            perf: PerfSummary {
                target: ENVELOPE.target.into(),
                samples: n,
                timesteps,
                ..Default::default()
            },
            bounds: Vec::new(),
            workload: [0; 3],
        }
    }

    fn add(&mut self, r: &PerfReport) {
        let p = &mut self.perf;
        p.latency_ns += r.latency_ns;
        p.energy_nj += r.energy_nj;
        p.t_step_ns += r.t_step_max_ns;
        p.synaptic_events += r.synaptic_events;
        if p.cores.is_empty() {
            p.cores = r
                .cores
                .iter()
                .map(|c| CorePerf {
                    id: c.id,
                    chip: 0,
                    x: c.id,
                    y: 0,
                    ..Default::default()
                })
                .collect();
            self.bounds = vec![[0; 3]; r.cores.len()];
        }
        for ((p, c), b) in p.cores.iter_mut().zip(&r.cores).zip(&mut self.bounds) {
            p.counts.add(&c.counts);
            // Every synaptic operation reads one kernel-memory entry (the emulator's time model
            // has no separate read term, so its `R` is 0).
            p.counts.mem_reads += c.counts.syn_ops;
            b[c.bound() as usize] += 1;
        }
        if let Some(c) = r.cores.iter().find(|c| c.id == r.slowest_core) {
            self.workload[c.bound() as usize] += 1;
        }
    }

    fn finish(mut self) -> PerfSummary {
        finish_perf(&mut self.perf, &self.bounds, &self.workload);
        self.perf
    }
}

impl LoadedSpeck {
    fn input_len(&self) -> Result<(usize, &[u32]), BackendError> {
        let input = self
            .0
            .input
            .as_ref()
            .ok_or_else(|| BackendError::input("artifact has no input"))?;
        Ok((
            input.shape.iter().map(|d| *d as usize).product(),
            &input.shape,
        ))
    }

    fn output_spec(&self) -> Result<&OutputSpec, BackendError> {
        self.0
            .output
            .as_ref()
            .ok_or_else(|| BackendError::input("artifact has no output"))
    }

    /// `t`, or the artifact's timesteps, or the default; checked.
    fn timesteps(&self, t: Option<u32>) -> Result<u32, BackendError> {
        let t = t
            .or(self.0.timesteps().filter(|t| *t > 0))
            .unwrap_or(DEFAULT_TIMESTEPS);
        check_timesteps(t).map_err(BackendError::input)?;
        Ok(t)
    }

    /// The emulator with the cost constants `params` override.
    fn emulator(&self, params: &ChipParams) -> Result<Emulator, BackendError> {
        let cost = spec_with(params)?.cost;
        Ok(Emulator::new(&self.0)
            .map_err(BackendError::input)?
            .with_cost(cost))
    }

    /// The steps of a binning: the artifact's timesteps unless given; with `dt` and no
    /// timesteps, as many as reach the last event.
    fn steps(&self, binning: &EventBinning) -> Result<Steps, BackendError> {
        Ok(match binning.dt {
            None => Steps::Span(self.timesteps(binning.timesteps)?),
            Some(dt) => {
                if let Some(t) = binning.timesteps {
                    check_timesteps(t).map_err(BackendError::input)?;
                }
                Steps::Fixed {
                    dt,
                    t_start: binning.t_start,
                    timesteps: binning.timesteps,
                }
            }
        })
    }

    /// Bins an event stream in the emulator's event space: sensor events `[2, h, w]` when the
    /// input passes the DVS layer, else the input map itself (one or two polarity channels; a
    /// one-channel map takes both polarities).
    fn bin(&self, events: &EventArray, steps: Steps) -> Result<crate::events::Binned, String> {
        let input = self.0.input.as_ref().ok_or("artifact has no input")?;
        let [c, h, w] = input.map.map(|m| m.to_chw()).unwrap_or_default();
        let dvs = self
            .0
            .dvs_layer
            .as_ref()
            .ok_or("artifact has no dvs layer")?;
        let sensor = if dvs.pass_sensor_events {
            let s = dvs.input_shape.unwrap_or_default();
            [s.y, s.x]
        } else if c > 2 {
            return Err(format!(
                "event input needs a 1- or 2-channel (polarity) input; the model's input map is [{c}, {h}, {w}]"
            ));
        } else {
            [h, w]
        };
        let list: Vec<crate::DvsEvent> = (0..events.len())
            .map(|i| crate::DvsEvent {
                x: events.x[i],
                y: events.y[i],
                t: events.t[i],
                p: events.p[i],
            })
            .collect();
        let (mut binned, _) = crate::bin(&list, sensor, steps, MAX_TIMESTEPS)?;
        if !dvs.pass_sensor_events && c == 1 {
            // Both polarities into the one channel.
            let plane = h * w;
            for step in &mut binned {
                let mut merged = std::collections::BTreeMap::<u32, u32>::new();
                for &(i, n) in step.iter() {
                    let m = merged.entry(i % plane).or_insert(0);
                    *m = m.saturating_add(n);
                }
                *step = merged.into_iter().collect();
            }
        }
        Ok(binned)
    }

    /// Binned events as the reference interpreter's input: per step, the count per element of
    /// the model input, through the network's view of the DVS layer (`crate::dvs::ModelView`,
    /// computed apart from the chip's route that the emulator takes).
    fn to_model_counts(&self, binned: &crate::events::Binned) -> Result<Vec<Vec<i64>>, String> {
        let input = self.0.input.as_ref().ok_or("artifact has no input")?;
        let numel = input.shape.iter().map(|d| *d as usize).product();
        let dvs = self
            .0
            .dvs_layer
            .as_ref()
            .ok_or("artifact has no dvs layer")?;
        if !dvs.pass_sensor_events {
            return Ok(crate::events::dense(binned, numel));
        }
        let route = crate::dvs::DvsRoute::from_config(dvs, &speck())?;
        let view = crate::dvs::ModelView::new(route);
        let [_, mh, mw] = view.map();
        let [sh, sw] = route.sensor;
        Ok(binned
            .iter()
            .map(|step| {
                let mut v = vec![0i64; numel];
                for &(i, n) in step {
                    let (p, y, x) = (i / (sh * sw), (i / sw) % sh, i % sw);
                    if let Some([c, y, x]) = view.to_model(p, y, x) {
                        if let Some(e) = v.get_mut(((c * mh + y) * mw + x) as usize) {
                            *e += i64::from(n);
                        }
                    }
                }
                v
            })
            .collect())
    }

    /// Dense samples, independent (in parallel) or as one stream, recording each step's output
    /// spikes when `record`.
    fn dense(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
        stream: bool,
        record: bool,
    ) -> Result<RunResult, BackendError> {
        let (per, shape) = self.input_len()?;
        if samples.shape.len() == shape.len() + 2 {
            return self.frames(samples, params, progress, stream, record);
        }
        let xs = split_samples(samples, per, shape)?;
        let t = self.timesteps(timesteps)?;
        if stream {
            // Frames in order on one emulator whose membranes are not reset between frames.
            let mut emu = self.emulator(params)?;
            let mut runs = Vec::with_capacity(xs.len());
            for (i, x) in xs.iter().enumerate() {
                emu.keep_state(i > 0);
                runs.push(emu.run_dense(x, t, record).map_err(BackendError::input));
                progress();
            }
            return self.collect(runs.into_iter(), xs.len(), t);
        }
        // Samples run in parallel, each worker on its own emulator, folded in sample order.
        let runs = nmc_backend::map_samples(
            &xs,
            || self.emulator(params),
            |emu, x| {
                let r = emu.run_dense(x, t, record).map_err(BackendError::input);
                progress();
                r
            },
        )?;
        self.collect(runs.into_iter().map(Ok), xs.len(), t)
    }

    /// Spike frames `[samples, T, …input]`: each sample's `T` steps of input spikes (whole
    /// numbers), from the reset state; `T` is the run's length.
    fn frames(
        &self,
        samples: &Array,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
        stream: bool,
        record: bool,
    ) -> Result<RunResult, BackendError> {
        if stream {
            return Err(BackendError::Usage(
                "--stream takes frames of one stream [samples, …input]; spike frames [samples, T, …input] are already steps".into(),
            ));
        }
        let (per, shape) = self.input_len()?;
        if samples.shape[2..]
            .iter()
            .zip(shape)
            .any(|(a, b)| *a != *b as usize)
        {
            return Err(BackendError::input(format!(
                "spike frames of shape {:?} do not match the input shape {shape:?}",
                samples.shape
            )));
        }
        let t = samples.shape[1];
        check_timesteps(t as u32).map_err(BackendError::input)?;
        let xs = split_samples(samples, per * t, shape)?;
        let runs = nmc_backend::map_samples(
            &xs,
            || self.emulator(params),
            |emu, x| {
                let frames = x
                    .chunks(per.max(1))
                    .enumerate()
                    .map(|(k, f)| {
                        f.iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f32 {
                                    Err(BackendError::input(format!(
                                        "spike input at step {k}, element {i}: {v} is not a spike count"
                                    )))
                                } else {
                                    Ok(v as u32)
                                }
                            })
                            .collect::<Result<Vec<u32>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let r = emu.run_frames(&frames, record).map_err(BackendError::input);
                progress();
                r
            },
        )?;
        self.collect(runs.into_iter().map(Ok), xs.len(), t as u32)
    }

    /// The run result; per-step output spike counts go to `steps` where the runs recorded them.
    fn collect(
        &self,
        runs: impl Iterator<Item = Result<RunOut, BackendError>>,
        n: usize,
        t: u32,
    ) -> Result<RunResult, BackendError> {
        let output = self.output_spec()?;
        let mut shape = vec![n];
        shape.extend(output.shape.iter().map(|d| *d as usize));
        let mut outputs = Array {
            shape,
            data: Vec::new(),
        };
        let mut int_outputs = Vec::with_capacity(n);
        let mut summary = Summary::new(n, t);
        let mut steps: Option<Array> = None;
        for r in runs {
            let r = r?;
            if let Some(per_step) = &r.per_step {
                let s = steps.get_or_insert_with(|| {
                    let mut shape = vec![n, per_step.len()];
                    shape.extend(output.shape.iter().map(|d| *d as usize));
                    Array {
                        shape,
                        data: Vec::new(),
                    }
                });
                s.data.extend(per_step.iter().flatten().map(|&c| c as f32));
            }
            outputs.data.extend(
                r.counts
                    .iter()
                    .map(|c| *c as f32 * output.scale / t.max(1) as f32),
            );
            summary.add(&r.perf);
            int_outputs.push(r.counts);
        }
        Ok(RunResult {
            outputs,
            int_outputs,
            perf: summary.finish(),
            steps,
            probes: Vec::new(),
        })
    }
}

impl Loaded for LoadedSpeck {
    fn target(&self) -> &'static str {
        ENVELOPE.target
    }

    fn listing(&self) -> String {
        crate::listing(&self.0)
    }

    fn to_json(&self) -> serde_json::Value {
        let a = &self.0;
        let layers: Vec<serde_json::Value> = a
            .cnn_layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.used)
            .map(|(core, l)| {
                let m = l.memory.unwrap_or_default();
                let d = l.dimensions.unwrap_or_default();
                let out = d.output_shape.map(|m| m.to_chw()).unwrap_or_default();
                let dests: Vec<serde_json::Value> = l
                    .destinations
                    .iter()
                    .map(|d| serde_json::json!({ "core": d.layer, "pooling": d.pooling }))
                    .collect();
                serde_json::json!({
                    "name": l.name,
                    "core": core,
                    "cores": [{ "core": core }],
                    "input_shape": d.input_shape.map(|m| m.to_chw()),
                    "neuron_shape": out,
                    "kernel_size": d.kernel_size,
                    "kernel_memory": m.kernel,
                    "neuron_memory": m.neuron,
                    "bias_memory": m.bias,
                    "stride": d.stride.map(|s| [s.y, s.x]),
                    "padding": d.padding.map(|p| [p.y, p.x]),
                    "threshold_high": l.threshold_high,
                    "threshold_low": l.threshold_low,
                    "return_to_zero": l.return_to_zero,
                    "max_spikes": l.max_spikes,
                    "destinations": dests,
                    // samna's order, [f][c][kx][ky] flattened (docs/chips.md §2.4), so that a
                    // vendor engine can be given exactly these integers.
                    "weights": l.weights,
                    "biases": l.biases,
                    "monitor": l.monitor_enable,
                })
            })
            .collect();
        serde_json::json!({
            "target": "speck",
            "format_version": a.header.as_ref().map(|h| h.format_version),
            "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
            "timesteps": a.timesteps(),
            // The rate encoder's grid: a value x sends round_half_even(x / scale) of `levels`
            // levels (nmc_ir::quantize, RateEncoder).
            "input": a.input.as_ref().map(|i| serde_json::json!({
                "name": i.name,
                "shape": i.shape,
                "map": i.map.map(|m| m.to_chw()),
                "scale": i.scale,
                "levels": i.levels,
            })),
            "output": a.output.as_ref().map(|o| serde_json::json!({
                "core": o.layer,
                "pooling": o.pooling,
                "shape": o.shape,
                "scale": o.scale,
            })),
            "dvs_input": a.dvs_layer.as_ref().map(|d| d.pass_sensor_events),
            "dvs_destinations": a.dvs_layer.as_ref().map(|d| {
                d.destinations.iter().map(|x| x.layer).collect::<Vec<_>>()
            }),
            "dvs_layer": a.dvs_layer.as_ref().map(|d| {
                let p = d.pooling.unwrap_or_default();
                let o = d.origin.unwrap_or_default();
                serde_json::json!({
                    "pooling": { "x": p.x, "y": p.y },
                    "origin": { "x": o.x, "y": o.y },
                    "cut": d.cut.map(|c| serde_json::json!({ "x": c.x, "y": c.y })),
                    "mirror": { "x": d.mirror_x, "y": d.mirror_y },
                    "mirror_diagonal": d.mirror_diagonal,
                    "merge": d.merge,
                    "polarities": (["both", "on", "off"].get(d.polarities as usize)),
                })
            }),
            "layers": layers,
            "cores_used": a.cnn_layers.iter().filter(|l| l.used).count(),
        })
    }

    /// Dense samples, rate-encoded over `timesteps` (default: the artifact's).
    fn run(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        self.run_with_progress(samples, timesteps, params, &|| {})
    }

    /// Dense samples are rate-encoded; spike frames `[samples, T, …]` are taken as they are.
    fn accepts_frames(&self) -> bool {
        true
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.0
            .input
            .as_ref()
            .map(|i| i.shape.iter().map(|d| *d as usize).collect())
    }

    fn run_with_progress(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.dense(samples, timesteps, params, progress, false, false)
    }

    /// Frames in order on one emulator whose membranes are not reset between frames: what one
    /// frame leaves below threshold, the next integrates on.
    fn run_stream(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.dense(samples, timesteps, params, progress, true, false)
    }

    /// Each step's output spike counts.
    fn run_recorded(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        stream: bool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        self.dense(samples, timesteps, params, progress, stream, true)
    }

    /// One event stream (`x, y, t, p`), binned into `timesteps` steps.
    fn run_events(
        &self,
        events: &EventArray,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        let binning = EventBinning {
            timesteps,
            ..Default::default()
        };
        self.run_events_binned(events, &binning, params)
    }

    /// One event stream, binned by the stream's span or by a fixed `dt`; its sensor events pass
    /// the DVS layer in the emulator.
    fn run_events_binned(
        &self,
        events: &EventArray,
        binning: &EventBinning,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        let steps = self.steps(binning)?;
        let binned = self.bin(events, steps).map_err(BackendError::input)?;
        let t = binned.len() as u32;
        let mut emu = self.emulator(params)?;
        let run = emu.run_events(&binned, false).map_err(BackendError::input);
        self.collect(std::iter::once(run), 1, t)
    }

    fn bin_events(
        &self,
        events: &EventArray,
        timesteps: u32,
    ) -> Result<Vec<Vec<Vec<i64>>>, BackendError> {
        check_timesteps(timesteps).map_err(BackendError::input)?;
        let binning = EventBinning {
            timesteps: Some(timesteps),
            ..Default::default()
        };
        self.bin_events_binned(events, &binning)
    }

    fn bin_events_binned(
        &self,
        events: &EventArray,
        binning: &EventBinning,
    ) -> Result<Vec<Vec<Vec<i64>>>, BackendError> {
        let steps = self.steps(binning)?;
        let binned = self.bin(events, steps).map_err(BackendError::input)?;
        Ok(self
            .to_model_counts(&binned)
            .map_err(BackendError::input)?
            .into_iter()
            .map(|s| vec![s])
            .collect())
    }

    /// Per-core loads measured by the emulator on the activity's samples, per timestep (Speck is
    /// asynchronous: no barrier; the step is the slowest core's work).
    fn floorline_loads(
        &self,
        activity: &Activity<'_>,
        params: &ChipParams,
    ) -> Result<Loads, BackendError> {
        let a = &self.0;
        let spec = spec_with(params)?;
        let (per, shape) = self.input_len()?;
        let xs = split_samples(activity.samples(), per, shape)?;
        let t = self.timesteps(None)?;
        let mut emu = Emulator::new(a)
            .map_err(BackendError::input)?
            .with_cost(spec.cost.clone());
        // cnn_layers[k] is core k's configuration.
        let layer_on = |core: u32| {
            a.cnn_layers
                .get(core as usize)
                .filter(|l| l.used)
                .map(|l| l.name.clone())
                .unwrap_or_default()
        };
        let mut loads: Vec<CoreLoad> = Vec::new();
        let steps = (xs.len().max(1) as f64) * f64::from(t);
        for x in &xs {
            let run = emu.run_dense(x, t, false).map_err(BackendError::input)?;
            if loads.is_empty() {
                loads = run
                    .perf
                    .cores
                    .iter()
                    .map(|c| CoreLoad {
                        id: c.id,
                        x: c.id,
                        layer: layer_on(c.id),
                        ..Default::default()
                    })
                    .collect();
            }
            for (l, c) in loads.iter_mut().zip(&run.perf.cores) {
                l.s += c.counts.syn_ops as f64 / steps;
                l.d += c.counts.neuron_updates as f64 / steps;
                l.m_in += c.counts.msgs_in as f64 / steps;
                l.m_out += c.counts.msgs_out as f64 / steps;
            }
        }
        for l in &mut loads {
            // Speck's cores decode their input events; sending is the router's work.
            l.m = l.m_in;
        }
        let c = &spec.cost;
        let constants = Constants {
            a_syn: c.t_syn.value,
            a_mem: 0.0,
            a_neu: c.t_neuron.value,
            a_msg: c.t_event.value,
            b_sync: 0.0,
            e_syn: c.e_syn.value,
            e_mem: 0.0,
            e_neu: c.e_neuron.value,
            e_msg: c.e_event.value,
            e_hop: 0.0,
            p_static: c.p_static.value,
        };
        Ok(Loads {
            cores: loads,
            link_ns: 0.0,
            hops: 0.0,
            timesteps: t,
            chips: 1,
            constants,
            activity: format!(
                "loads measured by the emulator on {} sample(s) × {t} timesteps",
                xs.len()
            ),
            splittable: false,
            links: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::tests::tiny;
    use nmc_backend::ActivityProfile;

    fn loaded() -> Box<dyn Loaded> {
        Speck.decode(&crate::encode(&tiny())).unwrap()
    }

    fn params(name: &str, value: f64) -> ChipParams {
        ChipParams {
            values: vec![(name.into(), value)],
        }
    }

    fn ones() -> Array {
        Array {
            shape: vec![1, 1, 2, 2],
            data: vec![1.0; 4],
        }
    }

    #[test]
    fn describes_the_chip() {
        assert_eq!(Speck.name(), "speck");
        assert_eq!(Speck.default_timesteps(), Some(8));
        assert_eq!(
            Speck.quantization(),
            Quantization::Rate(RateOptions {
                weight_bits: 8,
                bias_bits: 8,
                state_bits: 16,
                input_levels: 255,
                target: "speck",
            })
        );
        let ops = Speck.native_ops();
        assert!(ops.sum_pool && !ops.avg_pool && !ops.concat);
        assert!(Speck.description().contains("core 5: 65536/16384/1024"));
        assert_eq!(Speck.describe_json()["default_timesteps"], 8);
        assert!(Speck.check_options(&TargetOptions::default()).is_ok());
        let two = TargetOptions {
            chips: 2,
            timesteps: None,
            ..Default::default()
        };
        assert!(matches!(
            Speck.check_options(&two),
            Err(BackendError::Usage(m)) if m == "--chips 2: speck is one chip (nmc does not chain speck boards)"
        ));
    }

    #[test]
    fn cost_overrides_apply_and_unknown_names_are_usage_errors() {
        let p = Speck.cost_params(&params("t_syn", 5.0)).unwrap();
        let names: Vec<&str> = p.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["t_event", "t_syn", "t_neuron", "t_hop", "e_syn", "e_neuron", "e_event", "p_static"]
        );
        assert_eq!(p[1].value, 5.0);
        let known = "unknown speck cost constant `t_foo` (known: t_event, t_syn, t_neuron, t_hop, \
                     e_syn, e_neuron, e_event, p_static)";
        let e = Speck.cost_params(&params("t_foo", 1.0)).unwrap_err();
        assert!(matches!(&e, BackendError::Usage(m) if m == known));
        // Also when running: exit code 2, not 1.
        let e = loaded()
            .run(&ones(), None, &params("t_foo", 1.0))
            .unwrap_err();
        assert!(matches!(&e, BackendError::Usage(m) if m == known));
    }

    #[test]
    fn runs_lists_and_measures_an_artifact() {
        let l = loaded();
        assert_eq!(l.target(), "speck");
        assert!(l
            .listing()
            .starts_with("artifact speck format 2 source 0123456789abcdef timesteps 4\n"));
        let j = l.to_json();
        assert_eq!(j["timesteps"], 4);
        assert_eq!(j["source_hash"], "0x0123456789abcdef");
        assert_eq!(j["cores_used"], 1);
        // Weight 2, threshold 3, subtract reset, one event per step: spikes at steps 2 and 3 of 4.
        let r = l.run(&ones(), None, &ChipParams::default()).unwrap();
        assert_eq!(r.outputs.shape, [1, 4]);
        assert_eq!(r.int_outputs, [vec![2; 4]]);
        assert_eq!(r.outputs.data, [0.25; 4]);
        assert_eq!(r.perf.target, "speck");
        assert_eq!(r.perf.timesteps, 4);
        assert_eq!(r.perf.cores.len(), 1);
        assert_eq!(r.perf.cores[0].counts.syn_ops, 16);
        assert_eq!(r.perf.cores[0].counts.mem_reads, 16);
        let slow = l.run(&ones(), Some(8), &params("t_syn", 20.0)).unwrap();
        assert_eq!(slow.perf.timesteps, 8);
        assert!(slow.perf.latency_ns > r.perf.latency_ns);
        // Plain input errors keep exit code 1.
        let e = l.run(&ones(), Some(0), &ChipParams::default()).unwrap_err();
        assert!(matches!(e, BackendError::Input { .. }));
        assert_eq!(
            e.to_string(),
            "0 timesteps: speck runs 1..=1048576 timesteps"
        );
        let bad = Array {
            shape: vec![3],
            data: vec![0.0; 3],
        };
        assert!(matches!(
            l.run(&bad, None, &ChipParams::default()),
            Err(BackendError::Input { .. })
        ));
        // Events: two at one pixel in one step.
        let ev = EventArray {
            x: vec![1, 1],
            y: vec![0, 0],
            t: vec![5, 5],
            p: vec![1, 0],
        };
        assert_eq!(
            l.bin_events(&ev, 2).unwrap(),
            [vec![vec![0, 2, 0, 0]], vec![vec![0; 4]]]
        );
        let r = l.run_events(&ev, Some(2), &ChipParams::default()).unwrap();
        assert_eq!(r.int_outputs, [vec![0, 1, 0, 0]]);
        let outside = EventArray {
            x: vec![7],
            y: vec![0],
            t: vec![0],
            p: vec![0],
        };
        assert!(matches!(
            l.bin_events(&outside, 2),
            Err(BackendError::Input { .. })
        ));
        // Floorline loads measured on the activity's samples, per timestep.
        let profile = ActivityProfile {
            from: "test".into(),
            inputs: Vec::new(),
            layers: Vec::new(),
        };
        let loads = l
            .floorline_loads(&Activity::of(profile, ones()), &ChipParams::default())
            .unwrap();
        assert_eq!((loads.timesteps, loads.chips), (4, 1));
        assert_eq!(loads.cores.len(), 1);
        assert_eq!(loads.cores[0].layer, "conv");
        assert_eq!(loads.cores[0].s, 4.0);
        assert_eq!(loads.cores[0].m, loads.cores[0].m_in);
        assert_eq!(loads.constants.a_syn, 10.0);
        assert_eq!(
            loads.activity,
            "loads measured by the emulator on 1 sample(s) × 4 timesteps"
        );
    }
}
