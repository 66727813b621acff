//! `rekindle train CONFIG.yaml`: runs a stream and writes the run directory. Under `mpirun` or
//! `srun` every rank runs this; rank 0 alone writes files and draws progress.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rekindle_coordinator::{train, MetricsLog, Progress, RunDir, TrainConfig, TrainError};
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
    /// Run directory (default: runs/CONFIG_NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last completed time step (a killed run ends with the
    /// same metrics as an uninterrupted one).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
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

fn signal_name(signal: i32) -> &'static str {
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
/// `--out`, or `runs/` + the config's name + `suffix`), the backend and the communicator.
pub struct Session {
    pub config: TrainConfig,
    pub out: PathBuf,
    pub backend: Box<dyn rekindle_tensor::Backend>,
    pub comm: Box<dyn Comm>,
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
        let name = config_path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
        let out = args.resume.clone().or_else(|| args.out.clone()).unwrap_or_else(|| PathBuf::from("runs").join(name + suffix));
        let threads = if config.threads == 0 { launch.threads_per_rank() } else { config.threads };
        let (backend, comm) = crate::device::backend_and_comm(&args.device, threads, launch, comm, Duration::from_secs(args.comm_timeout), args.rendezvous.as_deref())?;
        if comm.rank() == 0 && comm.world() > 1 {
            eprintln!("{} on {}, launched by {}", comm.describe(), backend.name(), launch.source);
        }
        // Rank 0 writes the directory, so it decides, and every rank hears the verdict (a check
        // on each rank could see rank 0's first files).
        let mut refusal = if comm.rank() == 0 { claim_out(args, &out).err().map(|e| format!("{e:#}")).unwrap_or_default().into_bytes() } else { Vec::new() };
        comm.broadcast(&mut refusal, 0)?;
        if !refusal.is_empty() {
            anyhow::bail!("{}", String::from_utf8_lossy(&refusal));
        }
        Ok(Session { config, out, backend, comm })
    }

}

/// Makes `out` this run's: a resumed run is already there; a fresh one needs an empty or missing
/// directory, or `--overwrite` of a directory that holds a run (it is deleted first).
fn claim_out(args: &TrainArgs, out: &Path) -> Result<()> {
    if args.resume.is_some() {
        return Ok(());
    }
    let Ok(mut entries) = std::fs::read_dir(out) else { return Ok(()) };
    if entries.next().is_none() {
        return Ok(());
    }
    let holds_run = RunDir::open(out).config_path().exists();
    match (holds_run, args.overwrite) {
        (true, true) => std::fs::remove_dir_all(out).with_context(|| format!("--overwrite: cannot delete {}", out.display())),
        (true, false) => anyhow::bail!(
            "{} already holds a run; continue it with --resume {0}, write this one elsewhere with --out DIR, or replace it with --overwrite",
            out.display()
        ),
        (false, _) => anyhow::bail!("{} is not empty and holds no run (no config.yaml); choose another --out", out.display()),
    }
}

/// On rank 0: creates the run directory `out`, records the config (a resumed run keeps its own;
/// overrides given to the resume are printed instead), and opens `metrics.jsonl` with the lines
/// a resumed run keeps: those whose `line_key` is below `state.json`'s `state_key`.
pub fn start_metrics(args: &TrainArgs, config: &TrainConfig, out: &Path, state_key: &str, line_key: &str) -> Result<(RunDir, MetricsLog)> {
    let dir = RunDir::create(out)?;
    if args.resume.is_none() {
        dir.write_config(config)?;
    } else if !args.overrides.is_empty() {
        eprintln!("resuming {} with overrides: {}", out.display(), args.overrides.join(" "));
    }
    let metrics = dir.metrics(args.resume.is_some(), state_key, line_key)?;
    Ok((dir, metrics))
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
    let Session { config, out, mut backend, comm } = Session::open(args, launch, comm, "")?;
    let (be, comm) = (backend.as_mut(), comm.as_ref());
    if comm.rank() != 0 {
        resume_hint(train(&config, be, comm, Some(&out), args.resume.is_some(), |_| {}), "train", &out)?;
        return Ok(());
    }
    let (dir, mut metrics) = start_metrics(args, &config, &out, "completed_steps", "step")?;

    let bar = ProgressBar::hidden();
    let summary = train(&config, be, comm, Some(&out), args.resume.is_some(), |p| {
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
                bar.suspend(|| {
                    eprintln!("step {}/{steps}: {revealed} images, {labelled} labelled, {mae_images} for MAE; buffer {buffer}; {}", step + 1, plan.join(", then "))
                });
                None
            }
            Progress::Stage { step, steps, stage, iterations } => {
                bar.finish_and_clear();
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.reset();
                bar.set_length(iterations as u64);
                bar.set_style(ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} eta {eta}").unwrap());
                bar.set_prefix(format!("step {}/{} {stage:<8}", step + 1, steps));
                None
            }
            Progress::Iteration { step, stage, iteration, losses, lr, images_per_sec } => {
                bar.set_position(iteration as u64 + 1);
                bar.set_message(format!("loss {:.4} {:.0} img/s", losses.total, images_per_sec));
                Some(serde_json::json!({
                    "type": "train", "step": step, "stage": stage, "iteration": iteration, "lr": lr,
                    "loss": losses.total, "loss_mae": nan_to_null(losses.mae), "loss_current": nan_to_null(losses.current),
                    "loss_buffer": nan_to_null(losses.buffer), "loss_feat": nan_to_null(losses.feat), "loss_kd": nan_to_null(losses.kd),
                    "loss_l2": nan_to_null(losses.l2), "grad_norm": losses.grad_norm, "images_per_sec": images_per_sec,
                    "encoder_norm_mae": nan_to_null(losses.encoder_norms[0]), "encoder_norm_current": nan_to_null(losses.encoder_norms[1]),
                    "encoder_norm_buffer": nan_to_null(losses.encoder_norms[2]),
                }))
            }
            Progress::Curve(p) => Some(serde_json::json!({
                "type": "curve", "step": p.step, "iteration": p.iteration, "round_flops": p.round_flops, "accuracy": p.accuracy,
            })),
            Progress::Selected { step, kept, old } => {
                bar.println(format!("step {}: data selection kept {kept} of {old} old samples", step + 1));
                Some(serde_json::json!({ "type": "selection", "step": step, "kept": kept, "old": old }))
            }
            Progress::Evaluated(e) => {
                bar.finish_and_clear();
                eprintln!("step {}: A(t) = {:.4}  a[t][·] = {:?}", e.step + 1, e.accuracy, e.row.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>());
                Some(serde_json::json!({ "type": "eval", "step": e.step, "accuracy": e.accuracy, "row": e.row }))
            }
        };
        if let Some(line) = line {
            metrics.write(line);
        }
    });
    bar.finish_and_clear();
    metrics.finish()?;
    let summary = resume_hint(summary, "train", &out)?;
    dir.write_summary(&summary)?;
    let plot = out.join("accuracy.png");
    let title = format!("{} on {}", summary.strategy, config.data.train);
    let series = crate::plot::Series { name: "A(t)".into(), mean: summary.accuracy_per_step.clone(), std: Vec::new() };
    if let Err(e) = crate::plot::accuracy(&plot, &title, &[series]) {
        eprintln!("warning: no {}: {e:#}", plot.display());
    }
    println!("{:>6} {:>10}   accuracy row a[t][i]", "step", "A(t)");
    for (t, (a, row)) in summary.accuracy_per_step.iter().zip(&summary.accuracy_matrix).enumerate() {
        println!("{:>6} {:>10.4}   {}", t + 1, a, row.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" "));
    }
    println!(
        "final A(T-1) {:.4}, average {:.4}, forgetting {:.4}; {} optimizer steps, {:.3e} FLOPs, {:.1} s -> {}",
        summary.final_accuracy,
        summary.average_accuracy,
        summary.forgetting,
        summary.optimizer_steps,
        summary.flops,
        summary.wall_seconds,
        out.display()
    );
    Ok(())
}

pub fn nan_to_null(v: f32) -> serde_json::Value {
    if v.is_nan() {
        serde_json::Value::Null
    } else {
        serde_json::json!(v)
    }
}
