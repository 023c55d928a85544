//! `nmc-speck`: the SynSense Speck (DYNAP-CNN) backend of nmc.
//!
//! - [`backend`]: what the compiler calls ([`Speck`], an `nmc_backend::Backend`, and
//!   [`LoadedSpeck`], a decoded artifact);
//! - [`spec`]: the chip ([`ChipSpec`], [`speck`]): nine cores with their kernel, neuron and bias
//!   memories (entries) and every per-layer limit, each with its source (docs/chips.md §2);
//! - [`memory`]: sinabs' power-of-two memory formulas ([`MemoryUse`]);
//! - [`network`]: the Speck view of a quantised rate-mode graph ([`extract`]), checking every limit;
//! - [`mapping`]: layer → core assignment as a bipartite matching (Edmonds–Karp, like sinabs);
//! - [`lower()`]: network + assignment → [`Artifact`], a samna-shaped configuration;
//! - [`artifact`]: the versioned prost format in nmc-backend's envelope ([`encode`], [`decode`],
//!   which validates);
//! - [`listing()`]: the readable nine-core configuration;
//! - [`dvs`]: the DVS layer (polarity, pooling, region of interest, mirrors) on sensor events;
//! - [`events`]: DVS events `(x, y, t, p)` binned into timesteps;
//! - [`emulator`]: the event-driven emulator ([`Emulator`]), bit-exact with the IR's rate-mode
//!   reference interpreter, with per-core counters and a throughput-based latency.
#![deny(missing_docs)]

pub mod artifact;
pub mod backend;
pub mod dvs;
pub mod emulator;
pub use nmc_backend::events;
pub mod listing;
pub mod lower;
pub mod mapping;
pub mod memory;
pub mod network;
pub mod spec;
pub mod validate;

pub use artifact::{decode, encode, is_artifact, Artifact, ArtifactError};
pub use backend::{LoadedSpeck, Speck};
pub use emulator::{Bound, CoreCounters, Counters, EmuError, Emulator, PerfReport, RunOut};
pub use events::{bin, DvsEvent};
pub use listing::listing;
pub use lower::{lower, LowerError};
pub use mapping::{assign, AssignError};
pub use memory::{Memory, MemoryUse};
pub use network::{extract, Network, Problem, ProblemKind, Problems};
pub use spec::{speck, ChipSpec, CoreSpec, DEFAULT_TIMESTEPS, INPUT_LEVELS, MAX_TIMESTEPS};
