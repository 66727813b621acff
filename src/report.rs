//! `rekindle report RUN_DIR...`: one table of the runs' summary numbers, with runs that differ
//! only in their seed aggregated into one setting (mean ± std across seeds), and one plot of
//! A(t) per setting with error bars. Directories that hold no finished run are skipped, each
//! with its reason on stderr; a directory given twice counts once, and a run that repeats the
//! seed of another run of its setting is named and left out rather than counted as a seed.
//! Beside the table: a plot of A(t) with each setting's per-class accuracy as a heat map, a plot
//! of the training loss against optimizer steps and FLOPs, and with `--per-class` a table of
//! each class's accuracy per time step.

use crate::plot::{ClassGrid, LossPoint, LossSeries, Series};
use anyhow::{Context, Result};
use rekindle_coordinator::config::flat_keys;
use rekindle_coordinator::{RunDir, Summary};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories written by `rekindle train`. Runs whose resolved configs (config.yaml)
    /// differ only in `seed` (and `threads`) are one setting: the table shows their mean ± std
    /// and the plot their spread as error bars. Directories without a finished run (no
    /// config.yaml, no summary.json, a run.json status other than `finished`) are skipped with
    /// a note; a run that repeats the seed of another run of its setting is not counted.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to draw A(t) of every setting.
    #[arg(long, default_value = "report.png")]
    plot: PathBuf,
    /// Also write the table as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also print each setting's accuracy per class at every time step (mean over seeds).
    #[arg(long)]
    per_class: bool,
}

/// The `summary.json` of a finished run directory.
pub fn load_summary(dir: &Path) -> Result<Summary> {
    Ok(RunDir::open(dir).read_summary()?)
}

/// A finished run given on the command line: its directory as given, its seed, its resolved
/// config as `dotted.key → value` without the keys that do not change what is trained (`seed`,
/// `threads`), and its summary.
struct Run {
    name: String,
    seed: Option<String>,
    config: BTreeMap<String, String>,
    summary: Summary,
}

/// The run in `dir`, or why it is not a finished run: not a directory, no config.yaml, a
/// run.json whose status is not `finished`, no summary.json or one that does not read as a
/// summary.
fn load_run(dir: &Path) -> Result<Run, String> {
    if !dir.is_dir() {
        return Err(if dir.exists() { "not a directory".into() } else { "no such directory".into() });
    }
    let run = RunDir::open(dir);
    let Some(text) = run.config_text() else { return Err("not a run directory (no config.yaml)".into()) };
    match std::fs::read_to_string(dir.join("run.json")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read run.json: {e}")),
        Ok(json) => {
            let json: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("run.json is not JSON: {e}"))?;
            // Without a status, summary.json decides.
            match json["status"].as_str() {
                None | Some("finished") => {}
                Some(status) => return Err(format!("{status} (status in run.json){}", json["error"].as_str().map_or(String::new(), |e| format!(": {e}")))),
            }
        }
    }
    if !dir.join("summary.json").exists() {
        return Err("unfinished (no summary.json)".into());
    }
    let summary = run.read_summary::<Summary>().map_err(|e| format!("summary.json does not read as a run's summary: {e}"))?;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| format!("config.yaml is not YAML: {e}"))?;
    let mut config = flat_keys(&doc);
    let seed = config.remove("seed");
    config.remove("threads");
    Ok(Run { name: dir.display().to_string(), seed, config, summary })
}

/// The finished runs among `dirs`, each directory once however it is spelled (`runs/x`,
/// `runs/x/`, `./runs/x`, a symlink); every other one is named on stderr with the reason.
fn finished_runs(dirs: &[PathBuf]) -> Vec<Run> {
    let mut seen: Vec<(PathBuf, String)> = Vec::new();
    let mut runs = Vec::new();
    for dir in dirs {
        let name = dir.display().to_string();
        if let Ok(canonical) = dir.canonicalize() {
            if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canonical) {
                eprintln!("skipping {name}: the same directory as {first} (counted once)");
                continue;
            }
            seen.push((canonical, name.clone()));
        }
        match load_run(dir) {
            Ok(run) => runs.push(run),
            Err(reason) => eprintln!("skipping {name}: {reason}"),
        }
    }
    runs
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Runs of one setting, one per seed.
struct Group {
    config: BTreeMap<String, String>,
    runs: Vec<Run>,
}

impl Group {
    fn stat(&self, f: impl Fn(&Summary) -> f64) -> (f64, f64) {
        mean_std(&self.runs.iter().map(|r| f(&r.summary)).collect::<Vec<_>>())
    }

    fn per_step(&self) -> (Vec<f64>, Vec<f64>) {
        let steps = self.runs.iter().map(|r| r.summary.accuracy_per_step.len()).min().unwrap_or(0);
        (0..steps).map(|t| self.stat(|s| s.accuracy_per_step[t])).unzip()
    }

    fn class_grid(&self, name: &str) -> ClassGrid {
        class_grid(name, &self.runs.iter().map(|r| &r.summary).collect::<Vec<_>>())
    }

    /// The training loss at each optimizer step, mean and std across seeds.
    fn loss(&self, name: &str) -> LossSeries {
        let curves: Vec<Vec<(f64, f64, f64)>> = self.runs.iter().map(|r| loss_curve(Path::new(&r.name))).collect();
        let steps = curves.iter().map(Vec::len).min().unwrap_or(0);
        let points = (0..steps)
            .map(|i| {
                let (mean, std) = mean_std(&curves.iter().map(|c| c[i].2).collect::<Vec<_>>());
                LossPoint { optimizer_step: curves[0][i].0, flops: curves[0][i].1, mean, std }
            })
            .collect();
        LossSeries { name: name.into(), points }
    }
}

/// Each class's accuracy at each time step, averaged over `summaries` (runs of one setting).
pub fn class_grid(name: &str, summaries: &[&Summary]) -> ClassGrid {
    let classes: std::collections::BTreeSet<u32> = summaries.iter().flat_map(|s| s.per_class.iter().flat_map(|t| t.keys().copied())).collect();
    let steps = summaries.iter().map(|s| s.per_class.len()).min().unwrap_or(0);
    let rows = classes
        .iter()
        .map(|c| {
            (0..steps)
                .map(|t| {
                    let seen: Vec<f64> = summaries.iter().filter_map(|s| s.per_class[t].get(c).copied()).collect();
                    (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
                })
                .collect()
        })
        .collect();
    ClassGrid { name: name.into(), classes: classes.iter().map(u32::to_string).collect(), rows }
}

/// (optimizer step, FLOPs so far, loss) of every training line of the run in `dir`.
pub fn loss_curve(dir: &Path) -> Vec<(f64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "train")
        .filter_map(|v| Some((v["optimizer_step"].as_f64()?, v["flops"].as_f64()?, v["loss"].as_f64()?)))
        .collect()
}

/// `path` with `-suffix` added to its file stem (`report.png` → `report-loss.png`).
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map_or("plot".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-{suffix}.png"))
}

/// `runs` by setting. A run with the seed of an earlier run of its setting repeats it rather
/// than adding a seed: the first is kept, and the repeats are named on stderr.
fn group(runs: Vec<Run>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    // (the kept run, its seed, the runs that repeat it)
    let mut repeats: Vec<(String, String, Vec<String>)> = Vec::new();
    for run in runs {
        let Some(g) = groups.iter_mut().find(|g| g.config == run.config) else {
            groups.push(Group { config: run.config.clone(), runs: vec![run] });
            continue;
        };
        let Some(kept) = g.runs.iter().find(|r| r.seed == run.seed) else {
            g.runs.push(run);
            continue;
        };
        match repeats.iter_mut().find(|(name, ..)| *name == kept.name) {
            Some((.., names)) => names.push(run.name),
            None => repeats.push((kept.name.clone(), run.seed.unwrap_or_else(|| "(default)".into()), vec![run.name])),
        }
    }
    for (kept, seed, names) in &repeats {
        eprintln!("warning: {kept}, {} are one setting with the same seed ({seed}): only {kept} is counted", names.join(", "));
    }
    groups
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let runs = finished_runs(&args.runs);
    if runs.is_empty() {
        anyhow::bail!("no finished run to report: all {} given directories were skipped (see above)", args.runs.len());
    }
    let groups = group(runs);
    let labels = labels(&groups);
    // Mean ± std across seeds, or the value of a single run.
    let show = |(m, s): (f64, f64), n: usize, digits: usize| if n > 1 { format!("{m:.digits$} ± {s:.digits$}") } else { format!("{m:.digits$}") };
    let header = ["setting", "seeds", "A(T-1)", "average A(t)", "forgetting", "steps", "FLOPs", "wall s", "A(t), mean over seeds"];
    let rows: Vec<Vec<String>> = groups
        .iter()
        .zip(&labels)
        .map(|(g, label)| {
            let n = g.runs.len();
            let (curve, _) = g.per_step();
            vec![
                label.clone(),
                n.to_string(),
                show(g.stat(|s| s.final_accuracy), n, 4),
                show(g.stat(|s| s.average_accuracy), n, 4),
                show(g.stat(|s| s.forgetting), n, 4),
                format!("{:.0}", g.stat(|s| s.optimizer_steps as f64).0),
                format!("{:.3e}", g.stat(|s| s.flops).0),
                show(g.stat(|s| s.wall_seconds), n, 1),
                curve.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| cells.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
    println!("{}", line(&header.map(String::from)));
    rows.iter().for_each(|r| println!("{}", line(r)));
    for (g, label) in groups.iter().zip(&labels).filter(|(g, _)| g.runs.len() > 1) {
        println!("{label}: {}", g.runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    // A run resumed with --resume-with-changes is not a run of one config: say so.
    for r in groups.iter().flat_map(|g| &g.runs).filter(|r| !r.summary.changed_on_resume.is_empty()) {
        println!("{}: resumed with changed keys: {}", r.name, r.summary.changed_on_resume.join(", "));
    }
    if let Some(path) = &args.markdown {
        let mut md = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
        rows.iter().for_each(|r| md += &format!("| {} |\n", r.join(" | ")));
        std::fs::write(path, md).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let series: Vec<Series> = groups
        .iter()
        .zip(&labels)
        .map(|(g, label)| {
            let (mean, std) = g.per_step();
            let std = if g.runs.len() > 1 { std } else { Vec::new() };
            Series { name: format!("{label} (n={})", g.runs.len()), mean, std }
        })
        .collect();
    let grids: Vec<ClassGrid> = groups.iter().zip(&labels).map(|(g, label)| g.class_grid(label)).collect();
    match crate::plot::accuracy(&args.plot, "A(t) per setting (mean ± std across seeds)", &series, &grids) {
        Ok(()) => println!("plot: {}", args.plot.display()),
        Err(e) => eprintln!("warning: no {}: {e:#}", args.plot.display()),
    }
    let loss_plot = beside(&args.plot, "loss");
    let losses: Vec<LossSeries> = groups.iter().zip(&labels).map(|(g, label)| g.loss(label)).collect();
    match crate::plot::losses(&loss_plot, "training loss per setting (mean ± std across seeds)", &losses) {
        Ok(()) => println!("plot: {}", loss_plot.display()),
        Err(e) => eprintln!("warning: no {}: {e:#}", loss_plot.display()),
    }
    if args.per_class {
        for grid in &grids {
            print_class_grid(grid);
        }
    }
    Ok(())
}

/// `grid` as a table: a row per class, a column per time step ("-" before the class was seen).
fn print_class_grid(grid: &ClassGrid) {
    let steps = grid.rows.iter().map(Vec::len).max().unwrap_or(0);
    println!("\naccuracy per class, {}", grid.name);
    println!("{:>8} {}", "class", (1..=steps).map(|t| format!("{:>7}", format!("t={t}"))).collect::<String>());
    for (class, row) in grid.classes.iter().zip(&grid.rows) {
        println!("{class:>8} {}", row.iter().map(|a| a.map_or(format!("{:>7}", "-"), |a| format!("{a:>7.3}"))).collect::<String>());
    }
}

/// A name per setting: the config keys whose values differ between settings, as `key=value`
/// with the key's full path (e.g. `strategy.name=er stream.label_rate=0.01`), or the strategy
/// when they agree.
fn labels(groups: &[Group]) -> Vec<String> {
    let keys: Vec<&String> = groups.iter().flat_map(|g| g.config.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut differing: Vec<&String> = keys.into_iter().filter(|k| groups.iter().any(|g| g.config.get(*k) != groups[0].config.get(*k))).collect();
    // The strategy first: it is what a reader looks for.
    differing.sort_by_key(|k| *k != "strategy.name");
    groups
        .iter()
        .map(|g| {
            let parts: Vec<String> = differing.iter().map(|k| format!("{k}={}", g.config.get(*k).map_or("-", |v| v.as_str()))).collect();
            if parts.is_empty() {
                g.runs[0].summary.strategy.clone()
            } else {
                parts.join(" ")
            }
        })
        .collect()
}
