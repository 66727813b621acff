//! `run.json`: who this run is and how it got here. A fresh run writes its id and its first
//! start; every resume appends a start (what ran it, where, and which config keys it changed);
//! the end writes the status. `report` and `--resume` read the status, so a failed or
//! unfinished run is never mistaken for a finished one, and the id that every checkpoint and
//! `state.json` carry ties them to this run alone.

use super::{write_atomically, RunDir};
use crate::error::TrainError;
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hasher};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Started and not ended (or killed without a word: a resume continues it).
    Running,
    /// Stopped by a signal after writing a checkpoint; `--resume` continues it.
    Stopped,
    /// Ended with an error after its first checkpoint; `error` says which.
    Failed,
    /// `summary.json` holds its results.
    Finished,
}

/// Where and how one start (the first, or a resume) of a run ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// UTC, RFC 3339.
    pub at: String,
    pub version: String,
    /// The commit the binary was built from (`+dirty` with uncommitted changes), when built in a
    /// git checkout.
    pub git_commit: Option<String>,
    pub command_line: Vec<String>,
    pub host: String,
    pub device: String,
    pub world: usize,
    /// Config keys this resume changed from the run's that cannot change results, as
    /// `key: old -> new`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Config keys this resume changed with `--resume-with-changes`, which change results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_with_effect: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique per fresh run: `YYYYmmddTHHMMSSZ-xxxxxxxx`.
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first start, then one per resume.
    pub starts: Vec<Start>,
}

impl RunRecord {
    /// A fresh run's record, its id made from `start.at` and a random suffix.
    pub fn new(start: Start) -> RunRecord {
        let stamp: String = start.at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish() as u32;
        RunRecord { id: format!("{stamp}-{random:08x}"), status: Status::Running, error: None, starts: vec![start] }
    }

    /// Every key a resume changed with `--resume-with-changes` over the run's life.
    pub fn changes(&self) -> Vec<String> {
        self.starts.iter().flat_map(|s| s.changed_with_effect.iter().cloned()).collect()
    }
}

impl RunDir {
    fn record_path(&self) -> std::path::PathBuf {
        self.root.join("run.json")
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<(), TrainError> {
        let text = serde_json::to_string_pretty(record).expect("record serialises");
        write_atomically(&self.record_path(), text.as_bytes())
    }

    /// The run's record, or `None` where the directory holds no run.
    pub fn read_record(&self) -> Result<Option<RunRecord>, TrainError> {
        let path = self.record_path();
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io("read", &path)(e)),
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| TrainError::State { path, reason: e.to_string() }),
        }
    }

    /// Sets the run's status (and the error that ended it), keeping the rest of its record.
    pub fn set_status(&self, status: Status, error: Option<String>) -> Result<(), TrainError> {
        let Some(mut record) = self.read_record()? else { return Ok(()) };
        (record.status, record.error) = (status, error);
        self.write_record(&record)
    }
}
