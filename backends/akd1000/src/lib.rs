//! `nmc-akd1000`: the BrainChip AKD1000 (Akida 1.0) backend of nmc.
//!
//! - [`spec`]: the device ([`akd1000`]): 20 nodes, 78 NPs and their CNP1/CNP2/FNP2/FNP3
//!   capability sets, per-NP SRAM, the HRC, the Akida 1.0 constraints table ([`Limits`]) and the
//!   latency/energy constants ([`CostModel`]), each with its source;
//! - [`layers`]: quantised canonical IR → Akida layers ([`analyze`]), checking every constraint;
//! - [`map`]: layers → HRC and NPs ([`map()`]), split by output channels and spatial bands;
//! - [`lower()`]: the artifact, in the vendor's conventions (Conv2D kernels flipped, column-major
//!   flatten, thresholds and integer steps);
//! - [`artifact`]: the versioned prost format ([`encode`], [`decode`], which validates);
//! - [`listing()`]: a deterministic text form, for snapshots and `nmc inspect`;
//! - [`emulator`]: an event-based emulator ([`Emulator`]) bit-exact with the IR's reference
//!   interpreter, with per-NP counters, a pipeline latency model and energy ([`PerfReport`]);
//! - [`backend`]: the chip as an nmc target ([`Akd1000`], an [`nmc_backend::Backend`]) and a
//!   decoded artifact ([`LoadedAkd1000`], an [`nmc_backend::Loaded`]).
#![deny(missing_docs)]

pub mod artifact;
pub mod backend;
pub mod emulator;
pub mod layers;
pub mod listing;
pub mod lower;
pub mod map;
pub mod spec;
pub mod validate;

pub use artifact::{decode, encode, is_artifact, Artifact, ArtifactError, ENVELOPE};
pub use backend::{Akd1000, LoadedAkd1000};
pub use emulator::{Bound, Counters, EmuError, Emulator, LayerPerf, PerfReport, UnitPerf};
pub use layers::{analyze, AkError, AkLayer, Analysis, LayerKind, PoolSpec, Src};
pub use listing::listing;
pub use lower::{lower, LowerError};
pub use map::{
    choices_from_ir, map, map_explicit, map_given, map_graph, need, needs, plan, to_ir_mapping,
    LayerChoice, Need, NpMapping, Pass, Slice, Unit, UnitType,
};
pub use nmc_ir::NodeRef;
pub use spec::{akd1000, ChipSpec, Cost, CostModel, CostTable, Limits, NpSlot, NpType};
