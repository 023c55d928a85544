//! The library's error type, one variant per failing stage. Each maps to a documented exit code
//! (ARCHITECTURE.md §9): 1 invalid or unsupported model or input, 2 usage, 3 does not fit the
//! target, 4 corrupt artifact; a panic (an nmc bug) exits with 101.

use nmc_backend::BackendError;
use std::path::PathBuf;

/// Everything that can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be imported.
    #[error(transparent)]
    Import(#[from] crate::onnx::ImportError),
    /// A pass rejected the model.
    #[error(transparent)]
    Pass(#[from] crate::passes::PassError),
    /// The model does not fit the chip.
    #[error("model does not fit {target}: {message}")]
    Fit {
        /// Target name.
        target: &'static str,
        /// Which layer, which resource, needed vs available.
        message: String,
    },
    /// Lowering to the artifact failed.
    #[error("cannot lower to {target}: {message}")]
    Lower {
        /// Target name.
        target: &'static str,
        /// Why.
        message: String,
    },
    /// An artifact file is corrupt or not an artifact.
    #[error("{}: {message}", path.display())]
    Artifact {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input file (`.npy`) is unusable.
    #[error("{message}")]
    Input {
        /// What is wrong, naming the file.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A backend refused: the model does not fit or cannot be expressed on the chip, an option
    /// does not apply to it, or its input or artifact is unusable (the backend's typed error is
    /// kept as the source).
    #[error(transparent)]
    Backend(#[from] nmc_backend::BackendError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Backend(BackendError::Usage(_)) => 2,
            Error::Fit { .. } | Error::Backend(BackendError::Fit { .. }) => 3,
            Error::Artifact { .. } | Error::Backend(BackendError::Artifact(_)) => 4,
            _ => 1,
        }
    }

    /// A short, stable name of the error kind (for scripts and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Import(e) => e.kind(),
            Error::Pass(_) => "pass",
            Error::Fit { .. } => "fit",
            Error::Lower { .. } => "lower",
            Error::Artifact { .. } => "artifact",
            Error::Input { .. } => "input",
            Error::Io { .. } => "io",
            Error::Usage(_) => "usage",
            Error::Backend(e) => match e {
                BackendError::Fit { .. } => "fit",
                BackendError::Lower { .. } => "lower",
                BackendError::Input { .. } => "input",
                BackendError::Usage(_) => "usage",
                BackendError::Artifact(_) => "artifact",
            },
        }
    }
}
