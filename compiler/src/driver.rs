//! The pipeline: import → canonicalize → quantize → partition → lower, with a verifier run after
//! every stage, plus the library entry points that the CLI and build scripts call.

use crate::import;
use crate::npy;
use crate::partition;
use crate::passes::{self, QuantOptions, QuantReport};
use crate::stage::Stage;
use crate::target::Target;
use crate::Error;
use nmc_backend::{Activity, Quantization, TargetOptions};
use nmc_ir::{Graph, Interpreter, Mapping, Value};
use std::path::{Path, PathBuf};

/// How a model is partitioned across cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionKind {
    /// Fewest cores per layer, filled in order (the vendor-style baseline).
    #[default]
    Greedy,
    /// Split the floorline model's bottleneck layer while that helps (deterministic).
    Floorline,
    /// Nested (1+λ) evolution strategy with the emulator in the loop (seeded).
    Evolve,
}

/// Compile options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The chip.
    pub target: Target,
    /// Partitioner.
    pub partition: PartitionKind,
    /// Seed of every random search (`evolve`).
    pub seed: u64,
    /// Calibration inputs (`.npy`, samples along the first axis).
    pub calibrate: Option<PathBuf>,
    /// Activation width override.
    pub act_bits: Option<u32>,
    /// Weight width override (AKD1000: 1, 2 or 4; Loihi 2: a mantissa of 2..=8 bits).
    pub weight_bits: Option<u32>,
    /// Chips in the system (Loihi 2 boards hold several).
    pub chips: u32,
    /// Choose the smallest system that fits instead (`--chips auto`; `chips` is then ignored).
    pub auto_chips: bool,
    /// Fitness evaluations of `evolve`.
    pub evals: usize,
    /// Show progress bars.
    pub progress: bool,
    /// Timesteps a rate-mode artifact runs by default (`None`: the target's default).
    pub timesteps: Option<u32>,
    /// How a DVS sensor's events reach the network input (Speck only).
    pub dvs: nmc_backend::DvsOptions,
    /// Optimisation level: 0 = no e-graph rewriting, 1 = layout rules only, 2 = every rule.
    pub opt_level: u8,
}

/// Most chips `--chips` takes: 1,152, the chips of Hala Point, the largest Loihi 2 system built
/// (docs/chips.md §1.2); mapping memory grows with the cores of every chip (about 13 KB a chip).
/// `NMC_MAX_CHIPS` raises it.
pub const MAX_CHIPS: u32 = 1152;

/// Most timesteps `--timesteps` takes (`compile`, `run`, `eval`): 1,048,576, Speck's documented
/// maximum (`nmc_speck::spec::MAX_TIMESTEPS`); a graded Loihi 2 run is exact after its depth + 1
/// steps, so more change nothing but the time. Per-step records take memory proportional to it.
pub const MAX_TIMESTEPS: u32 = nmc_speck::spec::MAX_TIMESTEPS;

/// Most fitness evaluations `--evals` takes: 100,000, 200 times the default of 500; each one is
/// an emulated run on up to 16 calibration samples (milliseconds to a second), so the limit keeps a
/// search within hours. `NMC_MAX_EVALS` raises it.
pub const MAX_EVALS: usize = 100_000;

/// A flag's limit from its environment variable (a usage error when the variable is malformed).
fn flag_limit(var: &str, default: u64) -> Result<u64, Error> {
    crate::fsutil::env_limit(var, default).map_err(Error::Usage)
}

/// The fewest chips whose system the target's default mapping fits (binary search: a mapping
/// that fits `n` chips fits more), or the fit error of the largest system nmc allows.
fn smallest_system(graph: &Graph, opts: &Options) -> Result<u32, Error> {
    let max = flag_limit("NMC_MAX_CHIPS", MAX_CHIPS.into())?.min(u64::from(u32::MAX)) as u32;
    let fits = |chips: u32| {
        let topts = TargetOptions {
            chips,
            timesteps: opts.timesteps,
            dvs: opts.dvs,
        };
        opts.target.check_options(&topts).is_ok()
            && opts.target.default_mapping(graph, &topts).is_ok()
    };
    let multi_chip = opts
        .target
        .check_options(&TargetOptions {
            chips: 2,
            timesteps: opts.timesteps,
            dvs: opts.dvs,
        })
        .is_ok();
    // A single device has one size; its default mapping reports what does not fit.
    if !multi_chip || fits(1) {
        return Ok(1);
    }
    if !fits(max) {
        // The largest system's own error says what does not fit.
        let topts = TargetOptions {
            chips: max,
            timesteps: opts.timesteps,
            dvs: opts.dvs,
        };
        opts.target.check_options(&topts)?;
        opts.target.default_mapping(graph, &topts)?;
    }
    let (mut lo, mut hi) = (1u32, max); // lo does not fit, hi fits
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// A fit error on a multi-chip target names the smallest system that would fit, if one does.
fn with_smallest_system(e: nmc_backend::BackendError, graph: &Graph, opts: &Options) -> Error {
    if !matches!(e, nmc_backend::BackendError::Fit { .. }) {
        return e.into();
    }
    let more = TargetOptions {
        chips: opts.chips.saturating_add(1),
        timesteps: opts.timesteps,
        dvs: opts.dvs,
    };
    if opts.target.check_options(&more).is_err() {
        return e.into(); // a single device: more chips are not an option
    }
    match (smallest_system(graph, opts), &e) {
        (Ok(n), nmc_backend::BackendError::Fit { target, source }) if n > opts.chips => {
            nmc_backend::BackendError::fit(
                target,
                format!(
                    "{source}; the smallest {target} system it fits has {n} chips: use --chips {n} (or --chips auto)"
                ),
            )
            .into()
        }
        _ => e.into(),
    }
}

/// `--chips` must be in `1..=MAX_CHIPS` (or `NMC_MAX_CHIPS`).
pub fn check_chips(chips: u32) -> Result<(), Error> {
    let max = flag_limit("NMC_MAX_CHIPS", MAX_CHIPS.into())?;
    if chips == 0 {
        return Err(Error::Usage("--chips must be at least 1".into()));
    }
    if u64::from(chips) > max {
        return Err(Error::Usage(format!(
            "--chips {chips}: more than nmc's limit of {max} chips (Hala Point, the largest Loihi 2 system, has {MAX_CHIPS}); set NMC_MAX_CHIPS to raise it"
        )));
    }
    Ok(())
}

/// `--timesteps` must be in `1..=MAX_TIMESTEPS`.
pub fn check_timesteps(t: u32) -> Result<(), Error> {
    if t == 0 {
        return Err(Error::Usage("--timesteps must be at least 1".into()));
    }
    if t > MAX_TIMESTEPS {
        return Err(Error::Usage(format!(
            "--timesteps {t}: more than nmc's limit of {MAX_TIMESTEPS} timesteps (Speck's documented maximum)"
        )));
    }
    Ok(())
}

/// `--evals` must be at most `MAX_EVALS` (or `NMC_MAX_EVALS`).
pub fn check_evals(evals: usize) -> Result<(), Error> {
    let max = flag_limit("NMC_MAX_EVALS", MAX_EVALS as u64)?;
    if evals as u64 > max {
        return Err(Error::Usage(format!(
            "--evals {evals}: more than nmc's limit of {max} evaluations; set NMC_MAX_EVALS to raise it"
        )));
    }
    Ok(())
}

impl Options {
    /// Checks the options before any work: `--chips`, `--timesteps` and `--evals` within their
    /// limits, and nothing the target ignores or cannot do (`Backend::check_options`).
    pub fn check(&self) -> Result<(), Error> {
        check_chips(self.chips)?;
        if let Some(t) = self.timesteps {
            check_timesteps(t)?;
        }
        check_evals(self.evals)?;
        self.target.check_options(&self.target_options())?;
        Ok(())
    }

    /// What the backend sees of these options.
    pub fn target_options(&self) -> TargetOptions {
        TargetOptions {
            chips: self.chips,
            timesteps: self.timesteps,
            dvs: self.dvs,
        }
    }

    /// Defaults for a target.
    pub fn new(target: Target) -> Self {
        Options {
            target,
            partition: PartitionKind::Greedy,
            seed: 0,
            calibrate: None,
            act_bits: None,
            weight_bits: None,
            chips: 1,
            auto_chips: false,
            evals: 500,
            progress: false,
            timesteps: None,
            dvs: nmc_backend::DvsOptions::default(),
            opt_level: 2,
        }
    }
}

impl Compiled {
    /// The layer graph the quantiser saw: after the e-graph pass, or the canonical graph at
    /// `-O0`.
    pub fn layers(&self) -> &Graph {
        self.optimized.as_ref().unwrap_or(&self.canonical)
    }

    /// The dump of one `--emit` kind that is text (`None` for the artifact's bytes).
    pub fn dump(&self, kind: crate::Emit, artifact_path: &Path) -> Option<String> {
        use crate::Emit;
        Some(match kind {
            Emit::Ir => nmc_ir::print(&self.imported),
            Emit::CanonicalIr => nmc_ir::print(&self.canonical),
            Emit::EgraphIr => nmc_ir::print(self.layers()),
            Emit::QuantizedIr => nmc_ir::print(&self.quantized),
            Emit::PartitionedIr => print_partitioned(&self.quantized, &self.mapping),
            Emit::Listing => self.listing(),
            Emit::Report => self.report.text(),
            Emit::DepInfo => dep_info(artifact_path, &self.files),
            Emit::Artifact | Emit::Netx | Emit::Nir => return None,
        })
    }

    /// The binary outputs of `--emit`: the artifact, or the spiking network as a netx file or a
    /// NIR graph (`crate::snn::export`, NIR with snnTorch's timestep `crate::snn::DEFAULT_DT`).
    pub fn binary(&self, kind: crate::Emit) -> Result<Vec<u8>, Error> {
        use crate::Emit;
        let (format, r) = match kind {
            Emit::Netx => ("netx", crate::snn::export::netx(&self.quantized)),
            Emit::Nir => (
                "nir",
                crate::snn::export::nir(&self.quantized, crate::snn::DEFAULT_DT),
            ),
            _ => return Ok(self.artifact.clone()),
        };
        r.map_err(|message| Error::Lower {
            target: format,
            message,
        })
    }

    /// The artifact's readable listing (computed on request: it hashes every weight).
    pub fn listing(&self) -> String {
        crate::LoadedArtifact::decode_for(self.target, &self.artifact)
            .map(|a| a.listing())
            .unwrap_or_else(|e| format!("error: {e}\n"))
    }
}

/// Every stage's result, for dumps and reports.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The target compiled for.
    pub target: Target,
    /// The imported float graph.
    pub imported: Graph,
    /// The canonical float graph (layers), before the e-graph pass.
    pub canonical: Graph,
    /// The layer graph after the e-graph pass (`None` at `-O0`: the canonical graph).
    pub optimized: Option<Graph>,
    /// The quantised graph that the chip runs (the golden model for the emulator).
    pub quantized: Graph,
    /// Partition and placement.
    pub mapping: Mapping,
    /// The artifact's bytes.
    pub artifact: Vec<u8>,
    /// What the compiler decided and noticed.
    pub report: CompileReport,
    /// Input files the artifact depends on (model, external data, calibration inputs).
    pub files: Vec<PathBuf>,
}

/// The compile report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CompileReport {
    /// Target name.
    pub target: String,
    /// Where activation ranges came from.
    pub ranges_from: String,
    /// Notes from the importer and the passes.
    pub notes: Vec<String>,
    /// Per layer: name, cores and size.
    pub layers: Vec<LayerReport>,
    /// Cores in use.
    pub cores_used: usize,
    /// The mapping search, when one ran.
    pub search: Option<SearchSummary>,
    /// The e-graph pass (rules fired, stop reason, cost before and after); `None` at -O0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egraph: Option<crate::egraph::EgraphReport>,
}

impl CompileReport {
    /// The report as text (`--emit report`).
    pub fn text(&self) -> String {
        let r = self;
        let mut s = format!(
            "target: {}\nranges: {}\ncores used: {}\nlayers:\n",
            r.target, r.ranges_from, r.cores_used
        );
        for l in &r.layers {
            s.push_str(&format!(
                "  {:<32} shape {:?} synapses {} cores {:?}\n",
                l.name, l.shape, l.synapses, l.cores
            ));
        }
        if let Some(e) = r.egraph.as_ref().filter(|e| !e.changed) {
            // A changed graph has the same line among the notes.
            s.push_str(&format!("{}\n", e.note()));
        }
        for n in &r.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

/// Greedy against the chosen mapping, for the compile report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SearchSummary {
    /// "floorline" or "evolve".
    pub partitioner: String,
    /// Evaluations spent.
    pub evals: usize,
    /// What the search minimised.
    pub objective: String,
    /// Greedy's figures.
    pub greedy: MappingFigures,
    /// The chosen mapping's figures.
    pub chosen: MappingFigures,
    /// Why the search cannot change the latency on this target, where that is so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Emulated (or, without calibration inputs, modelled) figures of one mapping.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MappingFigures {
    /// Latency per inference (ns).
    pub latency_ns: f64,
    /// Energy per inference (nJ).
    pub energy_nj: f64,
    /// Time per timestep (ns): the slowest core's, the throughput bound.
    pub t_step_ns: f64,
    /// Cores used.
    pub cores: usize,
    /// Bottleneck state.
    pub bound: String,
    /// Whether the figures come from the emulator (else from the model).
    pub emulated: bool,
}

/// One layer in the compile report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerReport {
    /// ONNX-derived name.
    pub name: String,
    /// Output shape (per sample).
    pub shape: Vec<usize>,
    /// Non-zero synapses (weights) over all groups.
    pub synapses: usize,
    /// Cores holding it.
    pub cores: Vec<u32>,
}

/// Reads calibration or evaluation samples for a graph with one input. The array must hold
/// samples of the input's shape (`[N, …shape]`, or one sample of the shape itself), up to leading
/// 1s ([`npy::sample_count`]); an array with the right number of values in another shape is an
/// error naming the file, its shape and the expected one.
pub fn load_samples(path: &Path, graph: &Graph) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    // A model nmc cannot feed is a model problem (exit 1), not a usage error.
    if graph.inputs.len() != 1 {
        return Err(Error::Input {
            message: format!(
                "the model has {} inputs; nmc feeds models of one input (one .npy per run)",
                graph.inputs.len()
            ),
        });
    }
    let a = npy::read(path).map_err(|message| Error::Input { message })?;
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input {
            message: format!(
                "{}: value {} at flat index {i} is not finite; samples must be finite numbers",
                path.display(),
                a.data[i]
            ),
        });
    }
    let ty = graph.ty(graph.inputs[0]);
    // A spiking network's samples may be spike frames, `[N, T, …shape]` (each sample its T
    // frames); otherwise `[N, …shape]`, one sample of the shape, or `[N]` for a model whose
    // sample is a scalar.
    let frames = a.shape.len() == ty.shape.len() + 2
        && a.shape[2..] == ty.shape[..]
        && passes::quantize_snn::is_snn(graph, true);
    let n = if frames {
        npy::check_spike_frames(path, &a, &ty.shape).map_err(|message| Error::Input { message })?
    } else {
        npy::check_samples(path, &a, &ty.shape).map_err(|message| Error::Input { message })?
    };
    let per = a.data.len() / n;
    Ok((0..n)
        .map(|i| vec![a.data[i * per..(i + 1) * per].to_vec()])
        .collect())
}

/// Prints how long a stage took, and the memory after it, when `NMC_TIME_PASSES` is set (like
/// rustc's `-Z time-passes`).
pub(crate) fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let stage = stage.name();
    if std::env::var_os("NMC_TIME_PASSES").is_none() {
        return f();
    }
    let start = std::time::Instant::now();
    let out = f();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match memory() {
        Some((rss, peak)) => eprintln!(
            "time: {ms:>9.3} ms  rss {:>7.1} MB  peak {:>7.1} MB  {stage}",
            rss as f64 / 1e6,
            peak as f64 / 1e6
        ),
        None => eprintln!("time: {ms:>9.3} ms  {stage}"),
    }
    out
}

/// Resident and peak resident memory of this process in bytes (Linux `/proc/self/status`), for
/// `NMC_TIME_PASSES` and the compile bench; `None` elsewhere.
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Compiles an ONNX file.
pub fn compile(model: &Path, opts: &Options) -> Result<Compiled, Error> {
    opts.check()?;
    let imported = timed(Stage::Import, || import::import_file(model))?;
    let calib = match &opts.calibrate {
        Some(p) => load_samples(p, &imported.graph)?,
        None => Vec::new(),
    };
    let hash = timed(Stage::Hash, || {
        source_hash(&imported.files, &imported.hashes)
    })?;
    let mut compiled = compile_graph(imported.graph, &calib, opts, hash)?;
    compiled.report.notes.splice(0..0, imported.notes);
    compiled.files = imported.files;
    // The calibration data sets the activation ranges, so the artifact depends on it too.
    compiled.files.extend(opts.calibrate.iter().cloned());
    Ok(compiled)
}

/// Content hash of the model files, recorded in the artifact header; `known` holds the hashes
/// of files the importer already read (the others are read here).
fn source_hash(
    files: &[PathBuf],
    known: &std::collections::BTreeMap<PathBuf, u64>,
) -> Result<u64, Error> {
    let mut h = 0u64;
    for f in files {
        let fh = match known.get(f) {
            Some(&fh) => fh,
            None => nmc_ir::hash_bytes(&crate::fsutil::read(f)?),
        };
        h = h.rotate_left(17) ^ fh;
    }
    Ok(h)
}

/// The graphs of the stages between import and partitioning.
struct LayerGraphs {
    /// After canonicalize.
    canonical: Graph,
    /// After the e-graph pass (`None` at `-O0`).
    optimized: Option<Graph>,
    /// After quantize.
    quantized: Graph,
    report: QuantReport,
}

/// Checks the graph a stage produced: a failure is a bug in that stage, reported as such.
fn verified(stage: Stage, graph: &Graph) -> Result<(), Error> {
    nmc_ir::verify(graph).map_err(|e| {
        Error::Pass(passes::PassError {
            pass: stage.name(),
            node: graph.name.clone(),
            message: format!("the stage's output does not verify (a bug in nmc): {e}"),
        })
    })
}

/// A chip cannot hold a NaN or an infinite weight, bias or scale: any in a layer graph is an error
/// naming the layer (the reference interpreter, `eval`, computes them as IEEE 754 does).
fn finite_constants(graph: &Graph) -> Result<(), Error> {
    for id in graph.ids() {
        for c in graph.node(id).op.constants() {
            let Some(values) = graph.consts.get(c).stored_f32() else {
                continue;
            };
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::Pass(passes::PassError {
                    pass: "check-numbers",
                    node: passes::describe_node(graph, id),
                    message: format!(
                        "{bad} of its weights, biases or scales are NaN or infinite (from the model's initializers or attributes); a chip cannot run them"
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// The float graph for a target: the layer graph the quantiser saw (after the e-graph pass) and
/// the quantised graph (no mapping).
pub fn quantize_for(
    imported: &Graph,
    calib: &[Vec<Vec<f32>>],
    opts: &Options,
) -> Result<(Graph, Graph, QuantReport), Error> {
    let l = layer_graphs(imported, calib, opts)?;
    Ok((l.optimized.unwrap_or(l.canonical), l.quantized, l.report))
}

fn layer_graphs(
    imported: &Graph,
    calib: &[Vec<Vec<f32>>],
    opts: &Options,
) -> Result<LayerGraphs, Error> {
    // Float tensor ops (padding, reductions, slices, …) are the interpreter's only: say so with
    // the target's name before any pass runs.
    let users = imported.users();
    if let Some(n) = imported
        .ids()
        .filter(|&id| !passes::canonicalize::folds_into_convolutions(imported, &users, id))
        .map(|id| imported.node(id))
        .find(|n| matches!(n.op, nmc_ir::Op::Tensor(_)))
    {
        let target = opts.target.name();
        return Err(Error::Lower {
            target,
            message: format!(
                "node \"{}\" (`{}`) cannot run on {target}: no neuromorphic core computes it (`nmc eval` does)",
                n.name.as_deref().unwrap_or("?"),
                n.op.mnemonic()
            ),
        });
    }
    let canonical = timed(Stage::Canonicalize, || passes::canonicalize(imported))?;
    verified(Stage::Canonicalize, &canonical)?;
    finite_constants(&canonical)?;
    let (optimized, egraph) = match egraph_at(&canonical, opts.opt_level, opts.target)? {
        Some((g, r)) => (Some(g), Some(r)),
        None => (None, None),
    };
    let layers = optimized.as_ref().unwrap_or(&canonical);
    let (quantized, qreport) = quantize_layers(layers, calib, opts)?;
    verified(Stage::Quantize, &quantized)?;
    let mut qreport = qreport;
    if let Some(e) = egraph.as_ref().filter(|e| e.changed) {
        qreport.notes.insert(0, e.note());
    }
    qreport.egraph = egraph;
    Ok(LayerGraphs {
        canonical,
        optimized,
        quantized,
        report: qreport,
    })
}

/// The target's quantiser on the layer graph.
fn quantize_layers(
    canonical: &Graph,
    calib: &[Vec<Vec<f32>>],
    opts: &Options,
) -> Result<(Graph, QuantReport), Error> {
    // IF neurons run in rate mode on a rate-mode chip (Speck), in snn mode on one that has it.
    let if_too = opts.target.runs_snn() && opts.target.mode() != nmc_backend::ExecMode::Rate;
    if passes::quantize_snn::is_snn(canonical, if_too) {
        let target = opts.target.name();
        if !opts.target.runs_snn() {
            return Err(Error::Lower {
                target,
                message: format!(
                    "the model has LIF or CubaLIF neurons, which need the snn execution mode: {}",
                    opts.target.snn_refusal()
                ),
            });
        }
        if opts.act_bits.is_some() || opts.weight_bits.is_some() {
            return Err(Error::Usage(format!(
                "--act-bits and --weight-bits do not apply to a spiking network on {target}: its neurons send binary spikes and Lava's weight rules set the weights"
            )));
        }
        return Ok(timed(Stage::Quantize, || {
            passes::quantize_snn(canonical, target)
        })?);
    }
    Ok(match opts.target.quantization() {
        Quantization::Akida(defaults) => {
            // Akida's integer neuron (ceil division by a per-channel step) has its own pass.
            let mut aopts = defaults;
            aopts.weight_bits = opts.weight_bits.unwrap_or(aopts.weight_bits);
            aopts.act_bits = opts.act_bits.unwrap_or(aopts.act_bits);
            timed(Stage::Quantize, || {
                passes::quantize_akida(canonical, calib, &aopts)
            })?
        }
        Quantization::Graded(spec) => {
            passes::quantize_rate::require_graded(canonical, opts.target.name())?;
            let mut qopts = QuantOptions::for_spec(spec);
            if let Some(b) = opts.act_bits {
                qopts.act_bits = b;
            }
            if let Some(b) = opts.weight_bits {
                if b < 2 || b > qopts.spec.weight_bits {
                    return Err(Error::Usage(format!(
                        "--weight-bits {b}: {} weights take 2..={} bits",
                        opts.target.name(),
                        qopts.spec.weight_bits
                    )));
                }
                qopts.spec.weight_bits = b;
            }
            timed(Stage::Quantize, || {
                passes::quantize(canonical, calib, &qopts)
            })?
        }
        Quantization::Rate(ropts) => {
            if opts.act_bits.is_some() || opts.weight_bits.is_some() {
                return Err(Error::Usage(format!(
                    "--act-bits and --weight-bits do not apply to {}: rate mode sends spikes and uses the chip's 8-bit weights",
                    opts.target.name()
                )));
            }
            timed(Stage::Quantize, || {
                passes::quantize_rate(canonical, calib, &ropts)
            })?
        }
    })
}

/// The e-graph pass at an optimisation level (0: none; 1: layout rules; 2: every rule), with the
/// extraction cost of `target` (what it runs natively, `Backend::native_ops`).
pub fn optimize_at(
    canonical: Graph,
    opt_level: u8,
    target: Target,
) -> Result<(Graph, Option<crate::egraph::EgraphReport>), Error> {
    Ok(match egraph_at(&canonical, opt_level, target)? {
        Some((g, r)) => (g, Some(r)),
        None => (canonical, None),
    })
}

/// [`optimize_at`] on a borrowed graph: `None` at `-O0`.
fn egraph_at(
    canonical: &Graph,
    opt_level: u8,
    target: Target,
) -> Result<Option<(Graph, crate::egraph::EgraphReport)>, Error> {
    let rules = match opt_level {
        0 => return Ok(None),
        1 => crate::egraph::rules::layout::rules(),
        _ => crate::egraph::rules::all(),
    };
    let (g, r) = timed(Stage::Egraph, || {
        crate::egraph::optimize_for(canonical, &rules, target.native_ops())
    })?;
    Ok(Some((g, r)))
}

/// Compiles an imported graph (the library entry point below the file reader).
pub fn compile_graph(
    imported: Graph,
    calib: &[Vec<Vec<f32>>],
    opts: &Options,
    source_hash: u64,
) -> Result<Compiled, Error> {
    let LayerGraphs {
        canonical,
        optimized,
        quantized,
        report: qreport,
    } = layer_graphs(&imported, calib, opts)?;
    opts.check()?;
    // `--chips auto`: the smallest system the default mapping fits, then the chosen partitioner
    // on it.
    let resolved;
    let opts = if opts.auto_chips {
        let mut o = opts.clone();
        o.chips = timed(Stage::Partition, || smallest_system(&quantized, opts))?;
        o.auto_chips = false;
        resolved = o;
        &resolved
    } else {
        opts
    };
    let topts = opts.target_options();
    let (mapping, search) = if opts.partition == PartitionKind::Greedy {
        let m = timed(Stage::Partition, || {
            opts.target.default_mapping(&quantized, &topts)
        })
        .map_err(|e| with_smallest_system(e, &quantized, opts))?;
        (m, None)
    } else {
        let (m, s) = timed(Stage::Partition, || map_search(&quantized, calib, opts))?;
        (m, Some(s))
    };
    let artifact = timed(Stage::Lower, || {
        opts.target.lower(&quantized, &mapping, source_hash, &topts)
    })?;
    let cores_used = mapping.cores_used();
    let mut report = CompileReport {
        target: opts.target.name().into(),
        ranges_from: qreport.ranges_from,
        notes: qreport.notes,
        layers: Vec::new(),
        cores_used,
        search,
        egraph: qreport.egraph,
    };
    for (id, slices) in &mapping.layers {
        let node = quantized.node(*id);
        let synapses = match &node.op {
            nmc_ir::Op::Layer(l) => l
                .synapses
                .iter()
                .map(|s| quantized.consts.get(s.weight()).nnz())
                .sum(),
            _ => 0,
        };
        report.layers.push(LayerReport {
            name: node.name.clone().unwrap_or_else(|| id.to_string()),
            shape: node.ty.shape.clone(),
            synapses,
            cores: slices.iter().map(|s| s.core).collect(),
        });
    }
    Ok(Compiled {
        target: opts.target,
        imported,
        canonical,
        optimized,
        quantized,
        mapping,
        artifact,
        report,
        files: Vec::new(),
    })
}

/// Why `--partition evolve` without calibration samples is a usage error.
pub const EVOLVE_NEEDS_CALIBRATION: &str =
    "--partition evolve needs --calibrate: its fitness is the emulated latency on calibration inputs";

/// Runs the chosen mapping search (floorline or evolve) in the target's search space.
fn map_search(
    graph: &Graph,
    calib: &[Vec<Vec<f32>>],
    opts: &Options,
) -> Result<(Mapping, SearchSummary), Error> {
    use partition::search::{FloorlineVerdict, Genome};
    if opts.partition == PartitionKind::Evolve && calib.is_empty() {
        return Err(Error::Usage(EVOLVE_NEEDS_CALIBRATION.into()));
    }
    let topts = opts.target_options();
    let space = opts.target.search_space(graph, &topts)?;
    let problem = &space.problem;
    let decode = |g: &Genome| (space.decode)(g);
    let lower = |m: &Mapping| opts.target.lower(graph, m, 0, &topts).ok();
    // The floorline model's loads, as the backend estimates them: modelled from the activity
    // profile (measured once, on first use) or measured by its emulator on the calibration
    // inputs, else on a mid-grey input.
    let activity = Activity::new(graph, calib);
    let params = crate::target::ChipParams::default();
    let verdict = |g: &Genome| -> Option<FloorlineVerdict> {
        let art = lower(&decode(g)?)?;
        let a = floorline(opts.target, &art, &activity, &params).ok()?.0;
        // The analysis lists layers slowest first, by population name.
        let slowest = a
            .layers
            .iter()
            .filter_map(|l| {
                space
                    .names
                    .iter()
                    .position(|n| *n == l.name)
                    .map(|i| (i, l.bound))
            })
            .collect();
        Some((a.latency_ns, slowest))
    };
    // The calibration samples as the artifact takes them (spike frames for a spiking network).
    let samples = (!calib.is_empty()).then(|| activity.samples().clone());
    let emulated = |m: &Mapping| -> Option<MappingFigures> {
        let art = lower(m)?;
        let arr = samples.as_ref()?;
        let run = crate::LoadedArtifact::decode_for(opts.target, &art)
            .ok()?
            .run(arr, None)
            .ok()?;
        Some(MappingFigures {
            latency_ns: run.perf.latency_ns,
            energy_nj: run.perf.energy_nj,
            t_step_ns: run.perf.t_step_ns,
            cores: m.cores_used(),
            bound: run.perf.workload_bound,
            emulated: true,
        })
    };
    let modelled = |g: &Genome, m: &Mapping| -> MappingFigures {
        let v = verdict(g);
        MappingFigures {
            latency_ns: v.as_ref().map_or(f64::NAN, |v| v.0),
            energy_nj: f64::NAN,
            t_step_ns: f64::NAN,
            cores: m.cores_used(),
            bound: v
                .and_then(|v| v.1.first().map(|l| l.1.as_str().to_string()))
                .unwrap_or_default(),
            emulated: false,
        }
    };
    let floor = partition::search::floorline_search(problem, 200, &verdict);
    let (result, name, objective) = match opts.partition {
        PartitionKind::Evolve => {
            let fitness = |g: &Genome| emulated(&decode(g)?).map(|f| f.latency_ns);
            let so = partition::search::SearchOptions {
                seed: opts.seed,
                evals: opts.evals,
                progress: opts.progress,
                ..Default::default()
            };
            let mut r = partition::search::evolve(problem, floor.best.clone(), &so, &fitness);
            r.evals += floor.evals;
            (
                r,
                "evolve",
                "emulated latency per inference (ns), started from the floorline result",
            )
        }
        _ => (floor, "floorline", "modelled latency per inference (ns)"),
    };
    // A search keeps the default mapping unless it found a strictly faster one.
    let greedy_genome = problem.greedy();
    let best = if result.fitness < result.greedy_fitness {
        &result.best
    } else {
        &greedy_genome
    };
    let chosen = decode(best).ok_or_else(|| Error::Fit {
        target: opts.target.name(),
        message: "the search returned a mapping that does not fit (a bug)".into(),
    })?;
    let figures = |g: &Genome, m: &Mapping| emulated(m).unwrap_or_else(|| modelled(g, m));
    let summary = SearchSummary {
        partitioner: name.into(),
        evals: result.evals,
        objective: objective.into(),
        greedy: figures(&greedy_genome, &space.greedy),
        chosen: figures(best, &chosen),
        note: space.note.clone(),
    };
    Ok((chosen, summary))
}

/// The floorline analysis of an artifact of `target` under `activity`, with the constants used.
pub fn floorline(
    target: Target,
    artifact: &[u8],
    activity: &Activity<'_>,
    params: &crate::target::ChipParams,
) -> Result<(crate::cost::Analysis, nmc_backend::Constants), Error> {
    let loaded = crate::LoadedArtifact::decode_for(target, artifact)
        .map_err(|e| nmc_backend::BackendError::lower(target.name(), e))?;
    let loads = loaded.floorline_loads(activity, params)?;
    let k = loads.constants.clone();
    Ok((crate::cost::evaluate(target.name(), loads), k))
}

/// Compiles a model and evaluates the floorline model on it: activity measured on the
/// calibration inputs when given (they also set the activation ranges), else assumed.
pub fn analyze(
    model: &Path,
    opts: &Options,
    params: &crate::target::ChipParams,
) -> Result<(Compiled, crate::cost::Analysis, nmc_backend::Constants), Error> {
    opts.check()?;
    let imported = import::import_file(model)?;
    let calib = match &opts.calibrate {
        Some(p) => load_samples(p, &imported.graph)?,
        None => Vec::new(),
    };
    let hash = source_hash(&imported.files, &imported.hashes)?;
    let mut compiled = compile_graph(imported.graph, &calib, opts, hash)?;
    compiled.files = imported.files;
    compiled.files.extend(opts.calibrate.iter().cloned());
    let activity = Activity::new(&compiled.quantized, &calib);
    let (analysis, constants) = floorline(opts.target, &compiled.artifact, &activity, params)?;
    Ok((compiled, analysis, constants))
}

/// Runs a graph on samples with the reference interpreter; returns outputs `[N, …]` per output.
/// A rate-mode graph runs over the default number of timesteps (see [`interpret_with`]).
pub fn interpret(graph: &Graph, samples: &[Vec<Vec<f32>>]) -> Result<Vec<npy::Array>, Error> {
    interpret_with(graph, samples, None)
}

/// [`interpret`], with the timesteps of a rate-mode graph (rate-encoded inputs, outputs
/// `counts · scale / T`; `None`: Speck's default, the only rate-mode target).
pub fn interpret_with(
    graph: &Graph,
    samples: &[Vec<Vec<f32>>],
    timesteps: Option<u32>,
) -> Result<Vec<npy::Array>, Error> {
    interpret_progress(graph, samples, timesteps, &|| {})
}

/// [`interpret_with`], calling `progress` after each sample (the CLI's progress bar).
pub fn interpret_progress(
    graph: &Graph,
    samples: &[Vec<Vec<f32>>],
    timesteps: Option<u32>,
    progress: &dyn Fn(),
) -> Result<Vec<npy::Array>, Error> {
    let interp = Interpreter::new(graph).map_err(|e| Error::Input {
        message: e.to_string(),
    })?;
    let rate = passes::quantize_rate::is_rate_graph(graph);
    let snn = nmc_backend::floorline::is_snn(graph);
    // Synapse hops from an input to the deepest output (snn mode's delay per hop).
    let depth = {
        let mut d = vec![0usize; graph.nodes.len()];
        for id in graph.topo_order().unwrap_or_default() {
            let n = graph.node(id);
            let from = n.inputs.iter().map(|i| d[i.index()]).max().unwrap_or(0);
            d[id.index()] = from + usize::from(matches!(n.op, nmc_ir::Op::Layer(_)));
        }
        graph
            .outputs
            .iter()
            .map(|o| d[o.node.index()])
            .max()
            .unwrap_or(0)
    };
    let t = timesteps.or_else(rate_default_timesteps).unwrap_or(1);
    if rate && (t == 0 || t > MAX_RATE_TIMESTEPS) {
        return Err(Error::Usage(format!(
            "{t} timesteps: rate mode runs 1..={MAX_RATE_TIMESTEPS} timesteps"
        )));
    }
    let mut outs: Vec<npy::Array> = graph
        .outputs
        .iter()
        .map(|o| {
            let mut shape = vec![samples.len()];
            shape.extend(graph.ty(o.node).shape.iter().copied());
            npy::Array {
                shape,
                data: Vec::new(),
            }
        })
        .collect();
    for s in samples {
        let refs: Vec<&[f32]> = s.iter().map(|v| v.as_slice()).collect();
        let err = |e: nmc_ir::InterpError| Error::Input {
            message: e.to_string(),
        };
        let vals = if snn {
            // Spike frames: each input holds its T frames; the run lasts until the last frame
            // has reached the output, as `nmc run` on the chip.
            let per: Vec<usize> = graph.inputs.iter().map(|&i| graph.ty(i).numel()).collect();
            let frames = s.first().map_or(0, Vec::len) / per.first().copied().unwrap_or(1).max(1);
            let k = timesteps.map_or(frames + depth, |t| t as usize);
            let events: Vec<Vec<Vec<i64>>> = (0..k)
                .map(|f| {
                    s.iter()
                        .zip(&per)
                        .map(|(x, &p)| match x.get(f * p..(f + 1) * p) {
                            Some(v) if f < frames => v.iter().map(|v| *v as i64).collect(),
                            _ => vec![0; p],
                        })
                        .collect()
                })
                .collect();
            let r = interp.run_events(&events).map_err(err)?;
            r.counts
                .into_iter()
                .map(|c| Value::F32(c.into_iter().map(|v| v as f32).collect()))
                .collect()
        } else if rate {
            let r = interp.run_steps(&refs, t).map_err(err)?;
            r.outputs.into_iter().map(Value::F32).collect()
        } else {
            interp.run(&refs).map_err(err)?
        };
        for (o, v) in outs.iter_mut().zip(vals) {
            o.data.extend(match v {
                Value::F32(x) => x,
                Value::I64(x) => x.into_iter().map(|v| v as f32).collect(),
            });
        }
        progress();
    }
    Ok(outs)
}

/// The default timesteps of the rate-mode targets (the first that has one).
fn rate_default_timesteps() -> Option<u32> {
    Target::all()
        .iter()
        .filter(|t| t.mode() == nmc_backend::ExecMode::Rate)
        .find_map(|t| t.default_timesteps())
}

/// Most timesteps a rate-mode interpretation runs (per-step records grow with them).
const MAX_RATE_TIMESTEPS: u32 = 1 << 20;

/// Prints the partitioned IR: the quantised graph followed by its mapping.
pub fn print_partitioned(graph: &Graph, mapping: &Mapping) -> String {
    let mut out = nmc_ir::print(graph);
    out.push_str("mapping {\n");
    for (id, slices) in &mapping.layers {
        let name = graph.node(*id).name.as_deref().unwrap_or("");
        for s in slices {
            let loc = mapping.placement[s.core as usize];
            // A spatial tile names its rows and columns; a channel slice does not.
            let axis = |what: &str, r: Option<(u32, u32)>| {
                r.map_or(String::new(), |(a, b)| format!(" {what} [{a}, {b})"))
            };
            out.push_str(&format!(
                "  {id} {:?} channels [{}, {}){}{} -> core {} (chip {}, x {}, y {})\n",
                name,
                s.start,
                s.end,
                axis("rows", s.rows),
                axis("cols", s.cols),
                s.core,
                loc.chip,
                loc.x,
                loc.y
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// Reads what [`print_partitioned`] writes (IR text, optionally followed by its `mapping { … }`
/// block), so that `print_partitioned(parse_partitioned(t)) == t`.
pub fn parse_partitioned(text: &str) -> Result<(Graph, Option<Mapping>), String> {
    let Some(at) = text.find("\nmapping {\n") else {
        return Ok((nmc_ir::parse(text).map_err(|e| e.to_string())?, None));
    };
    let graph = nmc_ir::parse(&text[..=at]).map_err(|e| e.to_string())?;
    let ir_lines = text[..=at].lines().count();
    let mut mapping = Mapping::default();
    let mut closed = false;
    for (k, line) in text[at + 1..].lines().enumerate().skip(1) {
        let lineno = ir_lines + k + 1;
        let bad = |m: &str| format!("line {lineno}: {m}");
        if line == "}" {
            closed = true;
            continue;
        }
        if closed {
            return Err(bad("text after the mapping block"));
        }
        // `  %3 "name" channels [0, 8) -> core 0 (chip 0, x 1, y 0)`
        let rest = line
            .strip_prefix("  %")
            .ok_or_else(|| bad("expected `  %node \"name\" channels …`"))?;
        let (id, rest) = rest.split_once(' ').ok_or_else(|| bad("no node name"))?;
        let id: u32 = id.parse().map_err(|_| bad("bad node id"))?;
        if id as usize >= graph.nodes.len() {
            return Err(bad("node id beyond the graph"));
        }
        let tail = rest
            .rsplit_once(" channels ")
            .map(|(_, tail)| tail)
            .ok_or_else(|| bad("no `channels`"))?;
        let head = tail.split(" -> ").next().unwrap_or("");
        let (has_rows, has_cols) = (head.contains(" rows ["), head.contains(" cols ["));
        let nums: Vec<u32> = tail
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<u32>().map_err(|_| bad("number out of range")))
            .collect::<Result<_, _>>()?;
        let want = 6 + 2 * usize::from(has_rows) + 2 * usize::from(has_cols);
        if nums.len() != want {
            return Err(bad(
                "expected channels [s, e) [rows [a, b)] [cols [c, d)] -> core c (chip k, x i, y j)",
            ));
        }
        let mut it = nums.into_iter();
        let mut next = || it.next().unwrap_or(0);
        let (start, end) = (next(), next());
        let rows = has_rows.then(|| (next(), next()));
        let cols = has_cols.then(|| (next(), next()));
        let (core, chip, x, y) = (next(), next(), next(), next());
        if core as usize != mapping.placement.len() {
            return Err(bad("cores must be listed in id order"));
        }
        mapping
            .layers
            .entry(nmc_ir::NodeId(id))
            .or_default()
            .push(nmc_ir::CoreSlice {
                core,
                start,
                end,
                rows,
                cols,
            });
        mapping.placement.push(nmc_ir::CoreLoc { chip, x, y });
    }
    if !closed {
        return Err("the mapping block is not closed".into());
    }
    Ok((graph, Some(mapping)))
}

/// A Makefile-style dependency file: the artifact depends on the model, its external data and the
/// calibration inputs.
pub fn dep_info(artifact: &Path, files: &[PathBuf]) -> String {
    let esc = |p: &Path| p.display().to_string().replace(' ', "\\ ");
    let mut s = format!("{}:", esc(artifact));
    for f in files {
        s.push(' ');
        s.push_str(&esc(f));
    }
    s.push('\n');
    for f in files {
        s.push_str(&format!("\n{}:\n", esc(f)));
    }
    s
}
