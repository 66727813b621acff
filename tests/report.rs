//! `rekindle report` on real run directories (tiny runs of `rekindle train`): unfinished and
//! non-run directories are skipped with their reason, a directory given twice counts once, runs
//! that repeat a seed of their setting are named and not counted as seeds, and settings are
//! labelled by full key paths. And `rekindle bench step` writes plain lines into a log.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn rekindle(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.args(args);
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Finished tiny runs, trained once for every test of this file: `seed0`, `seed1`,
/// `seed0-again` (seed 0 a second time) and `steps9` (seed 0, `budget.steps=9` instead of 8).
fn runs() -> &'static Path {
    static RUNS: OnceLock<PathBuf> = OnceLock::new();
    RUNS.get_or_init(|| {
        let d = common::dir("report", "runs");
        let config = common::config(&d, common::TINY_RANKS);
        for (name, set) in [("seed0", "seed=0"), ("seed1", "seed=1"), ("seed0-again", "seed=0"), ("steps9", "budget.steps=9")] {
            let out = d.join(name);
            let o = rekindle(&["train", &config, "--set", "seed=0", "--set", set, "--out", out.to_str().unwrap()]).output().unwrap();
            assert!(o.status.success(), "train {name}: {}", text(&o.stderr));
        }
        d
    })
}

fn run(name: &str) -> String {
    runs().join(name).display().to_string()
}

/// `d/name` holding `files` of run `from`.
fn copy(d: &Path, name: &str, from: &str, files: &[&str]) -> String {
    let dir = d.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in files {
        std::fs::copy(runs().join(from).join(file), dir.join(file)).unwrap();
    }
    dir.display().to_string()
}

/// A directory in `d` like a run killed before its end: its config and metrics, no summary.
fn unfinished(d: &Path) -> String {
    copy(d, "unfinished", "seed1", &["config.yaml", "metrics.jsonl"])
}

/// `rekindle report DIRS...` (in `cwd`), with its table as Markdown rows.
fn report(d: &Path, cwd: &Path, dirs: &[&str]) -> (Output, Vec<String>) {
    let (md, png) = (d.join("table.md"), d.join("report.png"));
    let _ = std::fs::remove_file(&md);
    let mut args = vec!["report"];
    args.extend(dirs);
    args.extend(["--plot", png.to_str().unwrap(), "--markdown", md.to_str().unwrap()]);
    let o = rekindle(&args).current_dir(cwd).output().unwrap();
    let rows = std::fs::read_to_string(&md).map(|t| t.lines().skip(2).map(str::to_string).collect()).unwrap_or_default();
    (o, rows)
}

/// The `seeds` cell of a Markdown row.
fn seeds(row: &str) -> &str {
    row.split('|').nth(2).unwrap().trim()
}

#[test]
fn unfinished_and_non_run_directories_are_skipped_and_the_rest_reported() {
    let d = common::dir("report", "skip");
    let unfinished = unfinished(&d);
    let empty = copy(&d, "empty", "seed0", &[]);
    let (o, rows) = report(&d, &d, &[&run("seed0"), &unfinished, &run("seed1"), &empty]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("skipping {unfinished}: unfinished (no summary.json)")), "{err}");
    assert!(err.contains(&format!("skipping {empty}: not a run directory (no config.yaml)")), "{err}");
    assert_eq!(rows.len(), 1, "one setting: {rows:?}");
    assert_eq!(seeds(&rows[0]), "2", "seed0 and seed1: {}", rows[0]);
}

#[test]
fn only_unfinished_or_failed_runs_fail_with_a_clear_message() {
    let d = common::dir("report", "none");
    let unfinished = unfinished(&d);
    // A run whose run.json says it failed is not reported, whatever else it holds.
    let failed = copy(&d, "failed", "seed0", &["config.yaml", "summary.json"]);
    std::fs::write(Path::new(&failed).join("run.json"), r#"{"status": "failed"}"#).unwrap();
    let (o, rows) = report(&d, &d, &[&unfinished, &failed]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && rows.is_empty(), "{err}");
    assert!(err.contains(&format!("skipping {unfinished}: unfinished (no summary.json)")), "{err}");
    assert!(err.contains(&format!("skipping {failed}: failed (status in run.json)")), "{err}");
    assert!(err.contains("no finished run to report"), "{err}");
}

#[test]
fn the_same_directory_given_twice_counts_once() {
    let d = common::dir("report", "twice");
    let seed0 = run("seed0");
    let link = d.join("link");
    std::os::unix::fs::symlink(&seed0, &link).unwrap();
    // The same run as given, with a trailing slash, relative with `./`, and through a symlink.
    let (o, rows) = report(&d, runs(), &[&seed0, &format!("{seed0}/"), "./seed0", link.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(seeds(&rows[0]), "1", "one run: {}", rows[0]);
    assert!(!rows[0].contains('±'), "one run has no spread: {}", rows[0]);
    assert_eq!(err.matches("the same directory as").count(), 3, "{err}");
}

#[test]
fn runs_with_the_same_seed_are_flagged_not_counted_as_seeds() {
    let d = common::dir("report", "same-seed");
    let (seed0, again) = (run("seed0"), run("seed0-again"));
    let (o, rows) = report(&d, &d, &[&seed0, &again, &run("seed1")]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(seeds(&rows[0]), "2", "seeds 0 and 1: {}", rows[0]);
    let warning = err.lines().find(|l| l.starts_with("warning:") && l.contains("same seed")).unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(warning.contains(&seed0) && warning.contains(&again), "{warning}");

    // Two seed-0 runs are one seed, not two with a spread of 0.
    let (o, rows) = report(&d, &d, &[&seed0, &again]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(seeds(&rows[0]), "1", "{}", rows[0]);
    assert!(!rows[0].contains('±'), "{}", rows[0]);
}

#[test]
fn labels_name_the_full_key_path() {
    let d = common::dir("report", "labels");
    let (o, rows) = report(&d, &d, &[&run("seed0"), &run("steps9")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("| budget.steps=8 |"), "{}", rows[0]);
    assert!(rows[1].starts_with("| budget.steps=9 |"), "{}", rows[1]);
    assert!(text(&o.stdout).contains("budget.steps=9"), "the printed table too");
}

/// Into a pipe (a log), `bench step` prints each step as a line: no carriage returns.
#[test]
fn bench_step_writes_no_carriage_returns_into_a_log() {
    let o = rekindle(&["bench", "step", "--preset", "vit-micro-4-28", "--batch", "2", "--iters", "2", "--warmup", "1", "--threads", "1"]).output().unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(!out.contains('\r') && !err.contains('\r'), "stdout {out:?}, stderr {err:?}");
    assert!(err.contains("step 1/3\nstep 2/3\nstep 3/3\n"), "{err:?}");
    assert!(out.contains("images/s"), "{out}");
}

#[test]
fn per_class_accuracy_agrees_with_the_accuracy_matrix() {
    // Class-incremental with equal test images per class: a[t][i] is the mean of the per-class
    // accuracies of the classes step i brought, at every t.
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs().join("seed1/summary.json")).unwrap()).unwrap();
    let (matrix, per_class) = (summary["accuracy_matrix"].as_array().unwrap(), summary["per_class"].as_array().unwrap());
    assert_eq!(per_class.len(), matrix.len(), "one per-class record per time step");
    let classes_at = |t: usize| -> Vec<String> { per_class[t].as_object().unwrap().keys().cloned().collect() };
    for (t, row) in matrix.iter().enumerate() {
        for (i, a) in row.as_array().unwrap().iter().enumerate() {
            let brought: Vec<String> = classes_at(i).into_iter().filter(|c| i == 0 || !classes_at(i - 1).contains(c)).collect();
            let mean = brought.iter().map(|c| per_class[t][c].as_f64().unwrap()).sum::<f64>() / brought.len() as f64;
            assert!((mean - a.as_f64().unwrap()).abs() < 1e-12, "a[{t}][{i}] = {a} but its classes {brought:?} average {mean}");
        }
    }
    // The eval lines of metrics.jsonl carry the same numbers.
    let metrics = std::fs::read_to_string(runs().join("seed1/metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v["type"] == "eval").collect();
    assert!(evals.iter().zip(per_class).all(|(e, p)| &e["per_class"] == p));
}

#[test]
fn report_prints_per_class_accuracy_and_draws_loss_curves() {
    let d = common::dir("report", "per-class");
    let (plot, loss) = (d.join("r.png"), d.join("r-loss.png"));
    let o = rekindle(&["report", &run("seed0"), &run("seed1"), &run("steps9"), "--per-class", "--plot", plot.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    // One table per setting: a row per class (6 in the tiny stream), a column per time step.
    assert_eq!(out.matches("accuracy per class, ").count(), 2, "{out}");
    assert!(out.contains("t=1") && out.contains("t=3"), "{out}");
    for path in [&plot, &loss] {
        let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(image.width() > 800, "{}", path.display());
    }
    // `train` draws its own: accuracy with the heat map, and the loss.
    for file in ["accuracy.png", "loss.png"] {
        assert!(image::open(runs().join("seed0").join(file)).is_ok(), "{file}");
    }
}
