//! SynSense Speck (crate `nmc-speck`): rate mode, layer → core matching, samna-shaped artifact.

use super::{split_samples, CorePerf, PerfSummary, RunResult, SearchSpace};
use crate::npy::{Array, EventArray};
use crate::partition::search::{Genome, Problem};
use crate::partition::{CoreModel, LayerSizer};
use crate::passes::RateOptions;
use crate::Error;
use nmc_ir::{CoreLoc, CoreSlice, Graph, Mapping, NodeId};
use nmc_speck::mapping::AssignError;
use nmc_speck::network::describe;

pub(super) fn rate_options() -> RateOptions {
    let s = nmc_speck::speck();
    RateOptions {
        weight_bits: s.weight_bits,
        bias_bits: s.bias_bits,
        state_bits: s.state_bits,
        input_levels: nmc_speck::INPUT_LEVELS,
        target: "speck",
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
fn network(graph: &Graph) -> Result<nmc_speck::Network, Error> {
    nmc_speck::extract(graph, &nmc_speck::speck()).map_err(|p| {
        if p.all_limits() {
            Error::Fit {
                target: "speck",
                message: p.to_string(),
            }
        } else {
            Error::Lower {
                target: "speck",
                message: p.to_string(),
            }
        }
    })
}

/// Layer → core assignment by bipartite matching (Edmonds–Karp, as sinabs); every layer gets one
/// whole core, so the mapping has one slice per layer and the core id is the Speck core index.
pub(super) fn partition(graph: &Graph, chips: u32) -> Result<Mapping, Error> {
    one_chip(chips)?;
    matching(graph, &network(graph)?)
}

/// Speck is one chip: nmc does not chain boards.
fn one_chip(chips: u32) -> Result<(), Error> {
    if chips == 1 {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--chips {chips}: speck is one chip (nmc does not chain speck boards)"
        )))
    }
}

/// [`partition`] of an extracted network.
fn matching(graph: &Graph, net: &nmc_speck::Network) -> Result<Mapping, Error> {
    let spec = nmc_speck::speck();
    let needs: Vec<nmc_speck::MemoryUse> = net.layers.iter().map(|l| l.memory).collect();
    let cores = nmc_speck::assign(&needs, &spec.cores).map_err(|e| Error::Fit {
        target: "speck",
        message: assign_message(&e, net, graph, &spec),
    })?;
    let mut mapping = Mapping {
        placement: (0..spec.cores.len()).map(loc).collect(),
        ..Default::default()
    };
    for (l, core) in net.layers.iter().zip(cores) {
        mapping.layers.insert(
            l.node,
            vec![CoreSlice {
                core,
                start: 0,
                end: l.neuron_shape[0],
            }],
        );
    }
    Ok(mapping)
}

/// Speck's mapping search space: which core each layer takes. Every layer takes one whole core
/// (one unit, no extras); the placement is a priority list over the nine cores and a layer takes
/// the first free core its memories fit. The greedy genome reproduces [`partition`].
pub(super) fn search_space(graph: &Graph, chips: u32) -> Result<SearchSpace<'_>, Error> {
    one_chip(chips)?;
    let net = network(graph)?;
    let greedy = matching(graph, &net)?;
    let spec = nmc_speck::speck();
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
    let problem = Problem {
        min_cores: vec![1; n],
        max_extra: vec![0; n],
        step: Vec::new(),
        allowed: net
            .layers
            .iter()
            .map(|l| spec.cores.iter().map(|c| l.memory.fits(c)).collect())
            .collect(),
        base,
        positions: (0..spec.cores.len()).map(loc).collect(),
    };
    let names = net
        .layers
        .iter()
        .map(|l| super::layer_name(graph, l.node))
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
                vec![CoreSlice {
                    core: *p.first()? as u32,
                    start: 0,
                    end: channels,
                }],
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
             events are routed without a distance cost (chips.md §2), so no choice of cores \
             changes the latency; the search only checks the alternatives"
                .into(),
        ),
    })
}

/// The matching's error with layer names, memory needs and the cores that have the most.
fn assign_message(
    e: &AssignError,
    net: &nmc_speck::Network,
    graph: &Graph,
    spec: &nmc_speck::ChipSpec,
) -> String {
    let name = |i: usize| describe(graph, net.layers[i].node);
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

pub(super) fn lower(
    graph: &Graph,
    mapping: &Mapping,
    source_hash: u64,
    timesteps: u32,
) -> Result<Vec<u8>, Error> {
    check_timesteps(timesteps).map_err(Error::Usage)?;
    let bad = |message: String| Error::Lower {
        target: "speck",
        message,
    };
    let net = network(graph)?;
    let cores: Vec<u32> = net
        .layers
        .iter()
        .map(|l| match mapping.layers.get(&l.node).map(Vec::as_slice) {
            Some([s]) if s.start == 0 && s.end == l.neuron_shape[0] => Ok(s.core),
            _ => Err(bad(format!(
                "layer {}: a speck layer takes exactly one whole core",
                describe(graph, l.node)
            ))),
        })
        .collect::<Result<_, _>>()?;
    let art = nmc_speck::lower(&net, &cores, &nmc_speck::speck(), source_hash, timesteps)
        .map_err(|e| bad(e.to_string()))?;
    Ok(crate::driver::timed("encode", || nmc_speck::encode(&art)))
}

pub(super) fn describe_text() -> String {
    let s = nmc_speck::speck();
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
         stride {:?}; padding 0..={}; sum pooling {:?}; ≤ {} destinations per layer\n  \
         weights {}-bit, bias {}-bit, state {}-bit; dvs input {d}×{d}, {} polarities\n  \
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
        nmc_speck::DEFAULT_TIMESTEPS,
        k = s.max_kernel,
        i = s.max_input,
        o = s.max_output,
        d = s.dvs_size,
    ));
    out
}

pub(super) fn describe_json() -> serde_json::Value {
    let s = nmc_speck::speck();
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
        "default_timesteps": nmc_speck::DEFAULT_TIMESTEPS,
    })
}

/// The partitioner's view, for completeness: Speck maps by matching ([`partition`]), never by
/// the generic partitioners, but a caller asking for a core model gets a correct one: nine cores,
/// whole layers only, a layer fits when some core holds it.
pub(super) fn core_model() -> Box<dyn CoreModel> {
    Box::new(SpeckCores)
}

struct SpeckCores;

impl CoreModel for SpeckCores {
    fn cores_available(&self) -> usize {
        nmc_speck::speck().cores.len()
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, String> {
        let net = nmc_speck::extract(graph, &nmc_speck::speck()).map_err(|e| e.to_string())?;
        let l = net
            .layers
            .iter()
            .find(|l| l.node == layer)
            .ok_or_else(|| format!("{layer} is not a speck layer"))?;
        Ok(Box::new(SpeckLayerSizer {
            memory: l.memory,
            channels: l.neuron_shape[0],
        }))
    }
    fn location(&self, core: usize) -> CoreLoc {
        loc(core)
    }
}

struct SpeckLayerSizer {
    memory: nmc_speck::MemoryUse,
    channels: u32,
}

impl LayerSizer for SpeckLayerSizer {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), String> {
        if (start, end) != (0, self.channels) {
            return Err("a speck layer cannot be split across cores".into());
        }
        if nmc_speck::speck().cores.iter().any(|c| self.memory.fits(c)) {
            Ok(())
        } else {
            Err("the layer fits no speck core".into())
        }
    }
    fn min_cores(&self) -> usize {
        1
    }
}

pub(super) fn to_json(a: &nmc_speck::Artifact) -> serde_json::Value {
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
                "threshold_high": l.threshold_high,
                "threshold_low": l.threshold_low,
                "return_to_zero": l.return_to_zero,
                "destinations": dests,
                "monitor": l.monitor_enable,
            })
        })
        .collect();
    serde_json::json!({
        "target": "speck",
        "format_version": a.header.as_ref().map(|h| h.format_version),
        "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
        "timesteps": a.header.as_ref().map(|h| h.timesteps),
        "dvs_input": a.dvs_layer.as_ref().map(|d| d.pass_sensor_events),
        "layers": layers,
        "cores_used": a.cnn_layers.iter().filter(|l| l.used).count(),
    })
}

fn timesteps_of(a: &nmc_speck::Artifact, t: Option<u32>) -> Result<u32, String> {
    let t = t
        .or(a.header.as_ref().map(|h| h.timesteps).filter(|t| *t > 0))
        .unwrap_or(nmc_speck::DEFAULT_TIMESTEPS);
    check_timesteps(t)?;
    Ok(t)
}

/// Timesteps must be in `1..=MAX_TIMESTEPS`.
pub(super) fn check_timesteps(t: u32) -> Result<(), String> {
    if t == 0 || t > nmc_speck::MAX_TIMESTEPS {
        return Err(format!(
            "{t} timesteps: speck runs 1..={} timesteps",
            nmc_speck::MAX_TIMESTEPS
        ));
    }
    Ok(())
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
                target: "speck".into(),
                samples: n,
                timesteps,
                ..Default::default()
            },
            bounds: Vec::new(),
            workload: [0; 3],
        }
    }

    fn add(&mut self, r: &nmc_speck::PerfReport) {
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
            p.syn_ops += c.syn_ops;
            // Every synaptic operation reads one kernel-memory entry.
            p.mem_reads += c.syn_ops;
            p.neuron_updates += c.neuron_updates;
            p.msgs_in += c.events_in;
            p.msgs_out += c.events_out;
            b[c.bound() as usize] += 1;
        }
        if let Some(c) = r.cores.iter().find(|c| c.id == r.slowest_core) {
            self.workload[c.bound() as usize] += 1;
        }
    }

    fn finish(mut self) -> PerfSummary {
        super::finish_perf(&mut self.perf, &self.bounds, &self.workload);
        self.perf
    }
}

fn output_spec(a: &nmc_speck::Artifact) -> Result<&nmc_speck::artifact::OutputSpec, String> {
    a.output
        .as_ref()
        .ok_or_else(|| "artifact has no output".into())
}

/// The emulator of an artifact with the cost constants `params` override.
fn emulator(
    a: &nmc_speck::Artifact,
    params: &super::ChipParams,
) -> Result<nmc_speck::Emulator, String> {
    let cost = spec_with(params).map_err(|e| e.to_string())?.cost;
    Ok(nmc_speck::Emulator::new(a)
        .map_err(|e| e.to_string())?
        .with_cost(cost))
}

/// Dense samples, rate-encoded over `timesteps` (default: the artifact's).
pub(super) fn run(
    a: &nmc_speck::Artifact,
    samples: &Array,
    timesteps: Option<u32>,
    params: &super::ChipParams,
) -> Result<RunResult, String> {
    let input = a.input.as_ref().ok_or("artifact has no input")?;
    let per: usize = input.shape.iter().map(|d| *d as usize).product();
    let xs = split_samples(samples, per, &input.shape)?;
    let t = timesteps_of(a, timesteps)?;
    let mut emu = emulator(a, params)?;
    let runs = xs
        .iter()
        .map(|x| emu.run_dense(x, t, false).map_err(|e| e.to_string()));
    collect(a, runs, xs.len(), t)
}

/// One event stream (`x, y, t, p`), binned into `timesteps` steps.
pub(super) fn run_events(
    a: &nmc_speck::Artifact,
    events: &EventArray,
    timesteps: Option<u32>,
    params: &super::ChipParams,
) -> Result<RunResult, String> {
    let t = timesteps_of(a, timesteps)?;
    let binned = bin(a, events, t)?;
    let mut emu = emulator(a, params)?;
    let run = emu.run_events(&binned, false).map_err(|e| e.to_string());
    collect(a, std::iter::once(run), 1, t)
}

/// Bins an event stream for the artifact's input map.
pub(super) fn bin(
    a: &nmc_speck::Artifact,
    events: &EventArray,
    timesteps: u32,
) -> Result<nmc_speck::events::Binned, String> {
    let input = a.input.as_ref().ok_or("artifact has no input")?;
    let map = input.map.map(|m| m.to_chw()).unwrap_or_default();
    let dvs: Vec<nmc_speck::DvsEvent> = (0..events.len())
        .map(|i| nmc_speck::DvsEvent {
            x: events.x[i],
            y: events.y[i],
            t: events.t[i],
            p: events.p[i],
        })
        .collect();
    nmc_speck::bin(&dvs, map, timesteps)
}

fn collect(
    a: &nmc_speck::Artifact,
    runs: impl Iterator<Item = Result<nmc_speck::RunOut, String>>,
    n: usize,
    t: u32,
) -> Result<RunResult, String> {
    let output = output_spec(a)?;
    let mut shape = vec![n];
    shape.extend(output.shape.iter().map(|d| *d as usize));
    let mut outputs = Array {
        shape,
        data: Vec::new(),
    };
    let mut int_outputs = Vec::with_capacity(n);
    let mut summary = Summary::new(n, t);
    for r in runs {
        let r = r?;
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
    })
}

/// The spec with cost constants overridden (names as in `nmc targets --params`).
fn spec_with(params: &super::ChipParams) -> Result<nmc_speck::ChipSpec, Error> {
    let mut spec = nmc_speck::speck();
    let names: Vec<&str> = spec.cost.entries().iter().map(|e| e.0).collect();
    super::override_costs(
        "speck",
        &mut spec.cost,
        &names,
        nmc_speck::spec::CostModel::get_mut,
        params,
    )
    .map_err(Error::Usage)?;
    Ok(spec)
}

pub(super) fn cost_params(params: &super::ChipParams) -> Result<Vec<super::CostParam>, Error> {
    Ok(super::cost_param_list(&spec_with(params)?.cost.entries()))
}

/// The floorline analysis with per-core loads measured by the emulator on `samples`, per
/// timestep (Speck is asynchronous: no barrier; the step is the slowest core's work).
pub(super) fn analyze_measured(
    artifact: &[u8],
    samples: &Array,
    params: &super::ChipParams,
) -> Result<(crate::cost::Analysis, crate::cost::Constants), Error> {
    let a = nmc_speck::decode(artifact).map_err(|e| Error::Lower {
        target: "speck",
        message: e.to_string(),
    })?;
    let spec = spec_with(params)?;
    let input = a.input.as_ref().ok_or_else(|| Error::Input {
        message: "artifact has no input".into(),
    })?;
    let per: usize = input.shape.iter().map(|d| *d as usize).product();
    let xs =
        split_samples(samples, per, &input.shape).map_err(|message| Error::Input { message })?;
    let t = timesteps_of(&a, None).map_err(|message| Error::Input { message })?;
    let mut emu = nmc_speck::Emulator::new(&a)
        .map_err(|e| Error::Input {
            message: e.to_string(),
        })?
        .with_cost(spec.cost.clone());
    // cnn_layers[k] is core k's configuration.
    let layer_on = |core: u32| {
        a.cnn_layers
            .get(core as usize)
            .filter(|l| l.used)
            .map(|l| l.name.clone())
            .unwrap_or_default()
    };
    let mut loads: Vec<crate::cost::CoreLoad> = Vec::new();
    let steps = (xs.len().max(1) as f64) * f64::from(t);
    for x in &xs {
        let run = emu.run_dense(x, t, false).map_err(|e| Error::Input {
            message: e.to_string(),
        })?;
        if loads.is_empty() {
            loads = run
                .perf
                .cores
                .iter()
                .map(|c| crate::cost::CoreLoad {
                    id: c.id,
                    x: c.id,
                    layer: layer_on(c.id),
                    ..Default::default()
                })
                .collect();
        }
        for (l, c) in loads.iter_mut().zip(&run.perf.cores) {
            l.s += c.syn_ops as f64 / steps;
            l.d += c.neuron_updates as f64 / steps;
            l.m_in += c.events_in as f64 / steps;
            l.m_out += c.events_out as f64 / steps;
        }
    }
    for l in &mut loads {
        // Speck's cores decode their input events; sending is the router's work.
        l.m = l.m_in;
    }
    let c = &spec.cost;
    let k = crate::cost::Constants {
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
    let activity = format!(
        "loads measured by the emulator on {} sample(s) × {t} timesteps",
        xs.len()
    );
    Ok((
        crate::cost::evaluate("speck", loads, 0.0, 0.0, t, 1, &k, &activity),
        k,
    ))
}
