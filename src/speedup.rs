//! `rekindle speedup --scratch RUN --runs RUN...`: the compute each run needs to reach the
//! from-scratch accuracy `A*` (METHODS.md §3), a table and one plot.

use crate::report::load_summary;
use anyhow::{bail, Result};
use rekindle_coordinator::speedup::{round_curve, smallest_fraction, speedup};
use rekindle_coordinator::{CurvePoint, RunDir, Summary, TrainConfig};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SpeedupArgs {
    /// The run trained from scratch on the same data (`strategy.name: scratch`); its accuracy at
    /// the end of the round is the target A* and its steps there are S.
    #[arg(long, value_name = "RUN")]
    scratch: PathBuf,
    /// Runs to compare (warmstart, ckca, continuous, ...), each a `rekindle train` directory.
    /// Runs that differ only in `continuous.schedule_fraction` form one shortened-schedule search.
    #[arg(long, value_name = "RUN", num_args = 1.., required = true)]
    runs: Vec<PathBuf>,
    /// The time step (round) to compare, counted from 1 (default: the last).
    #[arg(long)]
    step: Option<usize>,
    /// Where to draw accuracy against optimizer steps and FLOPs.
    #[arg(long, default_value = "speedup.png")]
    plot: PathBuf,
}

struct Run {
    name: String,
    summary: Summary,
    config: TrainConfig,
    curve: Vec<CurvePoint>,
}

fn load(dir: &Path, step: usize) -> Result<Run> {
    let summary = load_summary(dir)?;
    let config = RunDir::open(dir).read_config(&[])?;
    let curve = round_curve(&summary.curve, step);
    if curve.is_empty() {
        bail!("{} has no evaluation in time step {} (it has {} steps)", dir.display(), step + 1, summary.accuracy_per_step.len());
    }
    Ok(Run { name: dir.display().to_string(), summary, config, curve })
}

pub fn run(args: &SpeedupArgs) -> Result<()> {
    let steps = load_summary(&args.scratch)?.accuracy_per_step.len();
    let step = match args.step {
        Some(0) => bail!("--step counts from 1"),
        Some(s) => s - 1,
        None => steps.saturating_sub(1),
    };
    let scratch = load(&args.scratch, step)?;
    let runs = args.runs.iter().map(|d| load(d, step)).collect::<Result<Vec<_>>>()?;
    // Scratch against itself: its own end is the target A*, with S and its FLOPs.
    let reference = speedup(&scratch.curve, &scratch.curve).expect("scratch has a curve");
    println!(
        "time step {}: A* = {:.4} (scratch {}, S = {} steps, {:.3e} FLOPs in the step)",
        step + 1,
        reference.target,
        scratch.name,
        reference.scratch_steps,
        reference.scratch_flops
    );
    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
    println!("{:<width$} {:<11} {:>5} {:>9} {:>7} {:>8} {:>11} {:>8}", "run", "strategy", "f", "A(end)", "I", "S/I", "FLOPs ratio", "wall s");
    for r in &runs {
        let s = speedup(&scratch.curve, &r.curve).expect("scratch has a curve");
        let fmt = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.2}x"));
        println!(
            "{:<width$} {:<11} {:>5.2} {:>9.4} {:>7} {:>8} {:>11} {:>8.1}",
            r.name,
            r.summary.strategy,
            r.config.continuous.schedule_fraction,
            r.curve.last().map_or(0.0, |p| p.accuracy),
            s.reached.map_or("-".to_string(), |p| p.iteration.to_string()),
            fmt(s.steps()),
            fmt(s.flops()),
            r.summary.wall_seconds
        );
    }
    // Shortened-schedule searches: runs whose configs agree apart from the fraction.
    let mut groups: Vec<Vec<&Run>> = Vec::new();
    for r in &runs {
        let key = without_fraction(&r.config);
        match groups.iter_mut().find(|g| without_fraction(&g[0].config) == key) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    for g in groups.iter().filter(|g| g.len() > 1) {
        let tried: Vec<(f64, f64)> = g.iter().map(|r| (r.config.continuous.schedule_fraction, r.curve.last().map_or(0.0, |p| p.accuracy))).collect();
        let list: Vec<String> = tried.iter().map(|(f, a)| format!("f={f} -> {a:.4}")).collect();
        match smallest_fraction(&tried, reference.target) {
            Some(f) => println!("schedule search ({}): {}; smallest f reaching A*: {f} ({:.2}x fewer steps)", g[0].summary.strategy, list.join(", "), 1.0 / f),
            None => println!("schedule search ({}): {}; no fraction reaches A*", g[0].summary.strategy, list.join(", ")),
        }
    }
    let series: Vec<(String, Vec<CurvePoint>)> = std::iter::once(&scratch).chain(&runs).map(|r| (format!("{} ({})", r.summary.strategy, r.name), r.curve.clone())).collect();
    match crate::plot::compute_curves(&args.plot, &format!("time step {}: accuracy against compute", step + 1), &series, reference.target) {
        Ok(()) => println!("plot: {}", args.plot.display()),
        Err(e) => eprintln!("warning: no {}: {e:#}", args.plot.display()),
    }
    Ok(())
}

fn without_fraction(config: &TrainConfig) -> TrainConfig {
    let mut c = config.clone();
    c.continuous.schedule_fraction = 1.0;
    c
}
