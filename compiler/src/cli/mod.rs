//! The `nmc` command line: `compile`, `run`, `eval`, `inspect`, `targets`.

mod commands;

use crate::target::Target;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use commands::{argmax, dispatch, targets};

/// nmc — compile ONNX models for neuromorphic chips, run them on nmc's emulators, and see why a
/// mapping is slow.
#[derive(Debug, Parser)]
#[command(name = "nmc", version, about, max_term_width = 100)]
pub struct Cli {
    /// Worker threads for emulation, searches and evaluation (default: one per core). Results
    /// are the same, bit for bit, whatever the number.
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=MAX_THREADS as i64))]
    pub threads: Option<u32>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Most worker threads `--threads` takes (far above any machine nmc runs on; a bound keeps a
/// typo from asking the OS for millions of threads).
pub const MAX_THREADS: u32 = 1024;

/// `--chips`: a number of chips, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipsArg {
    /// The smallest system the model fits.
    Auto,
    /// This many chips.
    Count(u32),
}

impl ChipsArg {
    /// Sets the options' chips.
    pub fn apply(self, opts: &mut crate::Options) {
        match self {
            ChipsArg::Auto => opts.auto_chips = true,
            ChipsArg::Count(n) => opts.chips = n,
        }
    }
}

fn parse_chips(s: &str) -> Result<ChipsArg, String> {
    if s == "auto" {
        return Ok(ChipsArg::Auto);
    }
    s.parse::<u32>()
        .map(ChipsArg::Count)
        .map_err(|_| format!("`{s}` is neither a number of chips nor `auto`"))
}

/// `X,Y`: two non-negative whole numbers.
fn parse_xy(s: &str) -> Result<[u32; 2], String> {
    let parse = |v: &str| v.trim().parse::<u32>().ok();
    match s.split_once(',') {
        Some((x, y)) => match (parse(x), parse(y)) {
            (Some(x), Some(y)) => Ok([x, y]),
            _ => Err(format!("`{s}` is not X,Y (two whole numbers)")),
        },
        None => Err(format!("`{s}` is not X,Y (two whole numbers)")),
    }
}

/// A mirror of Speck's DVS layer (`--dvs-mirror`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MirrorArg {
    /// Left to right (samna `mirror.x`).
    X,
    /// Top to bottom (samna `mirror.y`).
    Y,
    /// Swap x and y (samna `mirror_diagonal`).
    Diagonal,
}

/// Polarity selection of Speck's DVS layer (`--dvs-polarity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolarityArg {
    /// Both polarities summed into the one channel.
    Merge,
    /// ON events only.
    On,
    /// OFF events only.
    Off,
}

/// The DVS options of `compile`'s flags.
pub fn dvs_options(
    crop: Option<[u32; 2]>,
    mirror: &[MirrorArg],
    polarity: Option<PolarityArg>,
) -> nmc_backend::DvsOptions {
    nmc_backend::DvsOptions {
        crop,
        mirror_x: mirror.contains(&MirrorArg::X),
        mirror_y: mirror.contains(&MirrorArg::Y),
        swap_xy: mirror.contains(&MirrorArg::Diagonal),
        polarity: polarity.map(|p| match p {
            PolarityArg::Merge => nmc_backend::Polarity::Merge,
            PolarityArg::On => nmc_backend::Polarity::On,
            PolarityArg::Off => nmc_backend::Polarity::Off,
        }),
    }
}

/// Output format of `inspect` and `targets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

/// Partitioner choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum PartitionArg {
    /// Fewest cores per layer, filled in order (vendor-style baseline).
    #[default]
    Greedy,
    /// Split the floorline model's bottleneck layer while the modelled time improves.
    Floorline,
    /// Evolutionary search (nested 1+λ ES) with the emulator in the loop; needs --calibrate.
    Evolve,
}

impl PartitionArg {
    /// The driver's partitioner.
    pub fn kind(self) -> crate::PartitionKind {
        match self {
            PartitionArg::Greedy => crate::PartitionKind::Greedy,
            PartitionArg::Floorline => crate::PartitionKind::Floorline,
            PartitionArg::Evolve => crate::PartitionKind::Evolve,
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile an ONNX model to a chip artifact.
    Compile {
        /// The ONNX model.
        model: PathBuf,
        /// Target chip.
        #[arg(long, value_enum)]
        target: Target,
        /// Output artifact (default: the model's file stem with the target as extension, in the
        /// current directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Partitioner.
        #[arg(long, value_enum, default_value_t)]
        partition: PartitionArg,
        /// Seed for randomised searches.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Emulated fitness evaluations of --partition evolve (the floorline search that seeds it
        /// spends its own, at most 200, on top; the summary reports the total); at most 100,000
        /// (NMC_MAX_EVALS raises it).
        #[arg(long, default_value_t = 500)]
        evals: usize,
        /// Calibration inputs (.npy, samples along the first axis) for activation ranges.
        #[arg(long)]
        calibrate: Option<PathBuf>,
        /// Activation width in bits (default: the target's; AKD1000: 1, 2 or 4, default 4).
        #[arg(long, visible_alias = "activation-bits")]
        act_bits: Option<u32>,
        /// Weight width in bits (default: the target's; AKD1000: 1, 2 or 4, default 4, with
        /// 8-bit weights for a first convolution).
        #[arg(long)]
        weight_bits: Option<u32>,
        /// Chips in the system (Loihi 2 only: the AKD1000 and Speck are single devices); 1..=1152
        /// (NMC_MAX_CHIPS raises it), or `auto`: the smallest system the model fits.
        #[arg(long, default_value = "1", value_parser = parse_chips)]
        chips: ChipsArg,
        /// Timesteps a rate-mode artifact (speck only) runs by default (1..=1048576).
        #[arg(long)]
        timesteps: Option<u32>,
        /// Speck's DVS layer: the region of interest's top-left corner X,Y on the 128×128 sensor
        /// (its size is the model input's; a multiple of the input pooling).
        #[arg(long, value_name = "X,Y", value_parser = parse_xy)]
        dvs_crop: Option<[u32; 2]>,
        /// Speck's DVS layer: mirror the region, comma-separated: x (left to right), y (top to
        /// bottom), diagonal (swap x and y, after the others).
        #[arg(long, value_delimiter = ',', value_enum)]
        dvs_mirror: Vec<MirrorArg>,
        /// Speck's DVS layer, for a one-channel model input: merge both polarities (default) or
        /// take ON or OFF events only.
        #[arg(long, value_enum)]
        dvs_polarity: Option<PolarityArg>,
        /// Optimisation level: 0 = no e-graph rewriting, 1 = layout rules, 2 = every rule.
        #[arg(short = 'O', long = "opt-level", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
        opt_level: u8,
        /// Stage dumps, comma-separated KIND[=PATH] (stdout without a path): ir, canonical-ir,
        /// egraph-ir, quantized-ir (alias opt-ir), partitioned-ir, listing, report,
        /// artifact=FILE, dep-info=FILE.
        #[arg(long, value_delimiter = ',')]
        emit: Vec<String>,
    },
    /// Where each core's time goes on the floorline model: per-core loads, the bound that holds
    /// (memory, compute or traffic), the workload's state and what to do about it.
    Analyze {
        /// The ONNX model.
        model: PathBuf,
        /// Target chip.
        #[arg(long, value_enum)]
        target: Target,
        /// Calibration inputs (.npy): activation ranges and the activity profile (without them a
        /// density of 0.5 is assumed and the report says so).
        #[arg(long)]
        calibrate: Option<PathBuf>,
        /// Partitioner.
        #[arg(long, value_enum, default_value_t)]
        partition: PartitionArg,
        /// Chips in the system (Loihi 2 only: the AKD1000 and Speck are single devices); 1..=1152
        /// (NMC_MAX_CHIPS raises it), or `auto`: the smallest system the model fits.
        #[arg(long, default_value = "1", value_parser = parse_chips)]
        chips: ChipsArg,
        /// Write the floorline plot (SVG).
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Override cost-model constants from a TOML file (`a_syn = 0.5`; see `nmc targets --params`).
        #[arg(long)]
        chip_params: Option<PathBuf>,
        /// Optimisation level: 0 = no e-graph rewriting, 1 = layout rules, 2 = every rule.
        #[arg(short = 'O', long = "opt-level", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
        opt_level: u8,
    },
    /// Run an artifact on nmc's emulator of its chip.
    Run {
        /// The artifact.
        artifact: PathBuf,
        /// Input samples (.npy, samples along the first axis), or for speck an event stream
        /// (a structured .npy with fields x, y, t, p).
        #[arg(long)]
        input: PathBuf,
        /// Timesteps per sample, 1..=1048576 (default: graded targets, the smallest number that
        /// gives exact outputs; speck, the artifact's, or with --dt as many as reach the last
        /// event; the AKD1000 has none).
        #[arg(long)]
        timesteps: Option<u32>,
        /// Event input: time units (µs in specksim's format) per timestep, binned from --t-start
        /// instead of cutting each file's own first-to-last span into the timesteps.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        dt: Option<u64>,
        /// Event input with --dt: the time of step 0's start (default: the first event's time).
        #[arg(long, requires = "dt")]
        t_start: Option<u64>,
        /// Write the outputs (.npy, samples along the first axis).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write the performance report (JSON).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Labels (.npy) to report top-1 accuracy against.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Override cost-model constants from a TOML file (see `nmc targets --params`).
        #[arg(long)]
        chip_params: Option<PathBuf>,
        /// Feed the samples as consecutive frames of one stream, as a camera would: the chip's
        /// state is reset before the first frame only (frames then run one after another).
        #[arg(long)]
        stream: bool,
        /// Write the first output after every timestep (.npy, `[samples, timesteps, …]`):
        /// Loihi 2, the graded output values; Speck, each step's output spike counts.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// A spiking network's layer to record, as Lava's monitors do: LAYER=PREFIX writes its
        /// spikes to PREFIX.spikes.npy and its voltages to PREFIX.v.npy, `[samples, timesteps,
        /// …]`, after every step (repeat for more layers; `nmc inspect` lists the layers).
        #[arg(long, value_name = "LAYER=PREFIX")]
        probe: Vec<String>,
    },
    /// Run a model with nmc's reference interpreter (float, or quantised for a target).
    Eval {
        /// The ONNX model.
        model: PathBuf,
        /// Input samples (.npy, samples along the first axis).
        #[arg(long)]
        input: PathBuf,
        /// Write the outputs (.npy).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Evaluate the quantised graph for `--target` instead of the float model.
        #[arg(long, requires = "target")]
        quantized: bool,
        /// Target whose quantisation to evaluate.
        #[arg(long, value_enum)]
        target: Option<Target>,
        /// Calibration inputs for the quantised evaluation.
        #[arg(long, requires = "quantized")]
        calibrate: Option<PathBuf>,
        /// Activation width in bits for the quantised evaluation (default: the target's).
        #[arg(long, visible_alias = "activation-bits", requires = "quantized")]
        act_bits: Option<u32>,
        /// Weight width in bits for the quantised evaluation (default: the target's).
        #[arg(long, requires = "quantized")]
        weight_bits: Option<u32>,
        /// Timesteps of a rate-mode (speck) quantised evaluation (1..=1048576).
        #[arg(long, requires = "quantized")]
        timesteps: Option<u32>,
        /// Labels (.npy) to report top-1 accuracy against.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Print an artifact, an ONNX model's IR, or an IR text file, readably.
    Inspect {
        /// The file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the supported chips and their limits.
    Targets {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Print the cost-model constants with their units and sources.
        #[arg(long)]
        params: bool,
    },
}

/// Parses `args` (program name first) and runs the command: what `main` does, callable in
/// process (tests use it to check exit codes and messages).
pub fn run_args<I, T>(args: I) -> Result<(), crate::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => match cli.threads {
            // A pool of its own (not the global one), so that in-process callers such as the
            // tests can choose per call.
            Some(n) => rayon::ThreadPoolBuilder::new()
                .num_threads(n as usize)
                .build()
                .map_err(|e| crate::Error::Usage(format!("--threads {n}: {e}")))?
                .install(|| dispatch(cli)),
            None => dispatch(cli),
        },
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Ok(())
        }
        Err(e) => Err(crate::Error::Usage(
            e.render()
                .to_string()
                .trim_end()
                .trim_start_matches("error: ")
                .to_string(),
        )),
    }
}
