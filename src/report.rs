//! `rekindle report RUN_DIR...`: one table of the runs' summary numbers.

use anyhow::{Context, Result};
use rekindle_coordinator::Summary;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories written by `rekindle train`.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to draw A(t) of every run.
    #[arg(long, default_value = "report.png")]
    plot: PathBuf,
}

/// The `summary.json` of a finished run directory.
pub fn load_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a finished run?)", path.display(), dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let mut rows = Vec::new();
    for dir in &args.runs {
        rows.push((dir.display().to_string(), load_summary(dir)?));
    }
    let width = rows.iter().map(|(d, _)| d.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<width$} {:<18} {:>9} {:>9} {:>10} {:>8} {:>10} {:>9}   A(t)",
        "run", "strategy", "A(T-1)", "average", "forgetting", "steps", "FLOPs", "wall s"
    );
    for (dir, s) in &rows {
        let curve: Vec<String> = s.accuracy_per_step.iter().map(|a| format!("{a:.3}")).collect();
        println!(
            "{:<width$} {:<18} {:>9.4} {:>9.4} {:>10.4} {:>8} {:>10.3e} {:>9.1}   {}",
            dir,
            s.strategy,
            s.final_accuracy,
            s.average_accuracy,
            s.forgetting,
            s.optimizer_steps,
            s.flops,
            s.wall_seconds,
            curve.join(" ")
        );
    }
    let series: Vec<(String, Vec<f64>)> = rows.iter().map(|(d, s)| (format!("{} ({d})", s.strategy), s.accuracy_per_step.clone())).collect();
    match crate::plot::accuracy(&args.plot, "A(t) per run", &series) {
        Ok(()) => println!("plot: {}", args.plot.display()),
        Err(e) => eprintln!("warning: no {}: {e:#}", args.plot.display()),
    }
    Ok(())
}
