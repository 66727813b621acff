//! `rekindle report RUN_DIR...`: one table of the runs' summary numbers, with runs that differ
//! only in their seed aggregated into one setting (mean ± std across seeds), and one plot of
//! A(t) per setting with error bars. Directories that hold no finished run are skipped, each
//! with its reason on stderr; a directory given twice counts once, and a run that repeats the
//! seed of another run of its setting is named and left out rather than counted as a seed.

use crate::plot::Series;
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
    match crate::plot::accuracy(&args.plot, "A(t) per setting (mean ± std across seeds)", &series) {
        Ok(()) => println!("plot: {}", args.plot.display()),
        Err(e) => eprintln!("warning: no {}: {e:#}", args.plot.display()),
    }
    Ok(())
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
