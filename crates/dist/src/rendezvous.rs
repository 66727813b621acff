//! A file rendezvous on a shared directory, for jobs whose ranks have no MPI to talk through
//! (`srun` without an MPI library): rank 0 publishes a few bytes (the NCCL id) and the others wait
//! for them. The file appears whole or not at all: it is written under a temporary name, synced,
//! then renamed. Its name carries the job and step ids, so a file left by an earlier job is never
//! read by a later one.

use crate::CommError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The rendezvous file for this job in `dir`: `rekindle-<job>.<step>.id` from Slurm's
/// `SLURM_JOB_ID` and `SLURM_STEP_ID` (or `REKINDLE_JOB_ID` outside Slurm).
pub fn file_for_job(dir: &Path) -> Result<PathBuf, CommError> {
    let var = |name: &str| std::env::var(name).ok();
    let job = var("SLURM_JOB_ID").or_else(|| var("REKINDLE_JOB_ID")).ok_or_else(|| CommError::Rendezvous {
        path: dir.display().to_string(),
        reason: "neither SLURM_JOB_ID nor REKINDLE_JOB_ID is set, so the ranks cannot agree on a file name".into(),
    })?;
    let step = var("SLURM_STEP_ID").unwrap_or_else(|| "0".into());
    Ok(dir.join(format!("rekindle-{job}.{step}.id")))
}

fn failed(path: &Path, reason: impl Into<String>) -> CommError {
    CommError::Rendezvous { path: path.display().to_string(), reason: reason.into() }
}

/// Rank 0: writes `bytes` to `path` atomically.
pub fn publish(path: &Path, bytes: &[u8]) -> Result<(), CommError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| failed(path, e.to_string()))
}

/// The other ranks: waits up to `timeout` for `path` and returns its bytes.
pub fn wait_for(path: &Path, timeout: Duration) -> Result<Vec<u8>, CommError> {
    let start = Instant::now();
    loop {
        match std::fs::read(path) {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(100)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(failed(path, format!("rank 0 did not publish it within {} s (is the directory shared by all nodes?)", timeout.as_secs())))
            }
            Err(e) => return Err(failed(path, e.to_string())),
        }
    }
}
