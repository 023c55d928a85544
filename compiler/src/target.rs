//! The targets nmc compiles for, and the one place that calls into the backend crates: their
//! specs, resource models, lowering, artifact decoding and emulators.

use crate::npy::Array;
use crate::partition::{CoreModel, LayerSizer};
use crate::Error;
use nmc_ir::{CoreLoc, Graph, Mapping, NodeId, QuantSpec};

/// A chip nmc can compile for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Target {
    /// Intel Loihi 2.
    Loihi2,
}

impl Target {
    /// All targets.
    pub fn all() -> &'static [Target] {
        &[Target::Loihi2]
    }

    /// The target's name (also the default artifact extension).
    pub fn name(self) -> &'static str {
        match self {
            Target::Loihi2 => "loihi2",
        }
    }

    /// Integer widths for quantisation.
    pub fn quant_spec(self) -> QuantSpec {
        match self {
            Target::Loihi2 => nmc_loihi2::loihi2().quant_spec(),
        }
    }

    /// The partitioner's view of the chip.
    pub fn core_model(self, chips: u32) -> Box<dyn CoreModel> {
        match self {
            Target::Loihi2 => Box::new(Loihi2Cores(nmc_loihi2::loihi2().with_chips(chips))),
        }
    }

    /// Lowers a quantised, mapped graph; returns the artifact's bytes.
    pub fn lower(
        self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        chips: u32,
    ) -> Result<Vec<u8>, Error> {
        match self {
            Target::Loihi2 => {
                let spec = nmc_loihi2::loihi2().with_chips(chips);
                let art = nmc_loihi2::lower(graph, mapping, source_hash, &spec).map_err(|e| {
                    Error::Lower {
                        target: self.name(),
                        message: e.to_string(),
                    }
                })?;
                Ok(crate::driver::timed("encode", || nmc_loihi2::encode(&art)))
            }
        }
    }

    /// Human-readable limits for `nmc targets`.
    pub fn describe(self) -> String {
        match self {
            Target::Loihi2 => {
                let s = nmc_loihi2::loihi2();
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
        }
    }

    /// Machine-readable limits for `nmc targets --format json`.
    pub fn describe_json(self) -> serde_json::Value {
        match self {
            Target::Loihi2 => {
                let s = nmc_loihi2::loihi2();
                serde_json::json!({
                    "name": "loihi2",
                    "cores_per_chip": s.cores_per_chip,
                    "mesh": [s.mesh_width, s.mesh_height],
                    "max_neurons_per_core": s.max_neurons_per_core,
                    "synapse_bytes_per_core": s.synapse_bytes_per_core,
                    "weight_bits": s.weight_bits,
                    "state_bits": s.state_bits,
                    "max_act_bits": s.max_act_bits,
                })
            }
        }
    }
}

struct Loihi2Cores(nmc_loihi2::ChipSpec);

impl CoreModel for Loihi2Cores {
    fn cores_available(&self) -> usize {
        self.0.total_cores() as usize
    }
    fn sizer<'g>(
        &self,
        graph: &'g Graph,
        layer: NodeId,
    ) -> Result<Box<dyn LayerSizer + 'g>, String> {
        let fp = nmc_loihi2::LayerFootprint::of(graph, layer).map_err(|e| e.to_string())?;
        Ok(Box::new(Loihi2Layer {
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

struct Loihi2Layer {
    spec: nmc_loihi2::ChipSpec,
    fp: nmc_loihi2::LayerFootprint,
}

impl LayerSizer for Loihi2Layer {
    fn check_slice(&self, start: u32, end: u32) -> Result<(), String> {
        self.spec
            .check_slice(&self.fp.usage(start, end))
            .map_err(|e| e.to_string())
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
}

impl LoadedArtifact {
    /// Whether `bytes` start like an nmc artifact of any target.
    pub fn is_artifact(bytes: &[u8]) -> bool {
        nmc_loihi2::is_artifact(bytes)
    }

    /// Decodes and validates an artifact.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        nmc_loihi2::decode(bytes)
            .map(LoadedArtifact::Loihi2)
            .map_err(|e| e.to_string())
    }

    /// The readable listing.
    pub fn listing(&self) -> String {
        match self {
            LoadedArtifact::Loihi2(a) => nmc_loihi2::listing(a),
        }
    }

    /// The JSON form of `inspect --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            LoadedArtifact::Loihi2(a) => {
                let layers: Vec<serde_json::Value> = a
                    .populations
                    .iter()
                    .map(|p| {
                        let cores: Vec<serde_json::Value> = p
                            .slices
                            .iter()
                            .map(|s| {
                                let c = a.cores.iter().find(|c| c.id == s.core);
                                serde_json::json!({
                                    "core": s.core,
                                    "channels": [s.start, s.end],
                                    "chip": c.map(|c| c.chip),
                                    "x": c.map(|c| c.x),
                                    "y": c.map(|c| c.y),
                                })
                            })
                            .collect();
                        serde_json::json!({
                            "name": p.name,
                            "shape": p.shape,
                            "cores": cores,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "target": "loihi2",
                    "format_version": a.header.as_ref().map(|h| h.format_version),
                    "source_hash": a.header.as_ref().map(|h| format!("{:#018x}", h.source_hash)),
                    "layers": layers,
                    "cores_used": a.cores.len(),
                })
            }
        }
    }

    /// Runs samples (`[N, …]` floats, quantised here with the artifact's input grid).
    pub fn run(&self, samples: &Array, timesteps: Option<u32>) -> Result<RunResult, String> {
        match self {
            LoadedArtifact::Loihi2(a) => run_loihi2(a, samples, timesteps),
        }
    }
}

fn run_loihi2(
    a: &nmc_loihi2::Artifact,
    samples: &Array,
    timesteps: Option<u32>,
) -> Result<RunResult, String> {
    let spec =
        nmc_loihi2::loihi2().with_chips(a.header.as_ref().map(|h| h.chips).unwrap_or(1).max(1));
    let input = a.inputs.first().ok_or("artifact has no inputs")?;
    if a.inputs.len() != 1 {
        return Err(format!(
            "the artifact has {} inputs; nmc run reads one .npy",
            a.inputs.len()
        ));
    }
    let per: usize = input.shape.iter().map(|d| *d as usize).product();
    let n = if samples.shape.len() > 1 && samples.shape[1..].iter().product::<usize>() == per {
        samples.shape[0]
    } else if samples.data.len() == per {
        1
    } else {
        return Err(format!(
            "array of shape {:?} does not hold samples of the input shape {:?}",
            samples.shape, input.shape
        ));
    };
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: input.min,
        max: input.max,
    };
    let output = a.outputs.first().ok_or("artifact has no outputs")?;
    let t = timesteps.unwrap_or_else(|| nmc_loihi2::min_timesteps(a));
    let mut emu = nmc_loihi2::Emulator::new(a, &spec).map_err(|e| e.to_string())?;
    let mut out_shape = vec![n];
    out_shape.extend(output.shape.iter().map(|d| *d as usize));
    let mut outputs = Array {
        shape: out_shape,
        data: Vec::new(),
    };
    let mut int_outputs = Vec::with_capacity(n);
    let mut perf = PerfSummary {
        target: "loihi2".into(),
        samples: n,
        timesteps: t,
        ..Default::default()
    };
    let mut bounds: Vec<[u64; 3]> = Vec::new();
    for i in 0..n {
        let x: Vec<i64> = samples.data[i * per..(i + 1) * per]
            .iter()
            .map(|v| nmc_ir::quantize(*v, &q))
            .collect();
        let (outs, report) = emu.run(&[x], t).map_err(|e| e.to_string())?;
        let o = outs
            .into_iter()
            .next()
            .ok_or("emulator returned no outputs")?;
        outputs
            .data
            .extend(o.iter().map(|v| *v as f32 * output.scale));
        int_outputs.push(o);
        perf.latency_ns += report.latency_ns;
        perf.energy_nj += report.energy_nj;
        perf.synaptic_events += report.synaptic_events;
        if perf.cores.is_empty() {
            perf.cores = report
                .cores
                .iter()
                .map(|c| CorePerf {
                    id: c.id,
                    chip: c.chip,
                    x: c.x,
                    y: c.y,
                    ..Default::default()
                })
                .collect();
            bounds = vec![[0; 3]; report.cores.len()];
        }
        for ((p, c), b) in perf.cores.iter_mut().zip(&report.cores).zip(&mut bounds) {
            p.syn_ops += c.syn_ops;
            p.mem_reads += c.mem_reads;
            p.neuron_updates += c.neuron_updates;
            p.msgs_in += c.msgs_in;
            p.msgs_out += c.msgs_out;
            b[c.bound as usize] += 1;
        }
    }
    for (p, b) in perf.cores.iter_mut().zip(&bounds) {
        let k = (0..3)
            .max_by_key(|&k| (b[k], std::cmp::Reverse(k)))
            .unwrap_or(0);
        p.bound = ["memory", "compute", "traffic"][k].to_string();
    }
    if n > 0 {
        perf.latency_ns /= n as f64;
        perf.energy_nj /= n as f64;
    }
    Ok(RunResult {
        outputs,
        int_outputs,
        perf,
    })
}
