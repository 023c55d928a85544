//! The targets nmc compiles for. Each target's adapter (one file per chip) is the only place that
//! calls into its backend crate: spec, resource model, lowering, artifact decoding, emulation.
//! Adding a target means adding a file here and one arm to each `match` below.

mod akd1000;
mod loihi2;
mod speck;

use crate::driver::Options;
use crate::npy::{Array, EventArray};
use crate::partition::search::{Genome, Problem};
use crate::partition::CoreModel;
use crate::passes::RateOptions;
use crate::Error;
use nmc_ir::{Graph, Mapping, QuantSpec};

/// What an ONNX model means on a chip (ARCHITECTURE.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// Quantised ANN: integer activations as graded events (`passes::quantize`).
    Graded,
    /// ReLU → integrate-and-fire over T timesteps; outputs are spike counts
    /// (`passes::quantize_rate`, `Interpreter::run_steps`).
    Rate,
}

/// A chip nmc can compile for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Target {
    /// Intel Loihi 2.
    Loihi2,
    /// BrainChip AKD1000 (Akida 1.0).
    Akd1000,
    /// SynSense Speck (DYNAP-CNN).
    Speck,
}

impl Target {
    /// All targets.
    pub fn all() -> &'static [Target] {
        &[Target::Loihi2, Target::Akd1000, Target::Speck]
    }

    /// The target's name (also the default artifact extension).
    pub fn name(self) -> &'static str {
        match self {
            Target::Loihi2 => "loihi2",
            Target::Akd1000 => "akd1000",
            Target::Speck => "speck",
        }
    }

    /// The execution mode models compile to.
    pub fn mode(self) -> ExecMode {
        match self {
            Target::Loihi2 | Target::Akd1000 => ExecMode::Graded,
            Target::Speck => ExecMode::Rate,
        }
    }

    /// What the e-graph's extraction cost may assume the chip runs (plain flags, so the e-graph
    /// module stays free of backend crates). Speck pools events by summing (sinabs turns
    /// AvgPool2d into SumPool2d); the Loihi 2 quantiser and emulator take both; the Akida
    /// quantiser takes an average pool only (a global one, which it fuses before the activation),
    /// never a sum pool after an activation.
    pub fn egraph_target(self) -> crate::egraph::cost::CostTarget {
        use crate::egraph::cost::CostTarget;
        match self {
            Target::Loihi2 => CostTarget {
                avg_pool: true,
                sum_pool: true,
                concat: true,
            },
            Target::Akd1000 => CostTarget {
                avg_pool: true,
                sum_pool: false,
                concat: false,
            },
            Target::Speck => CostTarget {
                avg_pool: false,
                sum_pool: true,
                concat: false,
            },
        }
    }

    /// Widths of rate-mode quantisation (`None`: the target has no rate mode).
    pub fn rate_options(self) -> Option<RateOptions> {
        match self {
            Target::Loihi2 | Target::Akd1000 => None,
            Target::Speck => Some(speck::rate_options()),
        }
    }

    /// Timesteps a run takes by default (`None`: graded targets choose per artifact).
    pub fn default_timesteps(self) -> Option<u32> {
        match self {
            Target::Loihi2 | Target::Akd1000 => None,
            Target::Speck => Some(nmc_speck::DEFAULT_TIMESTEPS),
        }
    }

    /// Integer widths for quantisation.
    pub fn quant_spec(self) -> QuantSpec {
        match self {
            Target::Loihi2 => loihi2::quant_spec(),
            Target::Akd1000 => akd1000::quant_spec(),
            // Unused (Speck compiles in rate mode); its integer widths for reference.
            Target::Speck => {
                let s = nmc_speck::speck();
                QuantSpec {
                    weight_bits: s.weight_bits,
                    even_weights: false,
                    weight_exp_range: (0, 0),
                    state_bits: s.state_bits,
                    act_bits: 8,
                    max_act_bits: s.state_bits,
                    bias_mant_bits: s.bias_bits,
                    bias_exp_max: 0,
                }
            }
        }
    }

    /// The partitioner's view of the chip.
    pub fn core_model(self, chips: u32) -> Box<dyn CoreModel> {
        match self {
            Target::Loihi2 => loihi2::core_model(chips),
            Target::Akd1000 => akd1000::core_model(),
            Target::Speck => speck::core_model(),
        }
    }

    /// The target's own mapping of a quantised graph, for targets whose mapper replaces the
    /// generic partitioners (AKD1000: layer kinds, NP types, spatial bands; Speck: layer → core
    /// matching); `None` otherwise.
    pub fn own_mapping(self, graph: &Graph, chips: u32) -> Option<Result<Mapping, Error>> {
        match self {
            Target::Loihi2 => None,
            Target::Akd1000 => Some(akd1000::partition(graph, chips)),
            Target::Speck => Some(speck::partition(graph, chips)),
        }
    }

    /// The space the mapping searches (`--partition floorline|evolve`) explore on this target,
    /// for a quantised graph: Loihi 2 chooses how many cores each layer takes and where they
    /// sit; the AKD1000 how many NPs each layer takes (channel groups) and which NPs; Speck which
    /// core each layer takes.
    pub fn search_space<'g>(self, graph: &'g Graph, chips: u32) -> Result<SearchSpace<'g>, Error> {
        match self {
            Target::Loihi2 => uniform_space(self, graph, self.core_model(chips)),
            Target::Akd1000 => akd1000::search_space(graph, chips),
            Target::Speck => speck::search_space(graph, chips),
        }
    }

    /// Lowers a quantised, mapped graph; returns the artifact's bytes.
    pub fn lower(
        self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        opts: &Options,
    ) -> Result<Vec<u8>, Error> {
        match self {
            Target::Loihi2 => loihi2::lower(graph, mapping, source_hash, opts.chips),
            Target::Akd1000 => akd1000::lower(graph, mapping, source_hash),
            Target::Speck => speck::lower(
                graph,
                mapping,
                source_hash,
                opts.timesteps.unwrap_or(nmc_speck::DEFAULT_TIMESTEPS),
            ),
        }
    }

    /// Human-readable limits for `nmc targets`.
    pub fn describe(self) -> String {
        match self {
            Target::Loihi2 => loihi2::describe(),
            Target::Akd1000 => akd1000::describe(),
            Target::Speck => speck::describe_text(),
        }
    }

    /// The cost-model constants with units and sources, after `params` overrides.
    pub fn cost_params(self, params: &ChipParams) -> Result<Vec<CostParam>, Error> {
        match self {
            Target::Loihi2 => loihi2::cost_params(params),
            Target::Akd1000 => akd1000::cost_params(params),
            Target::Speck => speck::cost_params(params),
        }
    }

    /// The floorline analysis of an artifact of this target under an activity profile (measured
    /// on the quantised graph it was lowered from), with the constants it used.
    pub fn analyze(
        self,
        artifact: &[u8],
        profile: &crate::cost::ActivityProfile,
        chips: u32,
        params: &ChipParams,
    ) -> Result<(crate::cost::Analysis, crate::cost::Constants), Error> {
        match self {
            Target::Loihi2 => loihi2::analyze(artifact, profile, chips, params),
            Target::Akd1000 | Target::Speck => Err(Error::Usage(format!(
                "the {} floorline analysis uses loads measured by its emulator: call analyze_measured",
                self.name()
            ))),
        }
    }

    /// Whether [`Target::analyze`] models loads from an activity profile (else the loads are
    /// measured by the emulator: [`Target::analyze_measured`]).
    pub fn models_loads(self) -> bool {
        matches!(self, Target::Loihi2)
    }

    /// The floorline analysis with per-core loads measured by the target's emulator on `samples`.
    pub fn analyze_measured(
        self,
        artifact: &[u8],
        samples: &Array,
        params: &ChipParams,
    ) -> Result<(crate::cost::Analysis, crate::cost::Constants), Error> {
        match self {
            Target::Loihi2 => Err(Error::Usage("loihi2 models its loads: call analyze".into())),
            Target::Akd1000 => akd1000::analyze_measured(artifact, samples, params),
            Target::Speck => speck::analyze_measured(artifact, samples, params),
        }
    }

    /// Machine-readable limits for `nmc targets --format json`.
    pub fn describe_json(self) -> serde_json::Value {
        match self {
            Target::Loihi2 => loihi2::describe_json(),
            Target::Akd1000 => akd1000::describe_json(),
            Target::Speck => speck::describe_json(),
        }
    }
}

/// A decoder from genomes to mappings (`None`: the genome does not map).
pub type Decoder<'g> = Box<dyn Fn(&Genome) -> Option<Mapping> + Sync + 'g>;

/// What a mapping search explores on a target ([`Target::search_space`]).
pub struct SearchSpace<'g> {
    /// The genome's shape and constraints.
    pub problem: Problem,
    /// Name of the layer behind each problem index (as the floorline analysis names layers).
    pub names: Vec<String>,
    /// The default mapping, which the searches start from and are measured against.
    pub greedy: Mapping,
    /// Genome → mapping.
    pub decode: Decoder<'g>,
    /// Why the search cannot change the latency on this target, where that is so.
    pub note: Option<String>,
}

/// The name the floorline analysis gives a layer node.
pub(crate) fn layer_name(graph: &Graph, id: nmc_ir::NodeId) -> String {
    graph
        .node(id)
        .name
        .clone()
        .unwrap_or_else(|| id.to_string())
}

/// The search space of a target whose cores are interchangeable (Loihi 2): layers in
/// topological order, each on its greedy cores plus extra ones, any core anywhere.
fn uniform_space<'g>(
    target: Target,
    graph: &'g Graph,
    model: Box<dyn CoreModel>,
) -> Result<SearchSpace<'g>, Error> {
    let fit = |e: crate::partition::FitError| Error::Fit {
        target: target.name(),
        message: e.to_string(),
    };
    let greedy = crate::partition::greedy(graph, model.as_ref()).map_err(fit)?;
    let order = graph.topo_order().map_err(|c| Error::Lower {
        target: target.name(),
        message: format!("the graph has a cycle at {}", c.0),
    })?;
    let layers: Vec<nmc_ir::NodeId> = order
        .into_iter()
        .filter(|id| greedy.layers.contains_key(id))
        .collect();
    let problem = Problem::uniform(
        layers
            .iter()
            .map(|l| greedy.layers[l].len() as u32)
            .collect(),
        layers
            .iter()
            .map(|&l| graph.ty(l).shape.first().copied().unwrap_or(1) as u32)
            .collect(),
        (0..model.cores_available())
            .map(|c| model.location(c))
            .collect(),
    );
    Ok(SearchSpace {
        problem,
        names: layers.iter().map(|&l| layer_name(graph, l)).collect(),
        greedy,
        decode: Box::new(move |g: &Genome| {
            crate::partition::assign(graph, model.as_ref(), &g.extra, Some(&g.placement)).ok()
        }),
        note: None,
    })
}

/// Overrides of a target's cost-model constants (`--chip-params file.toml`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChipParams {
    /// Constant name and new value, in file order.
    pub values: Vec<(String, f64)>,
}

impl ChipParams {
    /// Reads `name = value` pairs from a TOML file, at the top level or under `[cost]`.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |m: String| Error::Usage(format!("{}: {m}", path.display()));
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        let table = match table.get("cost") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => table,
        };
        let mut values = Vec::new();
        for (k, v) in table {
            let v = match v {
                toml::Value::Float(f) => f,
                toml::Value::Integer(i) => i as f64,
                other => {
                    return Err(bad(format!(
                        "`{k}` must be a number, is {}",
                        other.type_str()
                    )))
                }
            };
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("`{k}` must be a finite non-negative number")));
            }
            values.push((k, v));
        }
        Ok(ChipParams { values })
    }
}

/// Applies `params` to a cost model through its by-name accessor; an unknown name is an error
/// that lists the known ones.
fn override_costs<C>(
    target: &str,
    cost: &mut C,
    names: &[&str],
    get_mut: for<'c> fn(&'c mut C, &str) -> Option<&'c mut nmc_ir::Cost>,
    params: &ChipParams,
) -> Result<(), String> {
    for (name, value) in &params.values {
        let c = get_mut(cost, name).ok_or_else(|| {
            format!(
                "unknown {target} cost constant `{name}` (known: {})",
                names.join(", ")
            )
        })?;
        c.value = *value;
    }
    Ok(())
}

/// A cost model's constants, for `nmc targets --params`.
fn cost_param_list(entries: &[(&'static str, nmc_ir::Cost)]) -> Vec<CostParam> {
    entries
        .iter()
        .map(|(name, c)| CostParam {
            name: name.to_string(),
            value: c.value,
            unit: c.unit.to_string(),
            source: c.source.to_string(),
        })
        .collect()
}

/// One cost-model constant, for `nmc targets --params`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CostParam {
    /// Name (as in override files).
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Where the number comes from, or "assumed".
    pub source: String,
}

/// Per-core figures of a run, summed over samples and timesteps.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CorePerf {
    /// Logical core id.
    pub id: u32,
    /// Chip.
    pub chip: u32,
    /// Mesh column.
    pub x: u32,
    /// Mesh row.
    pub y: u32,
    /// Synaptic operations.
    pub syn_ops: u64,
    /// Synaptic memory words read.
    pub mem_reads: u64,
    /// Neuron updates.
    pub neuron_updates: u64,
    /// Messages received.
    pub msgs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// The bound that held most often over the run: "memory", "compute" or "traffic".
    pub bound: String,
    /// Slot of the unit in its mesh node (AKD1000 NPs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// What the unit is configured as (AKD1000: "HRC", "CNP1", "FNP3", …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_type: Option<String>,
}

/// The `nmc run --report` JSON.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PerfSummary {
    /// Target name.
    pub target: String,
    /// Samples run.
    pub samples: usize,
    /// Timesteps per sample.
    pub timesteps: u32,
    /// Mean latency per inference (ns).
    pub latency_ns: f64,
    /// Mean energy per inference (nJ).
    pub energy_nj: f64,
    /// Mean time of the slowest timestep of an inference (ns): the emulated `T_step`.
    pub t_step_ns: f64,
    /// The bound of the slowest timesteps, most often over the samples.
    pub workload_bound: String,
    /// Total synaptic events.
    pub synaptic_events: u64,
    /// Per-core counters, summed over all samples.
    pub cores: Vec<CorePerf>,
    /// Frames per second a pipelined chip sustains (AKD1000: 1 / the slowest NP's time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_fps: Option<f64>,
}

/// Closes a run report: each core's and the workload's bound become the one that held most often
/// (ties go to memory, then compute), and the sums over samples become means per inference.
pub(crate) fn finish_perf(perf: &mut PerfSummary, core_bounds: &[[u64; 3]], workload: &[u64; 3]) {
    let most = |b: &[u64; 3]| {
        ["memory", "compute", "traffic"][(0..3).max_by_key(|&k| (b[k], 3 - k)).unwrap_or(0)]
    };
    for (p, b) in perf.cores.iter_mut().zip(core_bounds) {
        p.bound = most(b).to_string();
    }
    perf.workload_bound = most(workload).to_string();
    if perf.samples > 0 {
        let n = perf.samples as f64;
        perf.latency_ns /= n;
        perf.energy_nj /= n;
        perf.t_step_ns /= n;
    }
}

/// What `run` returns.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Dequantised outputs of the first output, `[N, …]`.
    pub outputs: Array,
    /// Integer outputs of the first output, one vector per sample (for bit-exact checks).
    pub int_outputs: Vec<Vec<i64>>,
    /// Performance figures.
    pub perf: PerfSummary,
}

/// A decoded artifact of any target.
pub enum LoadedArtifact {
    /// Loihi 2.
    Loihi2(nmc_loihi2::Artifact),
    /// AKD1000.
    Akd1000(nmc_akd1000::Artifact),
    /// Speck.
    Speck(nmc_speck::Artifact),
}

impl LoadedArtifact {
    /// Whether `bytes` start like an nmc artifact of any target.
    pub fn is_artifact(bytes: &[u8]) -> bool {
        nmc_loihi2::is_artifact(bytes)
            || nmc_akd1000::is_artifact(bytes)
            || nmc_speck::is_artifact(bytes)
    }

    /// Decodes and validates an artifact.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if nmc_loihi2::is_artifact(bytes) {
            return nmc_loihi2::decode(bytes)
                .map(LoadedArtifact::Loihi2)
                .map_err(|e| e.to_string());
        }
        if nmc_akd1000::is_artifact(bytes) {
            return nmc_akd1000::decode(bytes)
                .map(LoadedArtifact::Akd1000)
                .map_err(|e| e.to_string());
        }
        if nmc_speck::is_artifact(bytes) {
            return nmc_speck::decode(bytes)
                .map(LoadedArtifact::Speck)
                .map_err(|e| e.to_string());
        }
        Err("not an nmc artifact (unknown magic bytes)".into())
    }

    /// The target it was compiled for.
    pub fn target(&self) -> Target {
        match self {
            LoadedArtifact::Loihi2(_) => Target::Loihi2,
            LoadedArtifact::Akd1000(_) => Target::Akd1000,
            LoadedArtifact::Speck(_) => Target::Speck,
        }
    }

    /// The readable listing.
    pub fn listing(&self) -> String {
        match self {
            LoadedArtifact::Loihi2(a) => nmc_loihi2::listing(a),
            LoadedArtifact::Akd1000(a) => nmc_akd1000::listing(a),
            LoadedArtifact::Speck(a) => nmc_speck::listing(a),
        }
    }

    /// The JSON form of `inspect --format json` (a `layers` array with names and placement).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            LoadedArtifact::Loihi2(a) => loihi2::to_json(a),
            LoadedArtifact::Akd1000(a) => akd1000::to_json(a),
            LoadedArtifact::Speck(a) => speck::to_json(a),
        }
    }

    /// Runs samples (`[N, …]` floats, quantised here with the artifact's input grid) with the
    /// target's default cost constants.
    pub fn run(&self, samples: &Array, timesteps: Option<u32>) -> Result<RunResult, String> {
        self.run_with(samples, timesteps, &ChipParams::default())
    }

    /// [`LoadedArtifact::run`] with cost constants overridden.
    pub fn run_with(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, String> {
        match self {
            LoadedArtifact::Loihi2(a) => loihi2::run(a, samples, timesteps, params),
            // Akida runs a frame through its layer pipeline; there are no timesteps.
            LoadedArtifact::Akd1000(_) if timesteps.is_some_and(|t| t != 1) => {
                Err("the AKD1000 runs each sample once through its layer pipeline; --timesteps does not apply".into())
            }
            LoadedArtifact::Akd1000(a) => akd1000::run(a, samples, params),
            LoadedArtifact::Speck(a) => speck::run(a, samples, timesteps, params),
        }
    }

    /// Runs one DVS-style event stream (`x, y, t, p`), binned into `timesteps` steps.
    pub fn run_events(
        &self,
        events: &EventArray,
        timesteps: Option<u32>,
    ) -> Result<RunResult, String> {
        self.run_events_with(events, timesteps, &ChipParams::default())
    }

    /// [`LoadedArtifact::run_events`] with cost constants overridden.
    pub fn run_events_with(
        &self,
        events: &EventArray,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, String> {
        match self {
            LoadedArtifact::Speck(a) => speck::run_events(a, events, timesteps, params),
            other => Err(format!(
                "event input (a .npy with fields x, y, t, p) is for speck artifacts; this one is for {}",
                other.target().name()
            )),
        }
    }

    /// The per-step input event counts an event stream gives (`[step][input][element]`), for
    /// checking the emulator against `nmc_ir::Interpreter::run_events`.
    pub fn bin_events(
        &self,
        events: &EventArray,
        timesteps: u32,
    ) -> Result<Vec<Vec<Vec<i64>>>, String> {
        match self {
            LoadedArtifact::Speck(a) => {
                speck::check_timesteps(timesteps)?;
                let binned = speck::bin(a, events, timesteps)?;
                let numel = a
                    .input
                    .as_ref()
                    .map_or(0, |i| i.shape.iter().map(|d| *d as usize).product());
                Ok(nmc_speck::events::dense(&binned, numel)
                    .into_iter()
                    .map(|s| vec![s])
                    .collect())
            }
            other => Err(format!(
                "event input is for speck artifacts; this one is for {}",
                other.target().name()
            )),
        }
    }
}

/// Splits `[N, …]` samples (or one unbatched sample) into flat per-sample slices of `per` values.
pub(crate) fn split_samples<'a>(
    samples: &'a Array,
    per: usize,
    shape: &[u32],
) -> Result<Vec<&'a [f32]>, String> {
    let n = if samples.shape.len() > 1 && samples.shape[1..].iter().product::<usize>() == per {
        samples.shape[0]
    } else if samples.data.len() == per {
        1
    } else {
        return Err(format!(
            "array of shape {:?} does not hold samples of the input shape {shape:?}",
            samples.shape
        ));
    };
    Ok((0..n)
        .map(|i| &samples.data[i * per..(i + 1) * per])
        .collect())
}
