//! `metrics.jsonl`: one JSON object per line, flushed per line so `tail -f` follows the run; and
//! the loggers fed the very same lines ([`super::tensorboard`], [`super::csv_log`]), so the
//! three never disagree.

use super::csv_log::CsvLog;
use super::tensorboard::TensorBoard;
use super::RunDir;
use crate::config::LoggingSection;
use crate::error::TrainError;
use std::io::Write;
use std::path::PathBuf;

/// The open `metrics.jsonl` of a run and its loggers. The first write error is kept and
/// reported by [`MetricsLog::finish`], so a full disk does not stop training midway.
pub struct MetricsLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    /// The run directory, where the loggers write.
    root: PathBuf,
    error: Option<TrainError>,
    so_far: SoFar,
    tensorboard: Option<TensorBoard>,
    csv: Option<CsvLog>,
}

/// What the lines so far tell the next ones: each evaluation line gets the forgetting of the
/// accuracy matrix so far (what `summary.json` reports for the last one) and each curve point
/// the run's optimizer steps so far (its step in TensorBoard), unless the line has them.
#[derive(Default)]
struct SoFar {
    rows: Vec<Vec<f64>>,
    optimizer_step: u64,
}

impl SoFar {
    fn complete(&mut self, line: &mut serde_json::Value) {
        let Some(fields) = line.as_object_mut() else { return };
        match fields.get("type").and_then(|t| t.as_str()) {
            Some("train" | "pretrain") => self.optimizer_step = fields.get("optimizer_step").and_then(|s| s.as_u64()).unwrap_or(self.optimizer_step),
            Some("curve") => {
                fields.entry("optimizer_step").or_insert(self.optimizer_step.into());
            }
            Some("eval") => {
                let row = fields.get("row").and_then(|r| r.as_array()).map(|r| r.iter().map(|a| a.as_f64().unwrap_or(f64::NAN)).collect());
                self.rows.push(row.unwrap_or_default());
                fields.entry("forgetting").or_insert(crate::metrics::forgetting(&self.rows).into());
            }
            _ => {}
        }
    }
}

/// How a resumed run finds the lines of its old `metrics.jsonl` (given whole) that its last
/// checkpoint holds: [`crate::RunState::kept_lines`] for a stream,
/// [`crate::pretrain::kept_lines`] for MAE pre-training.
pub type KeptLines = fn(&RunDir, &str) -> Result<String, TrainError>;

impl RunDir {
    /// Opens `metrics.jsonl` and the loggers `logging` turns on afresh; a resumed run keeps the
    /// lines of the work its last checkpoint holds and drops the rest, since that work runs
    /// again. The loggers are written anew from the kept lines (a logger turned off loses its
    /// files), so none holds a step twice.
    pub fn metrics(&self, resumed: Option<KeptLines>, logging: &LoggingSection) -> Result<MetricsLog, TrainError> {
        let path = self.root.join("metrics.jsonl");
        let kept = match resumed {
            None => String::new(),
            Some(kept_lines) => kept_lines(self, &std::fs::read_to_string(&path).unwrap_or_default())?,
        };
        let file = std::fs::File::create(&path).map_err(TrainError::io("create", &path))?;
        let tensorboard = TensorBoard::open(&self.root, logging.tensorboard).map_err(TrainError::io("write", &self.root.join("tensorboard")))?;
        let csv = CsvLog::open(&self.root, logging.csv).map_err(TrainError::io("write", &self.root.join("csv")))?;
        let (file, root) = (std::io::BufWriter::new(file), self.root.clone());
        let mut log = MetricsLog { file, path, root, error: None, so_far: SoFar::default(), tensorboard, csv };
        for line in kept.lines() {
            log.write_line(serde_json::from_str(line).expect("kept lines parse"), false);
        }
        log.file.flush().map_err(TrainError::io("write", &log.path))?;
        log.error.take().map_or(Ok(log), Err)
    }
}

/// The lines of `text` that `keep` accepts (given each line's JSON), each with its newline; a
/// line cut off by a kill does not parse and goes.
pub fn filter_lines(text: &str, mut keep: impl FnMut(&serde_json::Value) -> bool) -> String {
    text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["type"] == "run" || keep(&v))).map(|l| format!("{l}\n")).collect()
}

impl MetricsLog {
    /// Writes `line` to `metrics.jsonl` and every logger.
    pub fn write(&mut self, line: serde_json::Value) {
        self.write_line(line, true);
    }

    fn write_line(&mut self, mut line: serde_json::Value, flush: bool) {
        self.so_far.complete(&mut line);
        let mut written = writeln!(self.file, "{line}");
        if flush {
            written = written.and_then(|_| self.file.flush());
        }
        let results = [
            (Some(written), self.path.clone()),
            (self.tensorboard.as_mut().map(|t| t.write(&line)), self.root.join("tensorboard")),
            (self.csv.as_mut().map(|c| c.write(&line)), self.root.join("csv")),
        ];
        for (result, path) in results {
            if let (Some(Err(e)), None) = (result, &self.error) {
                self.error = Some(TrainError::io("write", &path)(e));
            }
        }
    }

    pub fn finish(mut self) -> Result<(), TrainError> {
        let flushed = self.file.flush().map_err(TrainError::io("write", &self.path));
        self.error.take().map_or(flushed, Err)
    }
}
