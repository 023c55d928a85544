//! The targets nmc compiles for: a registry of backends. Each chip is one crate implementing
//! [`nmc_backend::Backend`] (and `Loaded` for its decoded artifacts); the compiler holds a target
//! only as a [`Target`] handle to that trait object, so adding a chip is one crate plus one line
//! in [`REGISTRY`].

use crate::Error;
use nmc_backend::{ArtifactError, Backend, Loaded};
use std::fmt;

pub use nmc_backend::{
    ChipParams, CorePerf, CostParam, ExecMode, PerfSummary, RunResult, SearchSpace,
};

/// Every built-in target, in the order `nmc targets` lists them.
static REGISTRY: [Target; 3] = [
    Target(&nmc_loihi2::Loihi2),
    Target(&nmc_akd1000::Akd1000),
    Target(&nmc_speck::Speck),
];

/// A chip nmc can compile for: a handle to its backend.
#[derive(Clone, Copy)]
pub struct Target(&'static dyn Backend);

impl Target {
    /// All built-in targets.
    pub fn all() -> &'static [Target] {
        &REGISTRY
    }

    /// The built-in target called `name`.
    pub fn lookup(name: &str) -> Option<Target> {
        REGISTRY.iter().copied().find(|t| t.name() == name)
    }

    /// The built-in target called `name`; an unknown name is a usage error listing the known ones.
    pub fn named(name: &str) -> Result<Target, Error> {
        Target::lookup(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown target `{name}` (known: {})",
                REGISTRY.map(|t| t.name()).join(", ")
            ))
        })
    }

    /// A target outside the registry (a backend crate under test, or a user's own).
    pub fn from_backend(backend: &'static dyn Backend) -> Target {
        Target(backend)
    }

    /// The backend.
    pub fn backend(self) -> &'static dyn Backend {
        self.0
    }

    /// The execution mode models compile to.
    pub fn mode(self) -> ExecMode {
        self.0.quantization().mode()
    }
}

impl std::ops::Deref for Target {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Target {}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.name())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl clap::ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        &REGISTRY
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let summary = self.description();
        let first = summary.lines().next().unwrap_or("");
        let help = first.trim_start_matches(self.name()).trim().to_string();
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

/// Reads `--chip-params`: `name = value` pairs from a TOML file, at the top level or under
/// `[cost]`. The file is part of the command line, so every problem with it (missing, not a
/// regular file, over [`crate::fsutil::MAX_PARAMS_BYTES`], malformed, an unknown name) is a usage
/// error (exit 2) naming it.
pub fn load_chip_params(path: &std::path::Path) -> Result<ChipParams, Error> {
    let bad = |m: String| Error::Usage(format!("--chip-params {}: {m}", path.display()));
    let bytes = crate::fsutil::read_limited(
        path,
        crate::fsutil::MAX_PARAMS_BYTES,
        "a cost-constant file holds a few dozen numbers",
    )
    .map_err(|e| bad(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    let table = match table.get("cost") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => table,
    };
    let mut values = Vec::new();
    for (k, v) in table {
        let v = match v {
            toml::Value::Float(f) => f,
            toml::Value::Integer(i) => i as f64,
            other => {
                return Err(bad(format!(
                    "`{k}` must be a number, is {}",
                    other.type_str()
                )))
            }
        };
        if !v.is_finite() || v < 0.0 {
            return Err(bad(format!("`{k}` must be a finite non-negative number")));
        }
        values.push((k, v));
    }
    Ok(ChipParams { values })
}

/// A decoded artifact of any target.
pub struct LoadedArtifact(Box<dyn Loaded>);

impl LoadedArtifact {
    /// Whether `bytes` start like an artifact of any built-in target.
    pub fn is_artifact(bytes: &[u8]) -> bool {
        REGISTRY.iter().any(|t| t.is_artifact(bytes))
    }

    /// Decodes and validates an artifact of a built-in target.
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        match REGISTRY.iter().find(|t| t.is_artifact(bytes)) {
            Some(t) => Self::decode_for(*t, bytes),
            None => Err(ArtifactError::Unrecognised),
        }
    }

    /// Decodes and validates an artifact of `target`.
    pub fn decode_for(target: Target, bytes: &[u8]) -> Result<Self, ArtifactError> {
        target.decode(bytes).map(LoadedArtifact)
    }

    /// The target's name.
    pub fn target(&self) -> &'static str {
        self.0.target()
    }

    /// The backend's own decoded artifact (e.g. `nmc_akd1000::Loaded`), for tools that read it.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.0.as_ref();
        any.downcast_ref::<T>()
    }

    /// Runs samples with the target's default cost constants (see [`Loaded::run`]).
    pub fn run(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
    ) -> Result<RunResult, nmc_backend::BackendError> {
        self.0.run(samples, timesteps, &ChipParams::default())
    }

    /// [`LoadedArtifact::run`] with cost constants overridden.
    pub fn run_with(
        &self,
        samples: &nmc_backend::Array,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, nmc_backend::BackendError> {
        self.0.run(samples, timesteps, params)
    }

    /// [`LoadedArtifact::run_events`] with cost constants overridden.
    pub fn run_events_with(
        &self,
        events: &nmc_backend::EventArray,
        timesteps: Option<u32>,
        params: &ChipParams,
    ) -> Result<RunResult, nmc_backend::BackendError> {
        self.0.run_events(events, timesteps, params)
    }

    /// Runs one event stream with the target's default cost constants (see
    /// [`Loaded::run_events`]).
    pub fn run_events(
        &self,
        events: &nmc_backend::EventArray,
        timesteps: Option<u32>,
    ) -> Result<RunResult, nmc_backend::BackendError> {
        self.0.run_events(events, timesteps, &ChipParams::default())
    }
}

impl std::ops::Deref for LoadedArtifact {
    type Target = dyn Loaded;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
