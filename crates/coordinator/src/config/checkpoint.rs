//! `checkpoint:`: which checkpoints a run keeps on disk.

use super::error::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

/// A run keeps, per finished time step, the model alone (`checkpoints/step-T.safetensors`: what
/// `eval`, warm starts and a resume need; the optimizer restarts at every time step), and of the
/// resumable states written inside time steps (`budget.checkpoint_every`, a stop by a signal:
/// model plus optimizer moments) the last `keep`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Resumable states inside time steps kept on disk, newest first (at least 1).
    pub keep: usize,
    /// Keep every resumable state instead (`keep` is then ignored).
    pub keep_all: bool,
}

impl Default for CheckpointSection {
    fn default() -> CheckpointSection {
        CheckpointSection { keep: 1, keep_all: false }
    }
}

impl CheckpointSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.keep == 0 {
            return Err(invalid("checkpoint.keep", "0 would delete the state a resume needs; keep at least 1 (or set checkpoint.keep_all)"));
        }
        Ok(())
    }
}
