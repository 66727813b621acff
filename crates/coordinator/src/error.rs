//! Why a training or pre-training run stopped. Every variant names its cause; the CLI adds the
//! rank (under a launcher) and, for an interruption, the command that resumes.

use crate::config::ConfigError;
use rekindle_comm::CommError;
use rekindle_data::DataError;
use rekindle_model::ModelError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Comm(#[from] CommError),
    /// A file of the run directory could not be read or written. The OS's reason is part of the
    /// message and not a `source()` as well, or `{:#}` would print it twice.
    #[error("cannot {action} {}: {error}", path.display())]
    Io { action: &'static str, path: PathBuf, error: std::io::Error },
    /// A run directory's `state.json` (or another of its records) does not parse.
    #[error("{} is not a run record rekindle wrote ({reason}); resume from a run directory that `rekindle train` or `rekindle pretrain` wrote", path.display())]
    State { path: PathBuf, reason: String },
    #[error("non-finite loss ({loss}) at time step {step}, stage `{stage}`, iteration {iteration}: lower optim.lr or set optim.clip_grad")]
    NonFinite { step: usize, stage: String, iteration: usize, loss: f32 },
    /// The data does not fit the model or the other split.
    #[error("data: {0}")]
    Mismatch(String),
    /// A rank's backend failed (a device allocation that did not fit, a failed launch); every
    /// rank stops after the step that saw it.
    #[error("rank {rank}: {message}; every rank stopped, the last checkpoint is kept")]
    Device { rank: usize, message: String },
    #[error("interrupted at time step {step}, iteration {iteration}; the last checkpoint is kept")]
    Interrupted { step: usize, iteration: usize },
}

impl TrainError {
    /// An IO error on `path` while trying to `action` it ("read", "write", "create", …).
    pub fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.to_path_buf();
        move |error| TrainError::Io { action, path, error }
    }
}
