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

/// What a resumed run's `metrics.jsonl` belongs to, which decides the lines it keeps.
pub enum Resumed {
    Train,
    Pretrain,
}

impl RunDir {
    /// Opens `metrics.jsonl` afresh; a resumed run keeps the lines of the work its last
    /// checkpoint holds and drops the rest, since that work runs again.
    pub fn metrics(&self, resumed: Option<Resumed>) -> Result<MetricsLog, TrainError> {
        let path = self.root.join("metrics.jsonl");
        let kept = match resumed {
            None => String::new(),
            Some(kind) => {
                let old = std::fs::read_to_string(&path).unwrap_or_default();
                match kind {
                    Resumed::Train => crate::trainer::kept_lines(self, &old)?,
                    Resumed::Pretrain => crate::pretrain::kept_lines(self, &old)?,
                }
            }
        };
        let file = std::fs::File::create(&path).map_err(TrainError::io("create", &path))?;
        let mut file = std::io::BufWriter::new(file);
        file.write_all(kept.as_bytes()).map_err(TrainError::io("write", &path))?;
        Ok(MetricsLog { file, path, error: None })
    }
}

/// The lines of `text` that `keep` accepts (given each line's JSON), each with its newline; a
/// line cut off by a kill does not parse and goes.
pub(crate) fn filter_lines(text: &str, mut keep: impl FnMut(&serde_json::Value) -> bool) -> String {
    text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["type"] == "run" || keep(&v))).map(|l| format!("{l}\n")).collect()
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
