//! A file rendezvous on a shared directory, for jobs whose ranks have no MPI to talk through
//! (`srun` without an MPI library): rank 0 publishes a few bytes (the NCCL id) and the others wait
//! for them. The file appears whole or not at all: it is written under a temporary name, synced,
//! then renamed. The caller names it; a name that carries the job and step ids (Slurm's
//! `SLURM_JOB_ID.SLURM_STEP_ID`) keeps a file left by an earlier job from being read by a later one.

use crate::CommError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn failed(path: &Path, reason: impl Into<String>) -> CommError {
    CommError::Rendezvous { path: path.display().to_string(), reason: reason.into() }
}

/// The rendezvous file in `dir` for this job: `nccl-id-JOB.STEP` under Slurm, so that a file an
/// earlier job left behind is never read, else `nccl-id` (then `dir` must be fresh for each job).
pub fn file_in(dir: &Path) -> PathBuf {
    match (std::env::var("SLURM_JOB_ID"), std::env::var("SLURM_STEP_ID")) {
        (Ok(job), Ok(step)) => dir.join(format!("nccl-id-{job}.{step}")),
        _ => dir.join("nccl-id"),
    }
}

/// Rank 0: writes `bytes` to `path` atomically.
pub fn publish(path: &Path, bytes: &[u8]) -> Result<(), CommError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
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
