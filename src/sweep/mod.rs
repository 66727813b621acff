//! `rekindle sweep CONFIG.yaml --set KEY=A,B ...`: trains every point of the cross product of
//! the comma-separated values, one run directory per point named by its values, each point a
//! `rekindle train` child process of this binary (its crash ends that point alone), then
//! `rekindle report` over the points. Run again, a sweep skips its finished points and resumes
//! its started ones; `--jobs N` runs N points at once on a share of the cores; `--sbatch` writes
//! a Slurm array job instead, one task per point.

mod points;
mod sbatch;

use anyhow::{bail, Context, Result};
use points::{axes, found, points, Found, Point};
use sbatch::{shell_line, write_sbatch};
use crate::train::signal_name;
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

/// The signal that asked the sweep to stop (0: none yet), and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
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
        return write_sbatch(&args.config, &args.train_args, &root, &points, &shape);
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

