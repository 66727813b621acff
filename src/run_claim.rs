//! How `train` and `pretrain` make a run directory theirs, and leave it: a fresh run claims an
//! empty directory (or, with `--overwrite`, one whose run it deletes) and writes its id, config
//! and first start; a resume must find a run there, unfinished, whose config matches the one
//! given in every key that changes results; at the end the run's status is written, and a run
//! that failed before its first checkpoint leaves no stub behind.

use anyhow::{bail, Context, Result};
use rekindle_coordinator::config::changes;
use rekindle_coordinator::{RunDir, RunRecord, Start, Status, TrainConfig, TrainError};
use std::path::Path;

/// What the command line asks of the run directory: to resume its run (else start one), to
/// delete a run already there first, to accept changes that change results on a resume.
pub struct Intent {
    pub resume: bool,
    pub overwrite: bool,
    pub resume_with_changes: bool,
}

/// What a claim decided, on rank 0: the run id, whether the directory was made for this run, and
/// the config keys a resume changed with `--resume-with-changes` over the run's life.
pub struct Claim {
    pub run_id: String,
    /// The directory did not exist before this run (a stub is removed with it).
    pub created: bool,
    pub changed_on_resume: Vec<String>,
}

/// Where and how this process runs, for `run.json`.
pub fn this_start(device: String, world: usize) -> Start {
    Start {
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: option_env!("REKINDLE_GIT_COMMIT").map(str::to_string),
        command_line: std::env::args().collect(),
        host: host_name(),
        device,
        world,
        changed: Vec::new(),
        changed_with_effect: Vec::new(),
    }
}

fn host_name() -> String {
    let mut name = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, and gethostname writes within it.
    let ok = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    if ok { String::from_utf8_lossy(&name[..end]).into_owned() } else { "unknown".into() }
}

/// Makes `out` this run's (rank 0 only): see the module's doc. `config` is the one this run
/// trains with; `origin` says where it came from (for config.yaml's header).
pub fn claim(intent: &Intent, config: &TrainConfig, out: &Path, origin: &str, start: Start) -> Result<Claim> {
    let dir = RunDir::open(out);
    if intent.resume {
        return resume(intent, config, &dir, start);
    }
    let created = !out.exists();
    clear(intent, out)?;
    let dir = RunDir::create(out)?;
    let record = RunRecord::new(start);
    dir.write_record(&record)?;
    dir.write_config(config, &record.id, origin)?;
    Ok(Claim { run_id: record.id, created, changed_on_resume: Vec::new() })
}

/// A fresh run needs an empty or missing directory, or `--overwrite` of one that holds a run.
fn clear(intent: &Intent, out: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(out) else { return Ok(()) };
    if entries.next().is_none() {
        return Ok(());
    }
    let holds_run = RunDir::open(out).config_path().exists();
    match (holds_run, intent.overwrite) {
        (true, true) => std::fs::remove_dir_all(out).with_context(|| format!("--overwrite: cannot delete {}", out.display())),
        (true, false) => bail!("{} already holds a run; continue it with --resume {0}, write this one elsewhere with --out DIR, or replace it with --overwrite", out.display()),
        (false, _) => bail!("{} is not empty and holds no run (no config.yaml); choose another --out", out.display()),
    }
}

/// A resume: the run must be there and unfinished, and `config` must match its config in every
/// key that changes results (or in those `--resume-with-changes` allows).
fn resume(intent: &Intent, config: &TrainConfig, dir: &RunDir, mut start: Start) -> Result<Claim> {
    let shown = dir.root().display();
    let Some(mut record) = dir.read_record()? else {
        bail!("--resume {shown}: no run there (no run.json); start one with --out {shown}");
    };
    if record.status == Status::Finished {
        bail!("--resume {shown}: run {} already finished (its results: {shown}/summary.json); start another with --out DIR", record.id);
    }
    if let Some(error) = &record.error {
        eprintln!("resuming {shown}, which failed last time: {error}");
    }
    let run_config = dir.read_config(&[])?;
    let diff = changes(&run_config, config);
    if !diff.refused.is_empty() {
        bail!(
            "--resume {shown}: the config differs from the run's in keys that change its results:\n  {}\na run directory holds one run: start this config with --out DIR",
            diff.refused.join("\n  ")
        );
    }
    if !diff.with_effect.is_empty() && !intent.resume_with_changes {
        bail!(
            "--resume {shown}: the config differs from the run's in keys that change its results:\n  {}\nto continue with them anyway, add --resume-with-changes (they are recorded in run.json, summary.json and report)",
            diff.with_effect.join("\n  ")
        );
    }
    if !diff.without_effect.is_empty() || !diff.with_effect.is_empty() {
        eprintln!("resuming {shown} with changed keys: {}", diff.without_effect.iter().chain(&diff.with_effect).cloned().collect::<Vec<_>>().join(", "));
        dir.write_config(config, &record.id, &format!("the run's config, changed on resume by {}", start.command_line.join(" ")))?;
    }
    (start.changed, start.changed_with_effect) = (diff.without_effect, diff.with_effect);
    record.starts.push(start);
    (record.status, record.error) = (Status::Running, None);
    dir.write_record(&record)?;
    Ok(Claim { run_id: record.id.clone(), created: false, changed_on_resume: record.changes() })
}

/// Writes how the run ended (rank 0): finished, stopped by a signal, or failed. A fresh run
/// that failed before its first checkpoint is removed instead, so no stub is left to be taken
/// for a run (a directory that existed before it is left empty).
pub fn conclude<T>(result: &Result<T>, out: &Path, claim: &Claim, resumed: bool) {
    let dir = RunDir::open(out);
    let status = match result {
        Ok(_) => dir.set_status(Status::Finished, None),
        Err(e) if e.chain().any(|c| matches!(c.downcast_ref(), Some(TrainError::Interrupted { .. }))) => dir.set_status(Status::Stopped, None),
        Err(_) if !resumed && !out.join("state.json").exists() => {
            let removed = std::fs::remove_dir_all(out).and_then(|()| if claim.created { Ok(()) } else { std::fs::create_dir(out) });
            removed.map_err(|e| TrainError::io("remove the failed run's", out)(e))
        }
        Err(e) => dir.set_status(Status::Failed, Some(format!("{e:#}"))),
    };
    if let Err(e) = status {
        eprintln!("warning: cannot record how the run ended: {e}");
    }
}
