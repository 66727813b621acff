//! The loggers beside `metrics.jsonl`, read by the tools their users read them with:
//! TensorBoard's own `EventAccumulator` (the `tensorboard` package) and Python's `csv` module.
//! Each must hold exactly the lines of `metrics.jsonl` (every scalar tag, at its step, with its
//! value), and a run killed and resumed must hold every step once.
//!
//! The `tensorboard` package lives in a venv: `REKINDLE_TENSORBOARD_PYTHON`, by default
//! `/opt/rekindle-tensorboard/bin/python` (`.ci/run` installs it). Where it is missing the
//! TensorBoard tests say so and skip; with `REKINDLE_REQUIRE_TENSORBOARD=1` (CI sets it) that is
//! a failure instead. The CSV test needs only `python3`.

mod common;

use common::{config, dir, rekindle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Three time steps of 16 optimizer steps (DietCL: 12 joint, then 4 buffer), evaluated every 5
/// steps, with a resumable checkpoint every 2.
const TINY: &str = "
seed: 9
model: {preset: vit-micro-4-28, overrides: {image_size: 16, channels: 3, depth: 2, dim: 32, heads: 2, decoder_dim: 32}}
data: {synthetic: {classes: 6, train_per_class: 30, test_per_class: 10, size: 16}, eval_batch: 32, holdout: 0.3}
stream: {scenario: class-incremental, steps: 3, label_rate: 0.3}
budget: {steps: 16, effective_batch: 32, micro_batch: 16, eval_every: 5, checkpoint_every: 2}
strategy: {name: dietcl}
optim: {lr: 1.0e-3, min_lr: 1.0e-5}
pretrain: {steps: 10, effective_batch: 32, micro_batch: 16, checkpoint_every: 4}
logging: {image_every: 2}
threads: 1
";

/// Fields that place a line; they are never a TensorBoard scalar.
const INDEX: [&str; 4] = ["step", "stage", "iteration", "optimizer_step"];

fn succeeded(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
}

/// `command` (train or pretrain) of the tiny config into `d/NAME`, killed at `fault` and resumed.
fn killed_and_resumed(d: &Path, command: &str, name: &str, fault: &str) -> PathBuf {
    let cfg = config(d, TINY);
    let run = d.join(name);
    let o = rekindle(&[command, &cfg, "--out", run.to_str().unwrap()], Some(fault));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(&format!("aborting at {fault}")), "{name}: the fault {fault} never fired");
    succeeded(&rekindle(&[command, "--resume", run.to_str().unwrap()], None), &format!("{name} resumed"));
    run
}

/// The same, uninterrupted.
fn whole(d: &Path, command: &str, name: &str) -> PathBuf {
    let cfg = config(d, TINY);
    let run = d.join(name);
    succeeded(&rekindle(&[command, &cfg, "--out", run.to_str().unwrap()], None), name);
    run
}

fn lines(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A line's leaves but its type, as the loggers name them: `row_2` for `row[2]`, `per_class_7`
/// for `per_class["7"]`.
fn flat(line: &Value) -> Vec<(String, Value)> {
    fn walk(name: String, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| walk(format!("{name}_{i}"), x, out)),
            Value::Object(fields) => fields.iter().for_each(|(k, x)| walk(format!("{name}_{k}"), x, out)),
            leaf => out.push((name, leaf.clone())),
        }
    }
    let mut out = Vec::new();
    for (k, v) in line.as_object().unwrap().iter().filter(|(k, _)| *k != "type") {
        walk(k.clone(), v, &mut out);
    }
    out
}

/// Tag → (step, value as a 32-bit float) of every number of `lines`, as TensorBoard must show
/// them: at the line's `optimizer_step`, or else its time step.
fn expected_scalars(lines: &[Value]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l["type"] != "image") {
        let Some(step) = line.get("optimizer_step").or_else(|| line.get("step")).and_then(Value::as_i64) else { continue };
        for (name, v) in flat(line).into_iter().filter(|(n, _)| !INDEX.contains(&n.as_str())) {
            if let Some(x) = v.as_f64() {
                out.entry(format!("{}/{name}", line["type"].as_str().unwrap())).or_default().push((step, x as f32 as f64));
            }
        }
    }
    out
}

/// The venv's python with the `tensorboard` package, or `None` (after saying why) where it is
/// missing and not required.
fn tensorboard_python() -> Option<PathBuf> {
    let python = std::env::var_os("REKINDLE_TENSORBOARD_PYTHON").map_or_else(|| PathBuf::from("/opt/rekindle-tensorboard/bin/python"), PathBuf::from);
    let found = Command::new(&python).args(["-c", "import tensorboard"]).output();
    let why = match found {
        Ok(o) if o.status.success() => return Some(python),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    let why = format!("no tensorboard package for {} ({why}); install it with `python3 -m venv /opt/rekindle-tensorboard && /opt/rekindle-tensorboard/bin/pip install tensorboard`, or set REKINDLE_TENSORBOARD_PYTHON", python.display());
    if std::env::var("REKINDLE_REQUIRE_TENSORBOARD").is_ok_and(|v| v == "1") {
        panic!("REKINDLE_REQUIRE_TENSORBOARD=1 but {why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// An image event: its step, width, height and PNG bytes.
type ImageEvent = (i64, u64, u64, Vec<u8>);

/// What TensorBoard reads in a run's `tensorboard/`: how many events files, every scalar tag's
/// (step, value) in order, and every image tag's events.
struct Board {
    files: usize,
    scalars: BTreeMap<String, Vec<(i64, f64)>>,
    images: BTreeMap<String, Vec<ImageEvent>>,
}

const READ_EVENTS: &str = r#"
import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
d = sys.argv[1]
acc = EventAccumulator(d, size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
print(json.dumps({
    "files": sum("tfevents" in f for f in os.listdir(d)),
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "images": {t: [[e.step, e.width, e.height, e.encoded_image_string.hex()] for e in acc.Images(t)] for t in tags["images"]},
}))
"#;

fn board(python: &Path, run: &Path) -> Board {
    let o = Command::new(python).args(["-c", READ_EVENTS]).arg(run.join("tensorboard")).output().unwrap();
    succeeded(&o, "reading the events with tensorboard");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pairs = |xs: &Value| xs.as_array().unwrap().iter().map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap())).collect();
    let scalars = v["scalars"].as_object().unwrap().iter().map(|(t, xs)| (t.clone(), pairs(xs))).collect();
    let decode = |hex: &str| -> Vec<u8> { (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect() };
    let images = v["images"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, xs)| (t.clone(), xs.as_array().unwrap().iter().map(|e| (e[0].as_i64().unwrap(), e[1].as_u64().unwrap(), e[2].as_u64().unwrap(), decode(e[3].as_str().unwrap()))).collect()))
        .collect();
    Board { files: v["files"].as_u64().unwrap() as usize, scalars, images }
}

/// `got` and `want` hold the same tags with the same points; on a difference, says the first.
fn same_scalars(got: &BTreeMap<String, Vec<(i64, f64)>>, want: &BTreeMap<String, Vec<(i64, f64)>>, what: &str) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: the scalar tags");
    for (tag, points) in got {
        assert!(points == &want[tag], "{what}: {tag} is {points:?} in TensorBoard, {:?} in metrics.jsonl", want[tag]);
    }
}

/// Every tag's steps rise strictly: no step is shown twice.
fn no_step_twice(b: &Board, what: &str) {
    for (tag, points) in &b.scalars {
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "{what}: {tag} repeats or reorders a step: {:?}", points.iter().map(|p| p.0).collect::<Vec<_>>());
    }
}

#[test]
fn tensorboard_shows_every_line_of_metrics_jsonl_once_after_a_kill_and_resume() {
    let Some(python) = tensorboard_python() else { return };
    let d = dir("loggers", "tensorboard-train");
    let whole = whole(&d, "train", "whole");
    // Killed before the 4th joint step of time step 1 (state: the checkpoint after its 2nd), so
    // the events of steps 1:2 were written, and are written again by the resume.
    let split = killed_and_resumed(&d, "train", "split", "train:1:joint:3");
    let (w, s) = (board(&python, &whole), board(&python, &split));
    assert_eq!((w.files, s.files), (1, 1), "one events file per run");
    for tag in ["train/loss", "train/loss_mae", "train/loss_current", "train/loss_buffer", "train/lr", "train/grad_norm", "train/flops", "train/images_per_sec", "eval/accuracy", "eval/forgetting", "eval/row_0", "eval/row_2", "curve/accuracy"] {
        assert!(w.scalars.contains_key(tag), "no scalar {tag}: {:?}", w.scalars.keys());
    }
    assert_eq!(w.scalars["train/loss"].iter().map(|p| p.0).collect::<Vec<_>>(), (1..=48).collect::<Vec<_>>(), "train lines at optimizer steps 1..48");
    assert_eq!(w.scalars["eval/accuracy"].iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2], "evaluations at time steps");
    for (b, run, what) in [(&w, &whole, "whole"), (&s, &split, "killed and resumed")] {
        same_scalars(&b.scalars, &expected_scalars(&lines(run)), what);
        no_step_twice(b, what);
    }
    // The resumed run shows the steps of the uninterrupted one, and (throughput aside) its values.
    let steps = |b: &Board| b.scalars.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|p| p.0).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>();
    assert_eq!(steps(&s), steps(&w));
    assert_eq!(s.scalars["train/loss"], w.scalars["train/loss"]);
    assert_eq!(s.scalars["eval/accuracy"], w.scalars["eval/accuracy"]);
}

#[test]
fn tensorboard_shows_pretraining_losses_and_reconstructions_once_after_a_kill_and_resume() {
    let Some(python) = tensorboard_python() else { return };
    let d = dir("loggers", "tensorboard-pretrain");
    // Killed while writing the checkpoint after step 8: the resume starts from step 4's and
    // draws the pictures of steps 6 and 8 again.
    let run = killed_and_resumed(&d, "pretrain", "split", "checkpoint:pretrain-8");
    let b = board(&python, &run);
    assert_eq!(b.files, 1);
    same_scalars(&b.scalars, &expected_scalars(&lines(&run)), "pretrain");
    assert!(["pretrain/loss_mae", "pretrain/lr", "pretrain/grad_norm", "pretrain/flops", "pretrain/images_per_sec"].iter().all(|t| b.scalars.contains_key(*t)), "{:?}", b.scalars.keys());
    assert_eq!(b.scalars["pretrain/loss_mae"].iter().map(|p| p.0).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    no_step_twice(&b, "pretrain");
    let pictures = &b.images["pretrain/reconstruction"];
    assert_eq!(pictures.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4, 6, 8, 10], "a picture every 2 steps, once each");
    for (step, width, height, png) in pictures {
        let file = std::fs::read(run.join(format!("reconstructions/pretrain-{step}.png"))).unwrap();
        assert!(*png == file, "the picture of step {step} is its PNG file");
        let img = image::load_from_memory(png).unwrap();
        assert_eq!((img.width() as u64, img.height() as u64), (*width, *height));
        // 8 rows of original | masked | reconstruction, 16-pixel images with 2-pixel gaps.
        assert_eq!((*width, *height), (3 * 18 + 2, 8 * 18 + 2));
    }
}

const READ_CSV: &str = r#"
import csv, json, os, sys
d = sys.argv[1]
tables = {}
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), newline="") as f:
        reader = csv.DictReader(f)
        tables[name[:-4]] = {"columns": reader.fieldnames, "rows": list(reader)}
print(json.dumps(tables))
"#;

#[test]
fn csv_tables_hold_the_lines_of_metrics_jsonl_once_after_a_kill_and_resume() {
    let d = dir("loggers", "csv");
    let run = killed_and_resumed(&d, "train", "split", "train:1:joint:3");
    let o = Command::new("python3").args(["-c", READ_CSV]).arg(run.join("csv")).output().expect("python3");
    succeeded(&o, "reading the tables with python's csv module");
    let tables: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lines = lines(&run);
    let mut kinds: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).filter(|k| *k != "run").collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(tables.as_object().unwrap().keys().collect::<Vec<_>>(), kinds, "a table per kind of line");
    for kind in kinds {
        let of_kind: Vec<&Value> = lines.iter().filter(|l| l["type"] == kind).collect();
        let rows = tables[kind]["rows"].as_array().unwrap();
        let columns: Vec<&str> = tables[kind]["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(rows.len(), of_kind.len(), "{kind}: a row per line");
        let mut names: Vec<String> = of_kind.iter().flat_map(|l| flat(l).into_iter().map(|(n, _)| n)).collect();
        names.sort();
        names.dedup();
        let mut sorted = columns.clone();
        sorted.sort();
        assert_eq!(sorted, names, "{kind}: a column per field");
        assert_eq!(columns[0], if kind == "pretrain" { "iteration" } else { "step" }, "{kind}: what places a row comes first");
        for (i, (row, line)) in rows.iter().zip(&of_kind).enumerate() {
            let leaves: BTreeMap<String, Value> = flat(line).into_iter().collect();
            for c in &columns {
                let cell = row[c].as_str().unwrap();
                let same = match leaves.get(*c).unwrap_or(&Value::Null) {
                    Value::Null => cell.is_empty(),
                    Value::Number(n) => cell.parse::<f64>().ok() == n.as_f64(),
                    Value::String(s) => cell == s,
                    other => serde_json::from_str::<Value>(cell).is_ok_and(|v| &v == other),
                };
                assert!(same, "{kind} row {i}, column {c}: {cell:?} in the CSV, {:?} in metrics.jsonl", leaves.get(*c));
            }
        }
    }
    // Every optimizer step once: the 48 of the run, in order.
    let steps: Vec<u64> = tables["train"]["rows"].as_array().unwrap().iter().map(|r| r["optimizer_step"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(steps, (1..=48).collect::<Vec<_>>());
}

#[test]
fn loggers_turned_off_write_nothing_and_a_resume_removes_theirs() {
    let d = dir("loggers", "off");
    let cfg = config(&d, TINY);
    let run = d.join("run");
    let o = rekindle(&["train", &cfg, "--out", run.to_str().unwrap(), "--set", "logging.tensorboard=false"], Some("train:1:joint:3"));
    assert!(!o.status.success());
    assert!(!run.join("tensorboard").exists() && run.join("csv/train.csv").exists());
    // Loggers change no result: a resume may turn them on or off; one turned off leaves no
    // files that would disagree with metrics.jsonl.
    succeeded(&rekindle(&["train", "--resume", run.to_str().unwrap(), "--set", "logging.csv=false", "--set", "logging.tensorboard=true"], None), "resumed");
    assert!(!run.join("csv").exists(), "the resume turned the CSV tables off");
    assert_eq!(std::fs::read_dir(run.join("tensorboard")).unwrap().count(), 1);
    assert!(run.join("summary.json").exists());
}
