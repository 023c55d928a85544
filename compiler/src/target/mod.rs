//! The targets nmc compiles for. Each target's adapter (one file per chip) is the only place that
//! calls into its backend crate: spec, resource model, lowering, artifact decoding, emulation.
//! Adding a target means adding a file here and one arm to each `match` below.

mod loihi2;
mod speck;

use crate::driver::{Options, PartitionKind};
use crate::npy::{Array, EventArray};
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
    /// SynSense Speck (DYNAP-CNN).
    Speck,
}

impl Target {
    /// All targets.
    pub fn all() -> &'static [Target] {
        &[Target::Loihi2, Target::Speck]
    }

    /// The target's name (also the default artifact extension).
    pub fn name(self) -> &'static str {
        match self {
            Target::Loihi2 => "loihi2",
            Target::Speck => "speck",
        }
    }

    /// The execution mode models compile to.
    pub fn mode(self) -> ExecMode {
        match self {
            Target::Loihi2 => ExecMode::Graded,
            Target::Speck => ExecMode::Rate,
        }
    }

    /// Widths of rate-mode quantisation (`None`: the target has no rate mode).
    pub fn rate_options(self) -> Option<RateOptions> {
        match self {
            Target::Loihi2 => None,
            Target::Speck => Some(speck::rate_options()),
        }
    }

    /// Timesteps a run takes by default (`None`: graded targets choose per artifact).
    pub fn default_timesteps(self) -> Option<u32> {
        match self {
            Target::Loihi2 => None,
            Target::Speck => Some(nmc_speck::DEFAULT_TIMESTEPS),
        }
    }

    /// Integer widths for quantisation.
    pub fn quant_spec(self) -> QuantSpec {
        match self {
            Target::Loihi2 => loihi2::quant_spec(),
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
            Target::Speck => speck::core_model(),
        }
    }

    /// Partitions and places a quantised graph: the chosen partitioner over the target's core
    /// model, or the target's own mapping where it has one (Speck: layer → core matching).
    pub fn partition(self, graph: &Graph, opts: &Options) -> Result<Mapping, Error> {
        match self {
            Target::Speck => speck::partition(graph, opts.chips),
            Target::Loihi2 => {
                let model = self.core_model(opts.chips);
                match opts.partition {
                    PartitionKind::Greedy => crate::partition::greedy(graph, model.as_ref()),
                }
                .map_err(|e| Error::Fit {
                    target: self.name(),
                    message: e.to_string(),
                })
            }
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
            Target::Speck => speck::describe_text(),
        }
    }

    /// Machine-readable limits for `nmc targets --format json`.
    pub fn describe_json(self) -> serde_json::Value {
        match self {
            Target::Loihi2 => loihi2::describe_json(),
            Target::Speck => speck::describe_json(),
        }
    }
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
    /// Speck.
    Speck(nmc_speck::Artifact),
}

impl LoadedArtifact {
    /// Whether `bytes` start like an nmc artifact of any target.
    pub fn is_artifact(bytes: &[u8]) -> bool {
        nmc_loihi2::is_artifact(bytes) || nmc_speck::is_artifact(bytes)
    }

    /// Decodes and validates an artifact.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if nmc_loihi2::is_artifact(bytes) {
            return nmc_loihi2::decode(bytes)
                .map(LoadedArtifact::Loihi2)
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
            LoadedArtifact::Speck(_) => Target::Speck,
        }
    }

    /// The readable listing.
    pub fn listing(&self) -> String {
        match self {
            LoadedArtifact::Loihi2(a) => nmc_loihi2::listing(a),
            LoadedArtifact::Speck(a) => nmc_speck::listing(a),
        }
    }

    /// The JSON form of `inspect --format json` (a `layers` array with names and placement).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            LoadedArtifact::Loihi2(a) => loihi2::to_json(a),
            LoadedArtifact::Speck(a) => speck::to_json(a),
        }
    }

    /// Runs samples (`[N, …]` floats, quantised here with the artifact's input grid).
    pub fn run(&self, samples: &Array, timesteps: Option<u32>) -> Result<RunResult, String> {
        match self {
            LoadedArtifact::Loihi2(a) => loihi2::run(a, samples, timesteps),
            LoadedArtifact::Speck(a) => speck::run(a, samples, timesteps),
        }
    }

    /// Runs one DVS-style event stream (`x, y, t, p`), binned into `timesteps` steps.
    pub fn run_events(
        &self,
        events: &EventArray,
        timesteps: Option<u32>,
    ) -> Result<RunResult, String> {
        match self {
            LoadedArtifact::Speck(a) => speck::run_events(a, events, timesteps),
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
