//! `rekindle report RUN_DIR...`: one table of the runs' summary numbers, with runs that differ
//! only in their seed aggregated into one setting (mean ± std across seeds), and one plot of
//! A(t) per setting with error bars.

use crate::plot::Series;
use anyhow::{Context, Result};
use rekindle_coordinator::{RunDir, Summary};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories written by `rekindle train`. Runs whose resolved configs (config.yaml)
    /// differ only in `seed` (and `threads`) are one setting: the table shows their mean ± std
    /// and the plot their spread as error bars.
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

/// A run's resolved config as `dotted.key → value`, without the keys that do not change what is
/// trained (`seed`, `threads`); empty when the run has no config.yaml.
fn setting(dir: &Path) -> Result<BTreeMap<String, String>> {
    let run = RunDir::open(dir);
    let Some(text) = run.config_text() else { return Ok(BTreeMap::new()) };
    let doc: Value = serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not YAML", run.config_path().display()))?;
    let mut flat = BTreeMap::new();
    flatten("", &doc, &mut flat);
    flat.remove("seed");
    flat.remove("threads");
    Ok(flat)
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
                flatten(&if prefix.is_empty() { key } else { format!("{prefix}.{key}") }, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string());
        }
    }
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Runs of one setting.
struct Group {
    config: BTreeMap<String, String>,
    runs: Vec<(String, Summary)>,
}

impl Group {
    fn stat(&self, f: impl Fn(&Summary) -> f64) -> (f64, f64) {
        mean_std(&self.runs.iter().map(|(_, s)| f(s)).collect::<Vec<_>>())
    }

    fn per_step(&self) -> (Vec<f64>, Vec<f64>) {
        let steps = self.runs.iter().map(|(_, s)| s.accuracy_per_step.len()).min().unwrap_or(0);
        (0..steps).map(|t| self.stat(|s| s.accuracy_per_step[t])).unzip()
    }
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let mut groups: Vec<Group> = Vec::new();
    for dir in &args.runs {
        let (config, summary) = (setting(dir)?, load_summary(dir)?);
        let name = dir.display().to_string();
        // Runs without a config.yaml are settings of their own.
        match groups.iter_mut().find(|g| !config.is_empty() && g.config == config) {
            Some(g) => g.runs.push((name, summary)),
            None => groups.push(Group { config, runs: vec![(name, summary)] }),
        }
    }
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
        println!("{label}: {}", g.runs.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "));
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
/// with the key's last part (e.g. `name=er label_rate=0.01`); the strategy when they agree, and
/// the run directory for runs without a config.
fn labels(groups: &[Group]) -> Vec<String> {
    let keys: Vec<&String> = groups.iter().flat_map(|g| g.config.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut differing: Vec<&String> = keys.into_iter().filter(|k| groups.iter().any(|g| g.config.get(*k) != groups[0].config.get(*k))).collect();
    // The strategy first: it is what a reader looks for.
    differing.sort_by_key(|k| *k != "strategy.name");
    groups
        .iter()
        .map(|g| {
            if g.config.is_empty() {
                return g.runs[0].0.clone();
            }
            let parts: Vec<String> = differing.iter().map(|k| format!("{}={}", k.rsplit('.').next().unwrap_or(k), g.config.get(*k).map_or("-", |v| v.as_str()))).collect();
            if parts.is_empty() {
                g.runs[0].1.strategy.clone()
            } else {
                parts.join(" ")
            }
        })
        .collect()
}
