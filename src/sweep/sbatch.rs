//! `rekindle sweep --sbatch`: one Slurm array job script, a task per point, and the shell
//! quoting it (and the sweep's continuation command) needs.

use super::points::{sanitize, Point};
use anyhow::{Context, Result};
use std::path::Path;

/// Writes DIR/sweep.sbatch, one array task per point, training `config` with the point's
/// overrides and `extra` arguments, and prints how to submit it.
pub(super) fn write_sbatch(config: &Path, extra: &[String], root: &Path, points: &[Point], shape: &str) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let cwd = std::env::current_dir()?;
    let path = root.join("sweep.sbatch");
    let last = points.len() - 1;
    let command = shell_line(std::env::args());
    let mut cases = String::new();
    for (i, p) in points.iter().enumerate() {
        // The point's overrides; the task chooses --out or --resume.
        let sets = p.sets.iter().flat_map(|s| ["--set", s.as_str()]);
        cases += &format!("  {i}) point={}; sets=({}) ;;\n", shell_word(&p.name), shell_line(sets));
    }
    let script = format!(
        r#"#!/usr/bin/env bash
# A Slurm array job written by:
#   {command}
# {count} points ({shape}); submit with:
#   sbatch --array=0-{last} {file}
# Array task I trains point I below into {root}/POINT, its log appended to {root}/POINT.log: a
# finished point is skipped, a started one resumed from its last checkpoint. Slurm sends SIGUSR1
# five minutes before the time limit: the run checkpoints and stops, and the task requeues
# itself and resumes. Once every task has ended, the same `rekindle sweep` command without
# --sbatch finds the points finished (and continues any that are not) and writes the report.
# Edit the #SBATCH lines for the cluster (a GPU: --gpus-per-task=1, and `-- --device cuda` on
# the sweep's command line).
#SBATCH --job-name=sweep-{name}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output={root}/slurm-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
set -euo pipefail
cd {cwd}
bin={bin}
config={config}
case "${{SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-{last}}}" in
{cases}  *) echo "no point $SLURM_ARRAY_TASK_ID: this sweep has points 0-{last}" >&2; exit 2 ;;
esac
dir={root}/$point
if [ -f "$dir/summary.json" ] && grep -Eqs '"status": *"finished"' "$dir/run.json"; then
  echo "$dir: finished"
  exit 0
fi
where=(--out "$dir")
[ -f "$dir/config.yaml" ] && where=(--resume "$dir")
echo "==== $(date -Is) array task $SLURM_ARRAY_TASK_ID (job ${{SLURM_JOB_ID:-}}): ${{where[0]}} $dir" >> "$dir.log"
near_limit=0
trap 'near_limit=1; kill -USR1 "$pid" 2>/dev/null' USR1
"$bin" train "$config" "${{sets[@]}}" "${{where[@]}}"{extra} >> "$dir.log" 2>&1 &
pid=$!
while true; do
  wait "$pid" && status=0 || status=$?
  # A wait cut short by the trap returns > 128 while the run goes on: wait again.
  kill -0 "$pid" 2>/dev/null || break
done
if [ "$near_limit" = 1 ] && [ "$status" != 0 ]; then
  echo "requeueing job $SLURM_JOB_ID; it resumes $dir"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$status"
"#,
        count = points.len(),
        file = shell_word(&path.display().to_string()),
        root = shell_word(&root.display().to_string()),
        name = sanitize(&config.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned())),
        cwd = shell_word(&cwd.display().to_string()),
        bin = shell_word(&exe.display().to_string()),
        config = shell_word(&config.display().to_string()),
        extra = extra.iter().map(|a| format!(" {}", shell_word(a))).collect::<String>(),
    );
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({} points, {shape}); submit it with:\n  sbatch --array=0-{last} {}", path.display(), points.len(), shell_word(&path.display().to_string()));
    Ok(())
}

/// A shell word for `text` (quoted unless it is plainly safe).
pub(super) fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "._+-=,/:@%".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

pub(super) fn shell_line(words: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    words.into_iter().map(|w| shell_word(w.as_ref())).collect::<Vec<_>>().join(" ")
}
