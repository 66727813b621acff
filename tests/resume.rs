//! Exact resume everywhere: a run killed at a named point (`REKINDLE_FAULT`, an abort as abrupt
//! as SIGKILL) inside a stage, between stages, during the closing evaluation or halfway through a
//! checkpoint, then resumed, ends with the uninterrupted run's whole `summary.json` (wall time
//! aside) and the same training lines — for DietCL, ER and a CKCA round run; and with
//! `budget.checkpoint_every`, from the checkpoint inside the stage (two points per stage).

mod common;

use common::{summary_without_wall, train_lines};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Three time steps, 16 optimizer steps each (DietCL: 12 joint, then 4 buffer).
const TINY: &str = "
seed: 9
model: {preset: vit-micro-4-28, overrides: {image_size: 16, channels: 3, depth: 2, dim: 32, heads: 2, decoder_dim: 32}}
data: {synthetic: {classes: 6, train_per_class: 30, test_per_class: 10, size: 16}, eval_batch: 32}
stream: {scenario: class-incremental, steps: 3, label_rate: 0.3}
budget: {steps: 16, effective_batch: 32, micro_batch: 16, eval_every: 5}
strategy: {name: dietcl}
optim: {lr: 1.0e-3, min_lr: 1.0e-5}
threads: 1
";

fn dir(name: &str) -> PathBuf {
    common::dir("resume", name)
}

fn train(args: &[&str], fault: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.arg("train").args(args);
    match fault {
        Some(f) => c.env("REKINDLE_FAULT", f),
        None => c.env_remove("REKINDLE_FAULT"),
    };
    c.output().expect("run rekindle")
}

/// Runs `sets` whole, then once per fault point killed there and resumed; each must match.
fn resumes_exactly(name: &str, sets: &[&str], points: &[&str]) {
    resumes_exactly_from(name, sets, &points.iter().map(|p| (*p, None)).collect::<Vec<_>>());
}

/// [`resumes_exactly`], where each point may name the checkpoint inside a time step that the
/// resume must start from (`state.json`'s `inside.checkpoint`).
fn resumes_exactly_from(name: &str, sets: &[&str], points: &[(&str, Option<&str>)]) {
    let d = dir(name);
    let cfg = d.join("tiny.yaml");
    std::fs::write(&cfg, TINY).unwrap();
    let mut args = vec![cfg.to_str().unwrap().to_string()];
    sets.iter().for_each(|s| args.extend(["--set".to_string(), s.to_string()]));
    let with_out = |out: &Path| -> Vec<String> { args.iter().cloned().chain(["--out".into(), out.display().to_string()]).collect() };
    let whole = d.join("whole");
    let o = train(&with_out(&whole).iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    let expected = (summary_without_wall(&whole), train_lines(&whole));
    for &(point, inside) in points {
        let run = d.join(point.replace(':', "-"));
        let o = train(&with_out(&run).iter().map(String::as_str).collect::<Vec<_>>(), Some(point));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(&format!("aborting at {point}")), "{name}: the fault {point} never fired: {err}");
        assert!(!run.join("summary.json").exists());
        // (No state.json at all when the first checkpoint was cut short.)
        let state: serde_json::Value = std::fs::read_to_string(run.join("state.json")).map_or(serde_json::Value::Null, |t| serde_json::from_str(&t).unwrap());
        assert_eq!(state["inside"]["checkpoint"].as_str(), inside, "{name}: the checkpoint a kill at {point} resumes from");
        let o = train(&["--resume", run.to_str().unwrap()], None);
        assert!(o.status.success(), "{name} resumed after {point}: {}", String::from_utf8_lossy(&o.stderr));
        let got = (summary_without_wall(&run), train_lines(&run));
        assert_eq!(got.0, expected.0, "{name}: the summary differs after a kill at {point}");
        assert!(got.1 == expected.1, "{name}: training lines differ after a kill at {point}");
    }
}

#[test]
fn dietcl_resumes_exactly_from_any_point() {
    // Inside stage 1, between the stages (the buffer stage's first step), during the closing
    // evaluation, and between a checkpoint's model file and its state.json.
    resumes_exactly("dietcl", &[], &["train:1:joint:7", "train:2:buffer:0", "eval:1", "checkpoint:1"]);
}

#[test]
fn er_resumes_exactly_from_any_point() {
    // ER has one stage per time step: "between stages" is between time steps.
    resumes_exactly("er", &["strategy.name=er"], &["train:1:replay:11", "train:2:replay:0", "eval:2", "checkpoint:0"]);
}

#[test]
fn a_ckca_round_run_resumes_exactly_from_any_point() {
    let rounds = ["strategy.name=ckca", "stream.scenario=data-incremental", "stream.label_rate=1", "strategy.round_data=new", "optim.warmup_fraction=0.1"];
    resumes_exactly("ckca", &rounds, &["train:1:round:5", "train:2:round:0", "eval:1", "checkpoint:1"]);
}

#[test]
fn dietcl_resumes_exactly_from_checkpoints_inside_a_stage() {
    // Every 5 optimizer steps: after 5 and 10 of the 12 joint steps, and after 15 (3 into the
    // buffer stage), then after 5 again in the next time step.
    let points = [
        ("train:1:joint:7", Some("step-1-iter-5")),
        ("train:1:joint:11", Some("step-1-iter-10")),
        ("train:1:buffer:3", Some("step-1-iter-15")),
        ("eval:2", Some("step-2-iter-15")),
    ];
    resumes_exactly_from("dietcl-inside", &["budget.checkpoint_every=5"], &points);
}

#[test]
fn er_resumes_exactly_from_checkpoints_inside_a_stage() {
    let points = [("train:1:replay:6", Some("step-1-iter-5")), ("train:1:replay:13", Some("step-1-iter-10")), ("train:2:replay:0", None)];
    resumes_exactly_from("er-inside", &["strategy.name=er", "budget.checkpoint_every=5"], &points);
}
