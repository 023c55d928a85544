//! `nmc-backend`: what every nmc backend shares, between the backend crates and `nmc-ir`.
//!
//! - [`Backend`] and [`Loaded`]: the contract between the compiler and a chip;
//! - [`envelope`]: the artifact header, its checks and [`ArtifactError`];
//! - [`check`]: validation helpers with one set of limits for untrusted artifacts;
//! - [`cost`]: cost-constant tables declared once per chip ([`cost_table!`]) and overrides;
//! - [`floorline`]: the floorline vocabulary (per-core [`Counters`], loads, constants, [`Bound`]
//!   and its one tie rule, activity profiles);
//! - [`mapping`] and [`search_space`]: partition helpers and the mapping searches' genome;
//! - [`quant`]: how a target wants models quantised;
//! - [`run`]: samples in, outputs and per-core figures out.
#![deny(missing_docs)]

pub mod backend;
pub mod check;
pub mod cost;
pub mod envelope;
pub mod error;
pub mod events;
pub mod floorline;
pub mod mapping;
pub mod quant;
pub mod run;
pub mod search_space;

pub use backend::{
    calib_array, Activity, Backend, DvsOptions, ExecMode, Loaded, NativeOps, Polarity,
    TargetOptions, MEASURE_SAMPLES,
};
pub use cost::{ChipParams, Cost, CostParam, CostTable, UnknownCost};
pub use envelope::{corrupt, ArtifactError, Envelope, Enveloped, Header};
pub use error::BackendError;
pub use floorline::{ActivityProfile, Bound, Constants, CoreLoad, Counters, Loads};
pub use mapping::{
    assign, greedy, greedy_shape, greedy_shapes, layer_name, place, uniform_space, CoreModel,
    FitError, LayerSizer, TileShape,
};
pub use quant::{AkidaWidths, QuantSpec, Quantization, RateOptions};
pub use run::{
    add_links, check_int_inputs, finish_perf, map_samples, split_samples, Array, ChipPerf,
    CorePerf, EventArray, EventBinning, InputError, IntInput, LinkPerf, PerfSummary, Probe,
    RunError, RunResult,
};
pub use search_space::{Decoder, Genome, Problem, SearchSpace};
