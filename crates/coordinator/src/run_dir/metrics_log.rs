//! `metrics.jsonl`: one JSON object per line, flushed per line so `tail -f` follows the run.

use super::RunDir;
use crate::error::TrainError;
use std::io::Write;
use std::path::PathBuf;

/// The open `metrics.jsonl` of a run. The first write error is kept and reported by
/// [`MetricsLog::finish`], so a full disk does not stop training midway.
pub struct MetricsLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    error: Option<std::io::Error>,
}

impl RunDir {
    /// Opens `metrics.jsonl` afresh; with `resume`, it keeps the lines of the work the last
    /// checkpoint holds (those whose `line_key` is below `state.json`'s `state_key`) and drops the
    /// rest, since that work runs again.
    pub fn metrics(&self, resume: bool, state_key: &str, line_key: &str) -> Result<MetricsLog, TrainError> {
        let path = self.root.join("metrics.jsonl");
        let mut kept = String::new();
        if resume {
            let completed = self.saved_count(state_key)?;
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            let keep = |l: &&str| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v[line_key].as_u64()).is_some_and(|s| s < completed);
            kept = old.lines().filter(keep).map(|l| format!("{l}\n")).collect();
        }
        let file = std::fs::File::create(&path).map_err(TrainError::io("create", &path))?;
        let mut file = std::io::BufWriter::new(file);
        file.write_all(kept.as_bytes()).map_err(TrainError::io("write", &path))?;
        Ok(MetricsLog { file, path, error: None })
    }
}

impl MetricsLog {
    pub fn write(&mut self, line: serde_json::Value) {
        if let Err(e) = writeln!(self.file, "{line}").and_then(|_| self.file.flush()) {
            self.error.get_or_insert(e);
        }
    }

    pub fn finish(mut self) -> Result<(), TrainError> {
        let flushed = self.file.flush();
        match self.error.take().map_or(flushed, Err) {
            Err(e) => Err(TrainError::io("write", &self.path)(e)),
            Ok(()) => Ok(()),
        }
    }
}
