//! The contract between the compiler and a chip: [`Backend`] (what the chip is, how models are
//! quantised and mapped for it, how they are lowered to its artifact) and [`Loaded`] (a decoded
//! artifact: run it, list it, measure its floorline loads). The compiler holds targets only as
//! `&dyn Backend` from its registry, so a new chip is one crate that implements these two traits
//! plus one registry line.

use crate::cost::{ChipParams, CostParam};
use crate::envelope::ArtifactError;
use crate::error::BackendError;
use crate::floorline::{ActivityProfile, Loads};
use crate::quant::Quantization;
use crate::run::{Array, EventArray, EventBinning, RunResult};
use crate::search_space::SearchSpace;
use nmc_ir::{Graph, InterpError, Mapping};
use std::sync::OnceLock;

/// What an ONNX model means on a chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// Quantised ANN: integer activations as graded events.
    Graded,
    /// ReLU → integrate-and-fire over T timesteps; outputs are spike counts.
    Rate,
}

impl Quantization {
    /// The execution mode this quantisation produces.
    pub fn mode(&self) -> ExecMode {
        match self {
            Quantization::Graded(_) | Quantization::Akida(_) => ExecMode::Graded,
            Quantization::Rate(_) => ExecMode::Rate,
        }
    }
}

/// What a target runs natively, for the e-graph's extraction cost: which pooling its quantiser
/// accepts after an activation and whether it has a channel concatenation (plain flags, so the
/// e-graph needs no backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NativeOps {
    /// Average pooling (the divisor in hardware or folded by the quantiser).
    pub avg_pool: bool,
    /// Sum pooling.
    pub sum_pool: bool,
    /// Concatenation along channels (Loihi 2 lowers it as a view; Speck and the AKD1000 have
    /// none: a core or NP reads one input map).
    pub concat: bool,
}

impl NativeOps {
    /// No constraint: every pooling is native (unit tests, target-independent runs).
    pub const ANY: NativeOps = NativeOps {
        avg_pool: true,
        sum_pool: true,
        concat: true,
    };

    /// Whether the target runs this pooling (max pooling is never penalised here: the targets
    /// without it reject it in their quantiser, and no rule makes or removes one).
    pub fn has_pool(&self, kind: nmc_ir::PoolKind) -> bool {
        match kind {
            nmc_ir::PoolKind::Avg => self.avg_pool,
            nmc_ir::PoolKind::Sum => self.sum_pool,
            nmc_ir::PoolKind::Max => true,
        }
    }
}

impl Default for NativeOps {
    fn default() -> Self {
        NativeOps::ANY
    }
}

/// The compile options a backend sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetOptions {
    /// Chips in the system (`--chips`).
    pub chips: u32,
    /// Timesteps a rate-mode artifact runs by default (`None`: the target's default).
    pub timesteps: Option<u32>,
    /// How a DVS sensor's events reach the network input (`--dvs-crop`, `--dvs-mirror`,
    /// `--dvs-polarity`); only targets with an event sensor take them.
    pub dvs: DvsOptions,
}

/// Which polarities of a DVS sensor feed a one-channel network input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Both, summed into the one channel (the sensor pre-processing's `merge`).
    #[default]
    Merge,
    /// ON events only.
    On,
    /// OFF events only.
    Off,
}

impl Polarity {
    /// The flag value (`merge`, `on`, `off`).
    pub fn name(self) -> &'static str {
        match self {
            Polarity::Merge => "merge",
            Polarity::On => "on",
            Polarity::Off => "off",
        }
    }
}

/// The event-sensor options of a compile: how the sensor's events become the network input. The
/// network input is the sensor's region of interest (`crop`, its top-left pixel; its size is the
/// input's), mirrored, then transposed (`swap_xy`), with polarities as channels or selected into
/// one channel; a pooling of the input follows. No option set (the default) keeps the input as it
/// is: the region at the sensor's origin, unmirrored, polarities merged into a one-channel input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DvsOptions {
    /// Top-left corner `[x, y]` of the region of interest in sensor pixels.
    pub crop: Option<[u32; 2]>,
    /// Mirror the region left to right.
    pub mirror_x: bool,
    /// Mirror the region top to bottom.
    pub mirror_y: bool,
    /// Transpose the region (the diagonal mirror), after mirroring.
    pub swap_xy: bool,
    /// Polarity selection of a one-channel input (`None`: merge).
    pub polarity: Option<Polarity>,
}

impl DvsOptions {
    /// Whether any option is set.
    pub fn any(&self) -> bool {
        *self != DvsOptions::default()
    }

    /// For a target without an event sensor: any option set is a usage error naming `target`.
    pub fn none_for(&self, target: &str) -> Result<(), BackendError> {
        if self.any() {
            return Err(BackendError::Usage(format!(
                "--dvs-crop, --dvs-mirror and --dvs-polarity configure speck's DVS layer; {target} has no event sensor"
            )));
        }
        Ok(())
    }
}

impl TargetOptions {
    /// For a chip that runs alone: `--chips` other than 1 is a usage error that says `why`.
    pub fn one_device(&self, why: &str) -> Result<(), BackendError> {
        if self.chips == 1 {
            Ok(())
        } else {
            Err(BackendError::Usage(format!(
                "--chips {}: {why}",
                self.chips
            )))
        }
    }
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            chips: 1,
            timesteps: None,
            dvs: DvsOptions::default(),
        }
    }
}

/// The activity a floorline analysis estimates loads from: an activity profile of the quantised
/// graph (measured by the reference interpreter on first use, for backends that model loads) and
/// samples to run (for backends whose emulator measures them).
pub struct Activity<'a> {
    graph: Option<(&'a Graph, &'a [Vec<Vec<f32>>])>,
    profile: OnceLock<Result<ActivityProfile, InterpError>>,
    samples: Array,
}

/// Samples an emulator measures loads on: at most this many calibration samples.
pub const MEASURE_SAMPLES: usize = 16;

impl<'a> Activity<'a> {
    /// The activity of `graph` (quantised) on calibration samples `calib` (`[sample][input]`);
    /// without samples, every value is assumed active with the profile's default density and
    /// emulators measure on one mid-grey input.
    pub fn new(graph: &'a Graph, calib: &'a [Vec<Vec<f32>>]) -> Self {
        let numel = graph.inputs.first().map_or(0, |&i| graph.ty(i).numel());
        let snn = crate::floorline::is_snn(graph);
        let samples = match calib_array(calib) {
            // A spiking network's samples are spike frames: `[N, T, …input]`.
            Some(mut a) if snn && numel > 0 => {
                let per = a.shape.get(1).copied().unwrap_or(0);
                let mut shape = vec![a.shape[0], per / numel];
                shape.extend(graph.ty(graph.inputs[0]).shape.iter().copied());
                a.shape = shape;
                a
            }
            Some(a) => a,
            // One frame with every input spiking, or a mid-grey frame.
            None if snn => {
                let mut shape = vec![1, 1];
                shape.extend(graph.ty(graph.inputs[0]).shape.iter().copied());
                Array {
                    shape,
                    data: vec![1.0; numel],
                }
            }
            None => Array {
                shape: vec![1, numel],
                data: vec![0.5; numel],
            },
        };
        Activity {
            graph: Some((graph, calib)),
            profile: OnceLock::new(),
            samples,
        }
    }

    /// A given profile and samples (for tests and what-if analyses).
    pub fn of(profile: ActivityProfile, samples: Array) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(profile));
        Activity {
            graph: None,
            profile: cell,
            samples,
        }
    }

    /// The activity profile (measured once, on first use).
    pub fn profile(&self) -> Result<&ActivityProfile, BackendError> {
        self.profile
            .get_or_init(|| match self.graph {
                Some((g, calib)) => ActivityProfile::measure(g, calib),
                // `Activity::of` fills the cell, so without a graph it is never empty here.
                None => Ok(ActivityProfile {
                    from: "no activity".into(),
                    inputs: Vec::new(),
                    layers: Vec::new(),
                }),
            })
            .as_ref()
            .map_err(|e| BackendError::input(e.clone()))
    }

    /// Samples `[N, …]` to run on the emulator.
    pub fn samples(&self) -> &Array {
        &self.samples
    }
}

/// Calibration samples as one `[N, …]` array of the first input (at most [`MEASURE_SAMPLES`]).
pub fn calib_array(calib: &[Vec<Vec<f32>>]) -> Option<Array> {
    let first = calib.first()?.first()?;
    let n = calib.len().min(MEASURE_SAMPLES);
    let data: Vec<f32> = calib
        .iter()
        .take(n)
        .flat_map(|s| s[0].iter().copied())
        .collect();
    Some(Array {
        shape: vec![n, first.len()],
        data,
    })
}

/// A chip nmc compiles for.
pub trait Backend: Send + Sync {
    /// The target's name (`--target`, artifact headers, the default artifact extension).
    fn name(&self) -> &'static str;

    /// Human-readable description and limits for `nmc targets`.
    fn description(&self) -> String;

    /// Machine-readable limits for `nmc targets --format json`.
    fn describe_json(&self) -> serde_json::Value;

    /// How models are quantised for the chip (and so its execution mode).
    fn quantization(&self) -> Quantization;

    /// Whether the chip runs the snn execution mode: spiking networks (LIF, CubaLIF, IF) as
    /// Loihi's fixed-point CUBA-LIF neurons stepped over time (`nmc_ir::CubaQuant`). A graph with
    /// LIF or CubaLIF neurons is compiled in that mode whatever [`Backend::quantization`] says;
    /// a chip that cannot run it says why in [`Backend::snn_refusal`].
    fn runs_snn(&self) -> bool {
        false
    }

    /// Why the chip cannot run a spiking network (LIF, CubaLIF), for the error a user gets.
    fn snn_refusal(&self) -> String {
        format!(
            "{} has no spiking neuron dynamics nmc can map LIF or CubaLIF neurons to",
            self.name()
        )
    }

    /// What the e-graph's extraction may assume the chip runs natively.
    fn native_ops(&self) -> NativeOps;

    /// Timesteps a run takes by default (`None`: each artifact chooses).
    fn default_timesteps(&self) -> Option<u32> {
        None
    }

    /// Checks the options against what the chip supports (e.g. a single-device chip refuses
    /// `--chips 2`); a usage error otherwise.
    fn check_options(&self, opts: &TargetOptions) -> Result<(), BackendError>;

    /// The cost-model constants with units and sources, after `params` overrides.
    fn cost_params(&self, params: &ChipParams) -> Result<Vec<CostParam>, BackendError>;

    /// The default mapping of a quantised graph (the vendor-style baseline every search is
    /// measured against).
    fn default_mapping(&self, graph: &Graph, opts: &TargetOptions)
        -> Result<Mapping, BackendError>;

    /// The space the mapping searches (`--partition floorline|evolve`) explore.
    fn search_space<'g>(
        &self,
        graph: &'g Graph,
        opts: &TargetOptions,
    ) -> Result<SearchSpace<'g>, BackendError>;

    /// Lowers a quantised, mapped graph; returns the artifact's bytes.
    fn lower(
        &self,
        graph: &Graph,
        mapping: &Mapping,
        source_hash: u64,
        opts: &TargetOptions,
    ) -> Result<Vec<u8>, BackendError>;

    /// Whether `bytes` start like an artifact of this target (of any version).
    fn is_artifact(&self, bytes: &[u8]) -> bool;

    /// Decodes and validates an artifact.
    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Loaded>, ArtifactError>;
}

/// A decoded, validated artifact (`Any`, so tools can reach the backend's own type).
pub trait Loaded: std::any::Any + Send + Sync {
    /// The target it was compiled for.
    fn target(&self) -> &'static str;

    /// The readable listing (deterministic; snapshot-tested).
    fn listing(&self) -> String;

    /// The JSON form of `inspect --format json` (a `layers` array with names and placement).
    fn to_json(&self) -> serde_json::Value;

    /// Runs samples (`[N, …]` floats, quantised with the artifact's input grid) over `timesteps`
    /// (`None`: the artifact's default), with cost constants overridden by `params`.
    fn run(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError>;

    /// Runs the samples as consecutive frames of one stream, as a camera feeds a chip: the state
    /// is reset before the first frame only, so each frame sends only what changed (sigma-delta)
    /// or integrates on what the previous frames left (spiking). Frames run one after another;
    /// `progress` is called after each. The report sums over the frames as `run`'s does over
    /// samples.
    fn run_stream(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError>;

    /// How the chip encodes its input, when it takes integer codes from the host: then an integer
    /// `.npy` holds those codes (the AKD1000's 8-bit images, as akida takes them) and `nmc run`
    /// converts them, while a float `.npy` holds values quantised with the scale. `None`
    /// (the default): every `.npy` holds values.
    fn input_codes(&self) -> Option<nmc_ir::QuantParams> {
        None
    }

    /// [`Loaded::run`] (or [`Loaded::run_stream`] when `stream`), also recording the first
    /// output after every timestep into [`RunResult::steps`] (`run --record`). Targets without
    /// timesteps keep the default: a usage error saying so.
    fn run_recorded(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        stream: bool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        let _ = (samples, timesteps, params, stream, progress);
        Err(BackendError::Usage(format!(
            "--record: {} runs each input in one pass, without timesteps to record",
            self.target()
        )))
    }

    /// [`Loaded::run`], calling `progress` after each sample (a progress bar on a terminal).
    /// The default calls `progress` once, at the end.
    fn run_with_progress(
        &self,
        samples: &Array,
        timesteps: Option<u32>,
        params: &ChipParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        let r = self.run(samples, timesteps, params);
        progress();
        r
    }

    /// The shape of one sample of the artifact's input (without the batch axis), which `nmc run`
    /// checks an input array against; `None` when the artifact has not exactly one input.
    fn input_shape(&self) -> Option<Vec<usize>>;

    /// [`Loaded::run_recorded`] (samples independent), also recording each named layer's spikes
    /// and voltages after every step into [`RunResult::probes`] (`run --probe`). Only a spiking
    /// network has them; the default is a usage error saying so.
    fn run_probed(
        &self,
        _samples: &Array,
        _timesteps: Option<u32>,
        _params: &ChipParams,
        _probes: &[String],
        _progress: &(dyn Fn() + Sync),
    ) -> Result<RunResult, BackendError> {
        Err(BackendError::Usage(format!(
            "--probe records the spikes and voltages of a spiking network's layers; this {} artifact has no spiking layers",
            self.target()
        )))
    }

    /// Whether the artifact is a spiking network that takes spike frames, one per timestep:
    /// samples `[samples, T, …input_shape]` (snn mode).
    fn spike_frames(&self) -> bool {
        false
    }

    /// Whether the artifact takes spike frames `[samples, T, …input_shape]` besides its usual
    /// input (Speck: dense samples, rate-encoded).
    fn accepts_frames(&self) -> bool {
        self.spike_frames()
    }

    /// Runs one DVS-style event stream (`x, y, t, p`), binned into `timesteps` steps.
    fn run_events(
        &self,
        _events: &EventArray,
        _timesteps: Option<u32>,
        _params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        Err(BackendError::input(format!(
            "event input (a .npy with fields x, y, t, p) is for event-driven chips; this artifact is for {}",
            self.target()
        )))
    }

    /// Runs one event stream binned as `binning` says; without `dt` it is
    /// [`Loaded::run_events`] with `binning.timesteps`.
    fn run_events_binned(
        &self,
        events: &EventArray,
        binning: &EventBinning,
        params: &ChipParams,
    ) -> Result<RunResult, BackendError> {
        if binning.dt.is_some() {
            return Err(BackendError::input(format!(
                "event input (a .npy with fields x, y, t, p) is for event-driven chips; this artifact is for {}",
                self.target()
            )));
        }
        self.run_events(events, binning.timesteps, params)
    }

    /// [`Loaded::bin_events`] for any binning (`binning.timesteps` must be given without `dt`).
    fn bin_events_binned(
        &self,
        events: &EventArray,
        binning: &EventBinning,
    ) -> Result<Vec<Vec<Vec<i64>>>, BackendError> {
        match (binning.dt, binning.timesteps) {
            (None, Some(t)) => self.bin_events(events, t),
            _ => Err(BackendError::input(format!(
                "event input is for event-driven chips; this artifact is for {}",
                self.target()
            ))),
        }
    }

    /// The per-step input event counts an event stream gives (`[step][input][element]`), for
    /// checking an emulator against `nmc_ir::Interpreter::run_events`.
    fn bin_events(
        &self,
        _events: &EventArray,
        _timesteps: u32,
    ) -> Result<Vec<Vec<Vec<i64>>>, BackendError> {
        Err(BackendError::input(format!(
            "event input is for event-driven chips; this artifact is for {}",
            self.target()
        )))
    }

    /// The floorline loads of this mapping under `activity`: modelled from the activity profile
    /// or measured by the emulator on the activity's samples, as the backend does best.
    fn floorline_loads(
        &self,
        activity: &Activity<'_>,
        params: &ChipParams,
    ) -> Result<Loads, BackendError>;
}
