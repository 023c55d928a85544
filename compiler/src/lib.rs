//! `nmc`: a neuromorphic model compiler. ONNX in, per-chip artifacts out, run on nmc's emulators.
//!
//! The pipeline (see ARCHITECTURE.md): [`onnx`] import → [`passes::canonicalize`] →
//! [`passes::quantize`] → [`partition`] → lowering by the target's backend crate. Build scripts
//! call [`compile`] with [`Options`]; the `nmc` binary is a thin layer over the same functions.
//!
//! ```no_run
//! let opts = nmc::Options::new(nmc::Target::named("loihi2")?);
//! let out = nmc::compile(std::path::Path::new("model.onnx"), &opts)?;
//! std::fs::write("model.loihi2", &out.artifact)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cli;
pub mod cost;
pub mod driver;
pub mod egraph;
mod error;
pub mod fsutil;
pub mod fuzz;
pub mod hdf5;
pub mod import;
pub mod npy;
pub mod onnx;
pub mod partition;
pub mod passes;
pub mod snn;
pub mod stage;
pub mod synth;
pub mod target;

pub use driver::{compile, Compiled, Options, PartitionKind};
pub use error::Error;
pub use stage::{Emit, Stage};
pub use target::{LoadedArtifact, Target};
