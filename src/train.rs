//! `rekindle train CONFIG.yaml`: runs a stream and writes the run directory. Under `mpirun` or
//! `srun` every rank runs this; rank 0 alone writes files and draws progress.

use crate::progress_bar::Progress as Bar;
use crate::run_claim::{claim, conclude, this_start, Claim, Intent};
use anyhow::{Context, Result};
use rekindle_coordinator::{train, KeptLines, MetricsLog, Place, Progress, RunDir, RunState, TrainConfig, TrainError};
use rekindle_comm::{Comm, Launch};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The arguments of `train` and `pretrain`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Experiment config (YAML); every key has a default, see configs/quickstart.yaml. With
    /// `--resume` it may be left out: the run directory's config.yaml is used.
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set budget.steps=100 --set strategy.name=er` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Run directory (default: runs/CONFIG_NAME for train, runs/CONFIG_NAME-pretrain for
    /// pretrain). It must be empty or missing: one directory holds one run.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (a killed run ends with the same
    /// metrics as an uninterrupted one). CONFIG and --set may be left out; if given, they must
    /// match the run's config in every key that changes results (see --resume-with-changes).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// With --resume: accept changes to keys that change results only slightly
    /// (budget.micro_batch, pretrain.micro_batch, data.eval_batch, budget.eval_every); they are
    /// recorded in run.json, summary.json and `rekindle report`. Other keys (strategy, data,
    /// model, budget.steps, seed, stream, optim, ...) can never change on a resume.
    #[arg(long, requires = "resume")]
    resume_with_changes: bool,
    /// Replace the run already in the output directory (its files are deleted first). Without
    /// it, a directory that holds a run is refused: one directory is one run.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// With several ranks: a rank that waits this long in one collective (all-reduce, barrier)
    /// decides another rank has died or hangs, and exits with status 75 instead of waiting forever.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    comm_timeout: u64,
    /// GPU ranks started without MPI (`srun --mpi=none`, Slurm's own launcher): they join NCCL
    /// through a file in DIR, which every node must see, and NCCL carries every collective. Under
    /// `mpirun` or `srun --mpi=pmix` leave it out: MPI hands out NCCL's id.
    #[arg(long, value_name = "file:DIR", value_parser = parse_rendezvous)]
    rendezvous: Option<PathBuf>,
    /// Without a terminal (a Slurm log, `tee`), print a progress line (stage, iteration, loss,
    /// img/s, ETA) every SECS seconds; on a terminal a progress bar is drawn instead.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub progress_every: u64,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

fn parse_rendezvous(text: &str) -> Result<PathBuf, String> {
    match text.strip_prefix("file:") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(format!("'{text}': expected file:DIR, a directory every rank can read and write")),
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    on_ranks(args, run_rank)
}

/// The signal that asked the run to stop (SIGINT, SIGTERM or SIGUSR1), or 0.
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The exit status of a run stopped by a signal: 128 + its number, as shells report it (130 for
/// Ctrl-C, 143 for SIGTERM, 138 for SIGUSR1; 130 on a rank stopped by another's signal), so a
/// batch script can tell a stop from a failure.
pub fn stopped_status() -> i32 {
    128 + match STOPPED_BY.load(Ordering::SeqCst) {
        0 => libc::SIGINT,
        signal => signal,
    }
}

/// How a stop's signal is named to the user.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "Ctrl-C",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "a stop request on another rank",
    }
}

/// SIGTERM (Slurm's time limit, `scancel`, preemption) and SIGUSR1 (the warning `sbatch
/// --signal` sends before the limit) stop the run as the first Ctrl-C does.
extern "C" fn stop_on_signal(signal: libc::c_int) {
    STOPPED_BY.store(signal, Ordering::SeqCst);
    rekindle_coordinator::interrupt::request();
}

/// Connects this process to its ranks and runs `body`; errors name the rank under a launcher.
/// The first Ctrl-C, a SIGTERM or a SIGUSR1 stops the run after the optimizer step in progress
/// (a checkpoint being written is finished); a second Ctrl-C stops it at once.
pub fn on_ranks(args: &TrainArgs, body: impl FnOnce(&TrainArgs, &Launch, Box<dyn Comm>) -> Result<()>) -> Result<()> {
    let pressed = std::sync::atomic::AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if pressed.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this optimizer step (Ctrl-C again to stop at once)");
        STOPPED_BY.store(libc::SIGINT, Ordering::SeqCst);
        rekindle_coordinator::interrupt::request();
    })?;
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: the handler only stores to two atomics, which is async-signal-safe.
        unsafe { libc::signal(signal, stop_on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
    // A closed stdout must not end a training run (see `print_results`).
    // SAFETY: SIG_IGN is always a valid disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let launch = Launch::from_env()?;
    let comm: Box<dyn Comm> = match &args.rendezvous {
        // NCCL needs the GPU's stream: the ranks join it once the backend is open.
        Some(_) if launch.world > 1 => Box::new(rekindle_comm::Unjoined(launch.clone())),
        _ => rekindle_comm::connect(&launch, Duration::from_secs(args.comm_timeout))?,
    };
    let (rank, world) = (comm.rank(), comm.world());
    if world > 1 {
        exit_on_panic(rank);
    }
    let result = body(args, &launch, comm);
    if world > 1 {
        return result.with_context(|| format!("rank {rank} of {world}"));
    }
    result
}

/// Makes a panic end this rank's process at once, after its message. Unwinding would run the
/// communicators' destructors, and MPI's finalisation waits for the other ranks, which wait in a
/// collective for this one: the job would hang until the watchdog. Exiting lets the launcher see
/// the rank die and stop the others.
fn exit_on_panic(rank: usize) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("error: rank {rank} panicked; exiting so that the launcher stops the other ranks");
        // SAFETY: `_exit` ends the process without running destructors, which is the point.
        unsafe { libc::_exit(101) };
    }));
}

/// What a rank of `train` or `pretrain` runs with: the config, the run directory (`--resume`,
/// `--out`, or `runs/` + the config's name + `suffix`) and its run id, the backend and the
/// communicator; on rank 0, the claim on the directory.
pub struct Session {
    pub config: TrainConfig,
    pub out: PathBuf,
    pub run_id: String,
    pub backend: Box<dyn rekindle_tensor::Backend>,
    pub comm: Box<dyn Comm>,
    claim: Option<Claim>,
    pub resumed: bool,
}

impl Session {
    pub fn open(args: &TrainArgs, launch: &Launch, comm: Box<dyn Comm>, suffix: &str) -> Result<Session> {
        if let Some(dir) = &args.resume {
            if !RunDir::open(dir).config_path().exists() {
                anyhow::bail!("--resume {}: no run there (no config.yaml); start one with --out {0}", dir.display());
            }
        }
        let config_path = match (&args.config, &args.resume) {
            (Some(c), _) => c.clone(),
            (None, Some(dir)) => RunDir::open(dir).config_path(),
            (None, None) => anyhow::bail!("give a CONFIG.yaml (e.g. configs/quickstart.yaml), or --resume RUN_DIR"),
        };
        let text = std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let config = TrainConfig::from_yaml(&config_path.display().to_string(), &text, &args.overrides)?;
        let origin = std::iter::once(config_path.display().to_string()).chain(args.overrides.iter().map(|o| format!("--set {o}"))).collect::<Vec<_>>().join(" ");
        let name = config_path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
        let out = args.resume.clone().or_else(|| args.out.clone()).unwrap_or_else(|| PathBuf::from("runs").join(name + suffix));
        let threads = if config.threads == 0 { launch.threads_per_rank() } else { config.threads };
        let (backend, comm) = crate::device::backend_and_comm(&args.device, threads, launch, comm, Duration::from_secs(args.comm_timeout), args.rendezvous.as_deref())?;
        if comm.rank() == 0 && comm.world() > 1 {
            eprintln!("{} on {}, launched by {}", comm.describe(), backend.name(), launch.source);
        }
        // Rank 0 writes the directory, so it decides, and every rank hears the verdict (a check
        // on each rank could see rank 0's first files) and the run id.
        let mut claimed = None;
        let mut verdict = if comm.rank() == 0 {
            let intent = Intent { resume: args.resume.is_some(), overwrite: args.overwrite, resume_with_changes: args.resume_with_changes };
            match claim(&intent, &config, &out, &origin, this_start(backend.name(), comm.world())) {
                Ok(c) => format!("ok {}", claimed.insert(c).run_id),
                Err(e) => format!("refused {e:#}"),
            }
            .into_bytes()
        } else {
            Vec::new()
        };
        comm.broadcast(&mut verdict, 0)?;
        let run_id = match String::from_utf8_lossy(&verdict).split_once(' ') {
            Some(("ok", id)) => id.to_string(),
            Some((_, refusal)) => anyhow::bail!("{refusal}"),
            None => anyhow::bail!("rank 0 sent no verdict on {}", out.display()),
        };
        Ok(Session { config, out, run_id, backend, comm, claim: claimed, resumed: args.resume.is_some() })
    }

    /// Records how the run ended (rank 0) and passes `result` on.
    pub fn conclude<T>(&self, result: Result<T>) -> Result<T> {
        if let Some(claim) = &self.claim {
            conclude(&result, &self.out, claim, self.resumed);
        }
        result
    }

    /// Config keys a resume changed with `--resume-with-changes` over the run's life (rank 0).
    pub fn changed_on_resume(&self) -> Vec<String> {
        self.claim.as_ref().map(|c| c.changed_on_resume.clone()).unwrap_or_default()
    }

    /// On rank 0: opens `metrics.jsonl`: a fresh run's starts with a line naming the run; a
    /// resumed run keeps the lines of the work its last checkpoint holds.
    pub fn start_metrics(&self, kept_lines: KeptLines) -> Result<(RunDir, MetricsLog)> {
        let dir = RunDir::create(&self.out)?;
        let mut metrics = dir.metrics(self.resumed.then_some(kept_lines), &self.config.logging)?;
        if !self.resumed {
            metrics.write(serde_json::json!({ "type": "run", "id": self.run_id }));
        }
        Ok((dir, metrics))
    }
}

/// An interruption's error, with the command that continues the run.
pub fn resume_hint<T>(result: Result<T, TrainError>, command: &str, out: &Path) -> Result<T> {
    match result {
        Err(e @ TrainError::Interrupted { .. }) => {
            let by = signal_name(STOPPED_BY.load(Ordering::SeqCst));
            Err(e).with_context(|| format!("stopped by {by} (continue with `rekindle {command} --resume {}`)", out.display()))
        }
        other => Ok(other?),
    }
}

fn run_rank(args: &TrainArgs, launch: &Launch, comm: Box<dyn Comm>) -> Result<()> {
    let mut session = Session::open(args, launch, comm, "")?;
    let result = train_rank(args, &mut session);
    session.conclude(result)
}

fn train_rank(args: &TrainArgs, session: &mut Session) -> Result<()> {
    let opened = if session.comm.rank() == 0 { Some(session.start_metrics(RunState::kept_lines)?) } else { None };
    let changed_on_resume = session.changed_on_resume();
    let Session { config, out, run_id, backend, comm, resumed, .. } = session;
    let place = Place { dir: Some(out), resume: *resumed, run_id };
    let (be, comm) = (backend.as_mut(), comm.as_ref());
    let Some((dir, mut metrics)) = opened else {
        resume_hint(train(config, be, comm, place, |_| {}), "train", out)?;
        return Ok(());
    };
    let mut bar = Bar::new(Duration::from_secs(args.progress_every));
    let mfu = Mfu::of(&be.name(), comm.world());
    let summary = train(config, be, comm, place, |p| {
        let line = match p {
            Progress::Step { step, steps, revealed, labelled, mae_images, buffer, stages } => {
                let plan: Vec<String> = stages
                    .iter()
                    .map(|s| {
                        let c = s.mix.counts(config.budget.effective_batch);
                        let mut parts = Vec::new();
                        if c.unlabelled > 0 {
                            parts.push(format!("{} MAE on unlabelled", c.unlabelled));
                        }
                        if c.labelled > 0 {
                            parts.push(format!("{} current labels", c.labelled));
                        }
                        if c.buffer > 0 {
                            parts.push(format!("{} buffer", c.buffer));
                        }
                        format!("{} {} steps of [{}]", s.name, s.steps, parts.join(" + "))
                    })
                    .collect();
                bar.println(format!("step {}/{steps}: {revealed} images, {labelled} labelled, {mae_images} for MAE; buffer {buffer}; {}", step + 1, plan.join(", then ")));
                None
            }
            Progress::Stage { step, steps, stage, iterations } => {
                bar.stage(format!("step {}/{} {stage:<8}", step + 1, steps), iterations as u64, 0);
                None
            }
            Progress::Iteration { step, stage, iteration, optimizer_step, flops, losses, lr, images_per_sec } => {
                bar.update(iteration as u64 + 1, format!("loss {:.4} {:.0} img/s", losses.total, images_per_sec));
                let mut line = serde_json::json!({
                    "type": "train", "step": step, "stage": stage, "iteration": iteration, "optimizer_step": optimizer_step, "flops": flops, "lr": lr,
                    "loss": losses.total, "loss_mae": nan_to_null(losses.mae), "loss_current": nan_to_null(losses.current),
                    "loss_buffer": nan_to_null(losses.buffer), "loss_feat": nan_to_null(losses.feat), "loss_kd": nan_to_null(losses.kd),
                    "loss_l2": nan_to_null(losses.l2), "grad_norm": losses.grad_norm, "images_per_sec": images_per_sec,
                    "encoder_norm_mae": nan_to_null(losses.encoder_norms[0]), "encoder_norm_current": nan_to_null(losses.encoder_norms[1]),
                    "encoder_norm_buffer": nan_to_null(losses.encoder_norms[2]),
                });
                mfu.add_to(&mut line, losses.flops, config.budget.effective_batch, images_per_sec);
                Some(line)
            }
            Progress::Curve(p) => Some(serde_json::json!({
                "type": "curve", "step": p.step, "iteration": p.iteration, "round_flops": p.round_flops, "accuracy": p.accuracy,
            })),
            Progress::Selected { step, kept, old } => {
                bar.println(format!("step {}: data selection kept {kept} of {old} old samples", step + 1));
                Some(serde_json::json!({ "type": "selection", "step": step, "kept": kept, "old": old }))
            }
            Progress::Evaluated(e) => {
                bar.clear();
                bar.println(format!("step {}: A(t) = {:.4}  a[t][·] = {:?}", e.step + 1, e.accuracy, e.row.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>()));
                Some(serde_json::json!({ "type": "eval", "step": e.step, "accuracy": e.accuracy, "row": e.row, "per_class": e.per_class }))
            }
        };
        if let Some(line) = line {
            metrics.write(line);
        }
    });
    bar.clear();
    metrics.finish()?;
    let mut summary = resume_hint(summary, "train", out)?;
    (summary.run_id, summary.changed_on_resume) = (run_id.clone(), changed_on_resume);
    dir.write_summary(&summary)?;
    let plot = out.join("accuracy.png");
    let title = format!("{} on {}", summary.strategy, config.data.train);
    let series = crate::plot::Series { name: "A(t)".into(), mean: summary.accuracy_per_step.clone(), std: Vec::new() };
    let grid = crate::report::class_grid(&summary.strategy, &[&summary]);
    if let Err(e) = crate::plot::accuracy(&plot, &title, &[series], &[grid]) {
        eprintln!("warning: no {}: {e:#}", plot.display());
    }
    let loss_plot = out.join("loss.png");
    let points = crate::report::loss_curve(out).into_iter().map(|(optimizer_step, flops, mean)| crate::plot::LossPoint { optimizer_step, flops, mean, std: 0.0 }).collect();
    if let Err(e) = crate::plot::losses(&loss_plot, &title, &[crate::plot::LossSeries { name: summary.strategy.clone(), points }]) {
        eprintln!("warning: no {}: {e:#}", loss_plot.display());
    }
    let mut table = format!("{:>6} {:>10}   accuracy row a[t][i]\n", "step", "A(t)");
    for (t, (a, row)) in summary.accuracy_per_step.iter().zip(&summary.accuracy_matrix).enumerate() {
        table += &format!("{:>6} {:>10.4}   {}\n", t + 1, a, row.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" "));
    }
    table += &format!(
        "final A(T-1) {:.4}, average {:.4}, forgetting {:.4}; {} optimizer steps, {:.3e} FLOPs, {:.1} s -> {}\n",
        summary.final_accuracy,
        summary.average_accuracy,
        summary.forgetting,
        summary.optimizer_steps,
        summary.flops,
        summary.wall_seconds,
        out.display()
    );
    print_results(&table);
    Ok(())
}

/// Prints a finished run's results on stdout. A reader that closed it early (`train … | head
/// -1`) loses the rest of the text, not the run: its files are written and its status is
/// recorded either way (`on_ranks` ignores SIGPIPE for this).
pub fn print_results(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Model FLOPs utilisation: the FLOP/s of optimizer steps against the dense bf16 peak of the
/// ranks' GPUs, where it is known (on a GPU `bench` has the peak of; never on a CPU).
pub struct Mfu {
    peak_flops: Option<f64>,
}

impl Mfu {
    /// For `ranks` devices like `device` (a backend's name).
    pub fn of(device: &str, ranks: usize) -> Mfu {
        Mfu { peak_flops: crate::bench::bf16_peak_tflops(device).map(|tflops| tflops * 1e12 * ranks as f64) }
    }

    /// Adds `mfu` to a step's `line`, for a step of `flops` over `batch` images at `images_per_sec`.
    pub fn add_to(&self, line: &mut serde_json::Value, flops: f64, batch: usize, images_per_sec: f64) {
        if let Some(peak) = self.peak_flops {
            line["mfu"] = serde_json::json!(flops * images_per_sec / batch as f64 / peak);
        }
    }
}

pub fn nan_to_null(v: f32) -> serde_json::Value {
    if v.is_nan() {
        serde_json::Value::Null
    } else {
        serde_json::json!(v)
    }
}
