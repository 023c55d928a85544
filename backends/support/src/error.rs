//! The error every [`crate::Backend`] method returns: what went wrong, for which target, with the
//! backend's own typed error kept as the source.

use crate::envelope::ArtifactError;

/// A boxed typed error from a backend (its lowering, fit or emulator error), kept as the source.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a backend could not do what was asked. The kinds match the compiler's error kinds and exit
/// codes: fit 3, artifact 4, usage 2, the others 1.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The model does not fit the chip: which layer, which resource, needed vs available.
    #[error("model does not fit {target}: {source}")]
    Fit {
        /// Target name.
        target: &'static str,
        /// The backend's error.
        source: Source,
    },
    /// The model cannot be expressed on the chip.
    #[error("cannot lower to {target}: {source}")]
    Lower {
        /// Target name.
        target: &'static str,
        /// The backend's error.
        source: Source,
    },
    /// The samples or events given to a run do not suit the artifact.
    #[error("{source}")]
    Input {
        /// What is wrong.
        source: Source,
    },
    /// An option does not apply to this target, or is out of its range.
    #[error("{0}")]
    Usage(String),
    /// The artifact is not usable.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl BackendError {
    /// A fit error of `target`.
    pub fn fit(target: &'static str, source: impl Into<Source>) -> Self {
        BackendError::Fit {
            target,
            source: source.into(),
        }
    }

    /// A lowering error of `target`.
    pub fn lower(target: &'static str, source: impl Into<Source>) -> Self {
        BackendError::Lower {
            target,
            source: source.into(),
        }
    }

    /// An input error.
    pub fn input(source: impl Into<Source>) -> Self {
        BackendError::Input {
            source: source.into(),
        }
    }
}

/// An unknown cost-constant name in `--chip-params` is a usage error.
impl From<crate::cost::UnknownCost> for BackendError {
    fn from(e: crate::cost::UnknownCost) -> Self {
        BackendError::Usage(e.to_string())
    }
}
