//! `rekindle sweep CONFIG.yaml --set KEY=A,B ...`: trains every point of the cross product of
//! the comma-separated values, one run directory per point named by its values, each point a
//! `rekindle train` child process of this binary (its crash ends that point alone), then
//! `rekindle report` over the points. Run again, a sweep skips its finished points and resumes
//! its started ones; `--jobs N` runs N points at once on a share of the cores; `--sbatch` writes
//! a Slurm array job instead, one task per point.

use anyhow::{bail, Context, Result};
use rekindle_coordinator::config::changes;
use rekindle_coordinator::{RunDir, Summary, TrainConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
#[command(after_help = "Example, two seeds of two strategies on the quickstart stream, each run shortened:

  rekindle sweep configs/quickstart.yaml --set seed=0,1 --set strategy.name=dietcl,er \\
      --set budget.steps=20 --jobs 2

trains 4 points into runs/sweeps/quickstart/seed=0,strategy.name=dietcl/ (and seed=0,strategy.name=er/, \
seed=1,...), each with its log beside it (seed=0,strategy.name=dietcl.log), prints a line as each point \
starts and ends, then the report table (runs/sweeps/quickstart/report.png and report.md). Stopped \
(Ctrl-C, SIGTERM) or killed, the same command continues it: finished points are skipped, started ones \
resumed from their last checkpoint. `--sbatch` writes runs/sweeps/quickstart/sweep.sbatch, one Slurm \
array task per point, and prints the `sbatch --array=0-3 ...` command that submits it.

Exit status: 0 when every point finished; 1 when a point failed (the others still ran); 128 + the \
signal (130 for Ctrl-C, 143 for SIGTERM) when the sweep was stopped.")]
pub struct SweepArgs {
    /// Experiment config (YAML), as for `rekindle train`.
    config: PathBuf,
    /// `KEY=A,B,C` sweeps KEY over A, B and C; the points are the cross product of every swept
    /// key, the first key varying slowest. `KEY=VALUE` without a comma is fixed for every point.
    /// Commas inside brackets or quotes do not split: `--set 'budget.stage_split={ratio: 0.5},{threshold:
    /// 40}'` is two values, `--set 'KEY=[1,2]'` one list and `--set "KEY='a,b'"` one string.
    #[arg(long = "set", value_name = "KEY=A,B,...")]
    sets: Vec<String>,
    /// Sweep directory: point `KEY=A,KEY2=B` trains in DIR/KEY=A,KEY2=B/ and logs to
    /// DIR/KEY=A,KEY2=B.log (in values, each run of characters other than letters, digits and
    /// `._+-=,` becomes one `_`).
    /// Default: runs/sweeps/CONFIG_NAME.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Points trained at once. Each gets `threads = max(1, cores / N)` (unless `--set threads=`
    /// is given); results do not depend on the thread count, so any N gives the same summaries.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// Instead of training, write DIR/sweep.sbatch, a Slurm array job with one task per point
    /// (each trains its point, resuming it if started, and requeues itself at the time limit),
    /// and print the `sbatch --array=0-(N-1)` command that submits it. Afterwards the same
    /// command without --sbatch finds the points finished and writes the report.
    #[arg(long)]
    sbatch: bool,
    /// Arguments after `--` go to every point's `rekindle train`, e.g. `-- --device cuda:0
    /// --progress-every 60`; the sweep sets --out, --resume and --set itself.
    #[arg(last = true, value_name = "TRAIN_ARGS")]
    train_args: Vec<String>,
}

/// One `--set`: a key and its values (one for a fixed key).
struct Axis {
    key: String,
    values: Vec<String>,
}

/// One point of the sweep: its name (`key=value,...` over the swept keys), its directory, and
/// the `--set` overrides that make it, in the order the sweep's were given.
struct Point {
    name: String,
    dir: PathBuf,
    sets: Vec<String>,
}

/// Where a point's directory stands.
#[derive(Clone, Copy, PartialEq)]
enum Found {
    /// No run there (missing or empty directory): train with --out.
    Fresh,
    /// A run that has not finished: resume it.
    Started,
    Finished,
}

/// `text` cut at the commas outside brackets (`[]`, `{}`) and quotes.
fn split_values(text: &str) -> Vec<String> {
    let (mut values, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                values.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values.push(current);
    values
}

fn axes(sets: &[String]) -> Result<Vec<Axis>> {
    let mut axes: Vec<Axis> = Vec::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else { bail!("--set {set}: expected KEY=VALUE or KEY=A,B,..., e.g. --set seed=0,1,2") };
        if axes.iter().any(|a| a.key == key) {
            bail!("--set {set}: {key} is set twice; give its values once, e.g. --set {key}=A,B");
        }
        let values = split_values(value);
        if values.iter().any(|v| v.trim().is_empty()) {
            bail!("--set {set}: an empty value (two commas, or one at an end)");
        }
        if let Some(v) = values.iter().enumerate().find_map(|(i, v)| values[..i].contains(v).then_some(v)) {
            bail!("--set {set}: {v} is listed twice");
        }
        axes.push(Axis { key: key.to_string(), values });
    }
    Ok(axes)
}

/// `text` for a directory name: letters, digits and `._+-=,` kept, each run of other characters
/// one `_`, none at the ends (`{ratio: 0.5}` → `ratio_0.5`, `a/b.safetensors` → `a_b.safetensors`).
fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || "._+-=,".contains(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    match out.trim_matches('_') {
        "" => "_".to_string(),
        kept => kept.to_string(),
    }
}

/// Every point of the cross product, the last swept key varying fastest.
fn points(axes: &[Axis], root: &Path) -> Result<Vec<Point>> {
    let count: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points: Vec<Point> = Vec::with_capacity(count);
    for index in 0..count {
        let (mut rest, mut chosen) = (index, vec![0; axes.len()]);
        for (a, axis) in axes.iter().enumerate().rev() {
            chosen[a] = rest % axis.values.len();
            rest /= axis.values.len();
        }
        let sets: Vec<String> = axes.iter().zip(&chosen).map(|(a, &i)| format!("{}={}", a.key, a.values[i])).collect();
        let swept: Vec<String> = axes.iter().zip(&chosen).filter(|(a, _)| a.values.len() > 1).map(|(a, &i)| format!("{}={}", sanitize(&a.key), sanitize(&a.values[i]))).collect();
        let name = if swept.is_empty() { "point".to_string() } else { swept.join(",") };
        if name.len() > 200 {
            bail!("point {name}: the name is too long for a directory; sweep fewer keys or shorter values");
        }
        if let Some(other) = points.iter().find(|p| p.name == name) {
            bail!("points {} and {} both get the directory name {name} (after replacing characters); make the values differ in letters or digits", other.sets.join(","), sets.join(","));
        }
        points.push(Point { dir: root.join(&name), name, sets });
    }
    Ok(points)
}

/// Where `dir` stands: finished (summary.json, with a run.json that says finished or none),
/// started (config.yaml), or fresh.
fn found(dir: &Path) -> Found {
    let run = RunDir::open(dir);
    let finished = match run.read_record() {
        Ok(Some(record)) => record.status == rekindle_coordinator::Status::Finished,
        Ok(None) => true,
        Err(_) => false,
    };
    if finished && dir.join("summary.json").exists() {
        Found::Finished
    } else if run.config_path().exists() {
        Found::Started
    } else {
        Found::Fresh
    }
}

/// A shell word for `text` (quoted unless it is plainly safe).
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "._+-=,/:@%".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn shell_line(words: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    words.into_iter().map(|w| shell_word(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// The signal that asked the sweep to stop (0: none yet), and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "Ctrl-C",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGUSR1",
    }
}

/// A running point.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
}

/// How the points of this invocation ended.
#[derive(Default)]
struct Tally {
    finished: usize,
    already: usize,
    failed: usize,
    stopped: usize,
}

pub fn run(args: &SweepArgs) -> Result<()> {
    for arg in &args.train_args {
        let flag = arg.split('=').next().unwrap_or_default();
        if ["--out", "--resume", "--overwrite", "--set", "--resume-with-changes"].contains(&flag) {
            bail!("{arg} after `--`: the sweep chooses each point's directory and overrides itself (give --set before `--`)");
        }
    }
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let name = args.config.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
    let root = args.out.clone().unwrap_or_else(|| PathBuf::from("runs/sweeps").join(&name));
    let axes = axes(&args.sets)?;
    let mut points = points(&axes, &root)?;
    let jobs = args.jobs as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (!args.sbatch && jobs > 1 && !axes.iter().any(|a| a.key == "threads")).then(|| (cores / jobs).max(1));
    if let Some(k) = threads {
        points.iter_mut().for_each(|p| p.sets.push(format!("threads={k}")));
    }
    // Every point's config first: a typo fails the sweep before anything runs, naming its point.
    let source = args.config.display().to_string();
    let mut conflicts = Vec::new();
    for p in &points {
        let config = TrainConfig::from_yaml(&source, &text, &p.sets).with_context(|| format!("point {}", p.name))?;
        if found(&p.dir) == Found::Fresh {
            continue;
        }
        // A run already there must be this point's (threads and checkpoint keys aside).
        let theirs = RunDir::open(&p.dir).read_config(&[]).with_context(|| format!("{} holds a run whose config does not read", p.dir.display()))?;
        let diff = changes(&theirs, &config);
        if !diff.refused.is_empty() || !diff.with_effect.is_empty() {
            conflicts.push(format!("{}: {}", p.dir.display(), diff.refused.iter().chain(&diff.with_effect).cloned().collect::<Vec<_>>().join(", ")));
        }
    }
    if !conflicts.is_empty() {
        bail!("these points' directories hold runs of another config (key: that run's -> this sweep's):\n  {}\ngive this sweep its own --out DIR", conflicts.join("\n  "));
    }
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let shape = axes.iter().filter(|a| a.values.len() > 1).map(|a| format!("{} {}", a.values.len(), a.key)).collect::<Vec<_>>().join(" × ");
    let shape = if shape.is_empty() { "nothing swept".to_string() } else { shape };
    if args.sbatch {
        return write_sbatch(args, &root, &points, &shape);
    }
    let exe = std::env::current_exe().context("cannot find this program's path to start its points")?;
    println!(
        "sweep of {}: {} points ({shape}) in {}, {jobs} at a time{}",
        args.config.display(),
        points.len(),
        root.display(),
        threads.map_or(String::new(), |k| format!(", {k} thread{} each", if k == 1 { "" } else { "s" }))
    );
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: the handler only updates two atomics, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
    let n = points.len();
    let tag = |i: usize| format!("[{}/{n}] {}", i + 1, points[i].name);
    let (mut running, mut next, mut forwarded, mut tally) = (Vec::<Running>::new(), 0, 0, Tally::default());
    loop {
        let signals = SIGNALS.load(Ordering::SeqCst);
        if signals > forwarded {
            let signal = SIGNAL.load(Ordering::SeqCst);
            if forwarded == 0 {
                println!("stopping ({}): the {} running point(s) checkpoint and stop; no new point starts", signal_name(signal), running.len());
            }
            for r in &running {
                // SAFETY: kill with a valid signal number on our own child's pid.
                unsafe { libc::kill(r.child.id() as libc::pid_t, signal) };
            }
            forwarded = signals;
        }
        while forwarded == 0 && running.len() < jobs && next < n {
            let (index, point) = (next, &points[next]);
            next += 1;
            let state = found(&point.dir);
            if state == Found::Finished {
                tally.already += 1;
                println!("{}: already finished, A(T-1) {}", tag(index), final_accuracy(&point.dir));
                continue;
            }
            match start(&exe, args, point, state == Found::Started) {
                Ok(child) => {
                    println!("{}: {}", tag(index), if state == Found::Started { "resumed" } else { "started" });
                    running.push(Running { index, child, started: Instant::now() });
                }
                Err(e) => {
                    tally.failed += 1;
                    println!("{}: failed to start: {e:#}", tag(index));
                }
            }
        }
        let mut still = Vec::with_capacity(running.len());
        for mut r in running {
            match r.child.try_wait() {
                Ok(None) => still.push(r),
                Ok(Some(status)) => {
                    let p = &points[r.index];
                    let took = r.started.elapsed().as_secs_f64();
                    let line = match outcome(status) {
                        Outcome::Finished => {
                            tally.finished += 1;
                            format!("finished in {took:.1} s, A(T-1) {}", final_accuracy(&p.dir))
                        }
                        Outcome::Stopped => {
                            tally.stopped += 1;
                            format!("stopped after {took:.1} s (checkpointed; resumed when the sweep continues)")
                        }
                        Outcome::Failed(how) => {
                            tally.failed += 1;
                            format!("failed after {took:.1} s ({how}){}; log {}", last_error(&log_path(p)), log_path(p).display())
                        }
                    };
                    println!("{}: {line}", tag(r.index));
                }
                Err(e) => {
                    println!("{}: cannot wait for it: {e}", tag(r.index));
                    still.push(r);
                }
            }
        }
        running = still;
        if running.is_empty() && (next >= n || forwarded > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = tally.finished + tally.already;
    let mut parts = vec![format!("{done} of {n} points finished{}", if tally.already > 0 { format!(" ({} before this run)", tally.already) } else { String::new() })];
    for (count, what) in [(tally.failed, "failed"), (tally.stopped, "stopped"), (n - next, "not started")] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    println!("sweep: {}", parts.join(", "));
    if forwarded > 0 {
        let signal = SIGNAL.load(Ordering::SeqCst);
        println!("stopped by {}; continue the sweep with:\n  {}", signal_name(signal), shell_line(std::env::args()));
        std::process::exit(128 + signal);
    }
    if done > 0 {
        report(&root, &points)?;
    }
    if tally.failed > 0 {
        bail!("{} of {n} points failed (see their logs); running the same command again resumes them", tally.failed);
    }
    Ok(())
}

fn log_path(point: &Point) -> PathBuf {
    point.dir.with_file_name(format!("{}.log", point.name))
}

fn final_accuracy(dir: &Path) -> String {
    match RunDir::open(dir).read_summary::<Summary>() {
        Ok(s) => format!("{:.4}", s.final_accuracy),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The child's arguments: `train CONFIG --set ... (--out|--resume) DIR TRAIN_ARGS`.
fn train_args(args: &SweepArgs, point: &Point, resume: bool) -> Vec<String> {
    let mut words = vec!["train".to_string(), args.config.display().to_string()];
    for set in &point.sets {
        words.extend(["--set".to_string(), set.clone()]);
    }
    words.extend([if resume { "--resume" } else { "--out" }.to_string(), point.dir.display().to_string()]);
    words.extend(args.train_args.iter().cloned());
    words
}

/// Starts `point`'s `rekindle train`, appending its output to the point's log. The child has its
/// own process group, so a Ctrl-C at the terminal reaches the sweep alone, which passes it on
/// once (a second Ctrl-C would stop a run at once, without its checkpoint); and on Linux it
/// gets SIGTERM (checkpoint and stop) if the sweep dies.
fn start(exe: &Path, args: &SweepArgs, point: &Point, resume: bool) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let path = log_path(point);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let words = train_args(args, point, resume);
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    writeln!(log, "==== {at} rekindle sweep: {}", shell_line(std::iter::once(exe.display().to_string()).chain(words.iter().cloned())))?;
    let mut command = Command::new(exe);
    command.args(&words).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid before the fork; in the child only prctl and getppid, both async-signal-safe.
        let parent = unsafe { libc::getpid() };
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    libc::raise(libc::SIGTERM);
                }
                Ok(())
            });
        }
    }
    command.spawn().with_context(|| format!("cannot start {}", exe.display()))
}

enum Outcome {
    Finished,
    Stopped,
    Failed(String),
}

/// A child's exit: 0 finished; 128 + SIGINT, SIGTERM or SIGUSR1 stopped with a checkpoint
/// (train's own statuses); anything else failed.
fn outcome(status: ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Finished,
        (Some(c), _) if [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1].iter().any(|s| 128 + s == c) => Outcome::Stopped,
        (Some(c), _) => Outcome::Failed(format!("exit status {c}")),
        (None, Some(s)) => Outcome::Failed(format!("killed by signal {s}")),
        (None, None) => Outcome::Failed("ended without a status".into()),
    }
}

/// The last `error:` line of a point's log since its latest start, as `: MESSAGE`, or nothing.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let latest = text.rfind("==== ").map_or(text.as_str(), |at| &text[at..]);
    latest.lines().rev().find(|l| l.starts_with("error:") || l.contains("REKINDLE_FAULT")).map_or(String::new(), |l| format!(": {}", l.trim()))
}

/// `rekindle report` over the points (those unfinished are skipped with a note), writing
/// DIR/report.png and DIR/report.md.
fn report(root: &Path, points: &[Point]) -> Result<()> {
    use clap::{Args, FromArgMatches};
    let mut words: Vec<String> = vec!["report".into()];
    words.extend(points.iter().map(|p| p.dir.display().to_string()));
    words.extend(["--plot".into(), root.join("report.png").display().to_string(), "--markdown".into(), root.join("report.md").display().to_string()]);
    let matches = crate::report::ReportArgs::augment_args(clap::Command::new("report")).try_get_matches_from(words)?;
    println!();
    crate::report::run(&crate::report::ReportArgs::from_arg_matches(&matches)?)
}

/// Writes DIR/sweep.sbatch, one array task per point, and prints how to submit it.
fn write_sbatch(args: &SweepArgs, root: &Path, points: &[Point], shape: &str) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let cwd = std::env::current_dir()?;
    let path = root.join("sweep.sbatch");
    let last = points.len() - 1;
    let command = shell_line(std::env::args());
    let mut cases = String::new();
    for (i, p) in points.iter().enumerate() {
        let words = train_args(args, p, false);
        // The train arguments without the directory, which the task chooses.
        let sets: Vec<&String> = words[2..2 + 2 * p.sets.len()].iter().collect();
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
        name = sanitize(&args.config.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned())),
        cwd = shell_word(&cwd.display().to_string()),
        bin = shell_word(&exe.display().to_string()),
        config = shell_word(&args.config.display().to_string()),
        extra = args.train_args.iter().map(|a| format!(" {}", shell_word(a))).collect::<String>(),
    );
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({} points, {shape}); submit it with:\n  sbatch --array=0-{last} {}", path.display(), points.len(), shell_word(&path.display().to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_brackets_and_quotes_do_not_split() {
        assert_eq!(split_values("0,1,2"), ["0", "1", "2"]);
        assert_eq!(split_values("[1,2]"), ["[1,2]"]);
        assert_eq!(split_values("[1,2],[3,4]"), ["[1,2]", "[3,4]"]);
        assert_eq!(split_values("{a: 1, b: 2},x"), ["{a: 1, b: 2}", "x"]);
        assert_eq!(split_values("'a,b',\"c,d\""), ["'a,b'", "\"c,d\""]);
    }

    #[test]
    fn points_are_the_cross_product_named_by_their_swept_values() {
        let sets = ["seed=0,1", "budget.steps=2", "strategy.name=dietcl,er", "model.init=a/b.safetensors"].map(String::from);
        let p = points(&axes(&sets).unwrap(), Path::new("s")).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["seed=0,strategy.name=dietcl", "seed=0,strategy.name=er", "seed=1,strategy.name=dietcl", "seed=1,strategy.name=er"]);
        assert_eq!(p[1].sets, ["seed=0", "budget.steps=2", "strategy.name=er", "model.init=a/b.safetensors"]);
        let p = points(&axes(&["budget.stage_split={ratio: 0.5},{threshold: 40}".to_string()]).unwrap(), Path::new("s")).unwrap();
        assert_eq!(p[1].name, "budget.stage_split=threshold_40");
        let p = points(&axes(&["model.init=a/b,a_b".to_string()]).unwrap(), Path::new("s"));
        assert!(p.is_err(), "two values that sanitize to one name");
        assert!(axes(&["seed=0,1".into(), "seed=2".into()]).is_err());
        assert!(axes(&["seed=0,,1".into()]).is_err());
        assert_eq!(points(&axes(&["seed=3".into()]).unwrap(), Path::new("s")).unwrap()[0].name, "point");
    }
}
