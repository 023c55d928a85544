//! `nmc-loihi2`: the Intel Loihi 2 backend of nmc.
//!
//! - [`spec`]: the chip description ([`ChipSpec`], [`loihi2`]) with the floorline cost constants
//!   and their sources, and the quantisation widths ([`ChipSpec::quant_spec`]);
//! - [`memory`]: the per-core memory model ([`slice_usage`], [`ChipSpec::check_slice`]) the
//!   partitioner, lowering and the emulator share;
//! - [`backend`]: the target behind the compiler's contract ([`Loihi2`], `nmc_backend::Backend`);
//! - [`floorline`]: per-core loads modelled from an activity profile;
//! - [`lower()`]: quantised canonical IR + mapping → [`Artifact`];
//! - [`artifact`]: the versioned prost format ([`encode`], [`decode`], which validates);
//! - [`listing()`]: a deterministic text form of an artifact, for snapshots;
//! - [`emulator`]: an event-driven emulator ([`Emulator`]) bit-exact with the IR's reference
//!   interpreter, which also counts the floorline quantities per core and timestep and reports
//!   latency, energy and bounds ([`PerfReport`]).
#![deny(missing_docs)]

pub mod artifact;
pub mod backend;
pub mod emulator;
pub mod floorline;
pub mod listing;
pub mod lower;
pub mod memory;
pub mod spec;
pub mod tiles;
pub mod validate;

pub use artifact::{decode, encode, is_artifact, Artifact, ArtifactError};
pub use backend::{Cores, LoadedLoihi2, Loihi2};
pub use emulator::{
    min_timesteps, Bound, CoreStep, CoreTotals, Counters, EmuError, Emulator, Kernels, PerfReport,
    StepReport,
};
pub use listing::listing;
pub use lower::{lower, LowerError};
pub use memory::{slice_usage, FitError, LayerFootprint, Resource, SliceUsage, UsageError};
pub use nmc_ir::NodeRef;
pub use spec::{loihi2, ChipSpec, Cost, CostModel};
