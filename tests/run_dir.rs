//! What a run directory records and promises, end to end: its provenance, resumes checked
//! against the run's config, no stub left by a run that failed before its first checkpoint,
//! the checkpoints `checkpoint.keep` leaves on disk, progress in a log without a terminal, and
//! a closed stdout that ends nothing.

mod common;

use common::rekindle;
use std::path::Path;
use std::process::{Command, Output};

/// The shared tiny stream with 20 optimizer steps per time step (DietCL: 16 joint, then 4
/// buffer).
fn tiny() -> String {
    common::TINY_RANKS.replace("budget: {steps: 8,", "budget: {steps: 20,")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A run of TINY killed at time step 1's fourth optimizer step, to be resumed.
fn killed_run(d: &Path, cfg: &str) -> String {
    let run = d.join("run");
    let o = rekindle(&["train", cfg, "--out", run.to_str().unwrap()], Some("train:1:joint:3"));
    assert!(stderr(&o).contains("aborting at train:1:joint:3"), "{}", stderr(&o));
    run.to_str().unwrap().to_string()
}

#[test]
fn a_resume_keeps_every_key_that_changes_results_and_records_what_it_changed() {
    let d = common::dir("run-dir", "checked");
    let cfg = common::config(&d, &tiny());
    let run = killed_run(&d, &cfg);

    // Provenance of the first start.
    let record = json(&Path::new(&run).join("run.json"));
    let first = &record["starts"][0];
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert!(first["git_commit"].as_str().is_some_and(|c| c.len() >= 12), "built in a checkout: {record}");
    assert!(first["command_line"].as_array().is_some_and(|a| a.iter().any(|v| v == "train")), "{record}");
    assert!(first["host"].as_str().is_some_and(|h| !h.is_empty()) && first["device"].as_str().is_some_and(|h| h.starts_with("cpu")), "{record}");
    assert_eq!(first["world"], 1);
    assert_eq!(record["status"], "running", "killed without a word");

    // Another strategy, another budget: refused, naming each key with both values.
    let er = rekindle(&["train", &cfg, "--set", "strategy.name=er", "--resume", &run], None);
    assert!(!er.status.success() && stderr(&er).contains("strategy.name: dietcl -> er"), "{}", stderr(&er));
    let steps = rekindle(&["train", "--resume", &run, "--set", "budget.steps=10"], None);
    assert!(!steps.status.success() && stderr(&steps).contains("budget.steps: 20 -> 10"), "{}", stderr(&steps));
    // A key that changes results only slightly needs --resume-with-changes.
    let micro = rekindle(&["train", "--resume", &run, "--set", "budget.micro_batch=4"], None);
    assert!(!micro.status.success() && stderr(&micro).contains("budget.micro_batch: 8 -> 4") && stderr(&micro).contains("--resume-with-changes"), "{}", stderr(&micro));
    assert_eq!(json(&Path::new(&run).join("run.json")), record, "refused resumes change nothing");

    // With it, and a key that cannot change results (threads): both recorded.
    let o = rekindle(&["train", "--resume", &run, "--set", "budget.micro_batch=4", "--set", "threads=2", "--resume-with-changes"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let record = json(&Path::new(&run).join("run.json"));
    assert_eq!(record["status"], "finished");
    assert_eq!(record["starts"][1]["changed"], serde_json::json!(["threads: 1 -> 2"]));
    assert_eq!(record["starts"][1]["changed_with_effect"], serde_json::json!(["budget.micro_batch: 8 -> 4"]));
    let summary = json(&Path::new(&run).join("summary.json"));
    assert_eq!(summary["changed_on_resume"], serde_json::json!(["budget.micro_batch: 8 -> 4"]));
    assert_eq!(summary["run_id"], record["id"]);
    assert!(std::fs::read_to_string(Path::new(&run).join("config.yaml")).unwrap().contains("micro_batch: 4"), "config.yaml holds the config the run ended with");
    let plot = d.join("report.png");
    let report = rekindle(&["report", &run, "--plot", plot.to_str().unwrap()], None);
    let table = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success() && table.contains("budget.micro_batch: 8 -> 4"), "report shows the change: {table}{}", stderr(&report));

    // A finished run is not resumed again.
    let again = rekindle(&["train", "--resume", &run], None);
    assert!(!again.status.success() && stderr(&again).contains("already finished"), "{}", stderr(&again));
}

#[test]
fn a_run_that_fails_before_its_first_checkpoint_leaves_no_stub() {
    let d = common::dir("run-dir", "stubs");
    let cfg = common::config(&d, &tiny());
    let failures = [
        ("data.train=/nonexistent/train.shard", "/nonexistent/train.shard"),
        ("model.init=/nonexistent/mae.safetensors", "/nonexistent/mae.safetensors"),
        ("model.overrides.channels=1", "takes 1 channels"),
        ("stream.steps=20", "stream.steps"),
    ];
    for (i, (set, named)) in failures.iter().enumerate() {
        let out = d.join(format!("fails-{i}"));
        let o = rekindle(&["train", &cfg, "--set", set, "--out", out.to_str().unwrap()], None);
        assert!(!o.status.success() && stderr(&o).contains(named), "{set}: {}", stderr(&o));
        assert!(!out.exists(), "{set}: a stub was left in {}", out.display());
    }
    // A directory that was there before stays, empty.
    let mine = d.join("mine");
    std::fs::create_dir(&mine).unwrap();
    let o = rekindle(&["train", &cfg, "--set", failures[0].0, "--out", mine.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(std::fs::read_dir(&mine).unwrap().next().is_none(), "the directory is left as it was");
}

/// The model and optimizer files a finished run left in `checkpoints/`.
fn checkpoint_files(run: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let optimizers = names.iter().filter(|n| n.ends_with(".optimizer.safetensors")).cloned().collect();
    let models = names.into_iter().filter(|n| n.ends_with(".safetensors") && !n.ends_with(".optimizer.safetensors")).collect();
    (models, optimizers)
}

#[test]
fn checkpoint_keep_bounds_the_resumable_states_on_disk() {
    let d = common::dir("run-dir", "keep");
    let cfg = common::config(&d, &tiny());
    let train = |name: &str, sets: &[&str]| {
        let out = d.join(name);
        let mut args = vec!["train", cfg.as_str(), "--out", out.to_str().unwrap(), "--set", "budget.checkpoint_every=5"];
        sets.iter().for_each(|s| args.extend(["--set", s]));
        let o = rekindle(&args, None);
        assert!(o.status.success(), "{}", stderr(&o));
        checkpoint_files(&out)
    };
    let steps: Vec<String> = (0..3).map(|t| format!("step-{t}.safetensors")).collect();
    // Default keep 1: the newest resumable state is the last time step's end, which needs no
    // optimizer; every time step keeps its model alone.
    assert_eq!(train("keep-1", &[]), (steps.clone(), vec![]));
    // keep 3: that end, and the two states before it (after 10 and 15 of step 2's 20 steps).
    let (models, optimizers) = train("keep-3", &["checkpoint.keep=3"]);
    assert_eq!(optimizers, ["step-2-iter-10.optimizer.safetensors", "step-2-iter-15.optimizer.safetensors"]);
    assert_eq!(models, ["step-0.safetensors", "step-1.safetensors", "step-2-iter-10.safetensors", "step-2-iter-15.safetensors", "step-2.safetensors"]);
    // keep_all: every state inside every time step (after 5, 10 and 15 of each).
    let (_, optimizers) = train("keep-all", &["checkpoint.keep_all=true"]);
    assert_eq!(optimizers.len(), 9, "{optimizers:?}");
}

#[test]
fn without_a_terminal_progress_comes_as_plain_lines() {
    let d = common::dir("run-dir", "log");
    let cfg = common::config(&d, &tiny());
    let out = d.join("run");
    let o = rekindle(&["train", &cfg, "--out", out.to_str().unwrap(), "--progress-every", "0"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(!log.contains('\r'), "no carriage return in a log");
    let line = log.lines().find(|l| l.starts_with("step 2/3 joint 7/16 loss ")).unwrap_or_else(|| panic!("a progress line per iteration: {log}"));
    assert!(line.contains("img/s eta "), "{line}");
}

#[test]
fn a_closed_stdout_ends_neither_the_run_nor_its_record() {
    let d = common::dir("run-dir", "head");
    let cfg = common::config(&d, &tiny());
    let out = d.join("run");
    let script = format!("'{}' train '{cfg}' --out '{}' 2>&1 | head -1; exit ${{PIPESTATUS[0]}}", env!("CARGO_BIN_EXE_rekindle"), out.display());
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "rekindle exited {:?}", o.status);
    assert_eq!(json(&out.join("run.json"))["status"], "finished");
    assert!(out.join("summary.json").exists());
}
