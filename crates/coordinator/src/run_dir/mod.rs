//! A run directory and everything in it, in one place:
//!
//! ```text
//! runs/NAME/
//!   run.json           the run's id, status, and every start (version, commit, command line,
//!                      host, device, world size, config keys a resume changed)
//!   config.yaml        the resolved config, headed by the run id and the overrides
//!   metrics.jsonl      a line naming the run, then one JSON line per optimizer step,
//!                      evaluation, selection
//!   summary.json       the final numbers (`Summary`, or `PretrainSummary`), with the run id
//!   state.json         what a resume needs besides tensors; written last in each checkpoint
//!   checkpoints/       step-T.safetensors (the model after time step T), step-T-iter-K.* and
//!                      pretrain-N.* (model + optimizer inside a stage), NAME.state.json
//!   mae.safetensors    `rekindle pretrain`'s encoder and decoder
//!   tensorboard/       the lines of metrics.jsonl as TensorBoard events (`logging.tensorboard`)
//!   csv/               the lines of metrics.jsonl as CSV tables, one per kind (`logging.csv`)
//!   reconstructions/   `rekindle pretrain`'s pictures every `logging.image_every` steps
//! ```
//!
//! One directory holds one run: the CLI refuses to start a run in a directory that holds
//! another, and every checkpoint and `state.json` carry the run id, checked on resume.
//!
//! Every command reads and writes these files through [`RunDir`], so their names, their
//! metadata keys and their atomic writes are decided here only.

mod checkpoint;
mod columns;
mod csv_log;
mod metrics_log;
mod record;
mod tensorboard;

pub use checkpoint::{Checkpoint, META_RUN_ID};
pub use metrics_log::{filter_lines, KeptLines, MetricsLog};
pub use record::{RunRecord, Start, Status};

use crate::config::TrainConfig;
use crate::error::TrainError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Metadata keys of a time step's checkpoint: the step, and the class id of each head row (so
/// `rekindle eval` maps predictions back to class ids).
pub const META_TIME_STEP: &str = "rekindle.time_step";
pub const META_CLASSES: &str = "rekindle.classes";
/// Metadata keys of `mae.safetensors`: the data it was trained on, and the holdout fraction
/// when that data was `data.train`'s held-out part (`model.init` checks them).
pub const META_PRETRAIN_SOURCE: &str = "rekindle.pretrain.source";
pub const META_PRETRAIN_HOLDOUT: &str = "rekindle.pretrain.holdout";

#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// A run directory to write into: `root` and `root/checkpoints` are created.
    pub fn create(root: &Path) -> Result<RunDir, TrainError> {
        let dir = root.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(TrainError::io("create", &dir))?;
        Ok(RunDir { root: root.to_path_buf() })
    }

    /// A run directory to read (`rekindle report`, `speedup`); nothing is created.
    pub fn open(root: &Path) -> RunDir {
        RunDir { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.yaml")
    }

    fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Where `rekindle pretrain` writes the encoder and decoder.
    pub fn mae_path(&self) -> PathBuf {
        self.root.join("mae.safetensors")
    }

    /// Writes the resolved `config`, headed by comments naming the run and the config file and
    /// overrides it was resolved from.
    pub fn write_config(&self, config: &TrainConfig, run_id: &str, origin: &str) -> Result<(), TrainError> {
        let text = format!("# run {run_id}\n# resolved from: {origin}\n{}", serde_yaml_ng::to_string(config).expect("config serialises"));
        write_atomically(&self.config_path(), text.as_bytes())
    }

    /// The run's resolved config, validated, with `overrides` applied.
    pub fn read_config(&self, overrides: &[String]) -> Result<TrainConfig, TrainError> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).map_err(TrainError::io("read", &path))?;
        Ok(TrainConfig::from_yaml(&path.display().to_string(), &text, overrides)?)
    }

    /// The config as text, when the run has one (`rekindle report` compares them key by key).
    pub fn config_text(&self) -> Option<String> {
        std::fs::read_to_string(self.config_path()).ok()
    }

    pub fn write_summary(&self, summary: &impl Serialize) -> Result<(), TrainError> {
        let text = serde_json::to_string_pretty(summary).expect("summary serialises");
        write_atomically(&self.summary_path(), text.as_bytes())
    }

    /// The summary of a finished run.
    pub fn read_summary<S: DeserializeOwned>(&self) -> Result<S, TrainError> {
        let path = self.summary_path();
        let text = std::fs::read_to_string(&path).map_err(TrainError::io("read (is it a finished run?)", &path))?;
        serde_json::from_str(&text).map_err(|e| TrainError::State { path, reason: e.to_string() })
    }

    /// Writes `state` as `state.json`, atomically: the last file of a checkpoint.
    pub fn save_state(&self, state: &impl Serialize) -> Result<(), TrainError> {
        let text = serde_json::to_string(state).expect("state serialises");
        write_atomically(&self.state_path(), text.as_bytes())
    }

    /// The last saved state, or `None` for a run that saved none yet.
    pub fn load_state<S: DeserializeOwned>(&self) -> Result<Option<S>, TrainError> {
        let path = self.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(TrainError::io("read", &path))?;
        serde_json::from_str(&text).map(Some).map_err(|e| TrainError::State { path, reason: e.to_string() })
    }

}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, then renames it over `path`, so a
/// reader (or a resume after a kill) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let mut file = std::fs::File::create(&tmp).map_err(TrainError::io("create", &tmp))?;
    file.write_all(bytes).map_err(TrainError::io("write", &tmp))?;
    file.sync_all().map_err(TrainError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(TrainError::io("write", path))
}
