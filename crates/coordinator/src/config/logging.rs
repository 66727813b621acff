//! `logging:`: where a run's metrics go besides `metrics.jsonl`, which is always written.

use super::error::ConfigError;
use serde::{Deserialize, Serialize};

/// The loggers of a run. Each is fed the very lines of `metrics.jsonl` (on rank 0), so they
/// hold the same numbers; a resumed run rewrites them from the lines its checkpoint keeps, so
/// no step appears twice. None of these keys changes a run's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// TensorBoard event files in `RUN/tensorboard/` (`tensorboard --logdir runs/`): a scalar
    /// per number of each line, tagged `TYPE/COLUMN`, and `rekindle pretrain`'s reconstructions.
    pub tensorboard: bool,
    /// CSV tables in `RUN/csv/`, one per kind of line (`train.csv`, `eval.csv`, `curve.csv`,
    /// `selection.csv`, `pretrain.csv`), a column per field (`pd.read_csv`).
    pub csv: bool,
    /// `rekindle pretrain` draws what the decoder makes of eight of its images every this many
    /// optimizer steps and after the last (`RUN/reconstructions/pretrain-N.png`, and TensorBoard's
    /// images; 0: never).
    pub image_every: usize,
}

impl Default for LoggingSection {
    fn default() -> LoggingSection {
        LoggingSection { tensorboard: true, csv: true, image_every: 100 }
    }
}

impl LoggingSection {
    /// Every value is valid: a logger is on or off, and any interval (0 included) means
    /// something. Kept so that every section is checked in one place.
    pub fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
