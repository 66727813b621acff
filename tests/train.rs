//! `rekindle train` end to end on a tiny synthetic stream: the run directory, resume after
//! SIGKILL with identical results, and a NaN loss that stops the run without touching the last
//! good checkpoint, and a short run on Fashion-MNIST that has to learn.

mod common;

use common::{summary_without_wall, train_lines};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TINY: &str = "
seed: 3
model: {preset: vit-micro-4-28, overrides: {image_size: 16, channels: 3, depth: 2, dim: 32, heads: 2, decoder_dim: 32}}
data: {synthetic: {classes: 6, train_per_class: 40, test_per_class: 10, size: 16}, eval_batch: 32}
stream: {scenario: class-incremental, steps: 3, label_rate: 0.25}
budget: {steps: 40, effective_batch: 32, micro_batch: 16}
strategy: {name: dietcl}
optim: {lr: 1.0e-3, min_lr: 1.0e-5}
threads: 1
";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rekindle-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("run rekindle")
}

fn summary(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json")).unwrap()
}

fn config(d: &Path) -> String {
    let path = d.join("tiny.yaml");
    std::fs::write(&path, TINY).unwrap();
    path.to_str().unwrap().to_string()
}

/// Waits (at most 120 s) until the run in `run` writes a training line of time step `step`.
fn wait_until_training(run: &Path, step: u64) {
    let started = Instant::now();
    let training = || {
        std::fs::read_to_string(run.join("metrics.jsonl")).is_ok_and(|m| {
            m.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|v| v["type"] == "train" && v["step"] == step)
        })
    };
    while !training() {
        assert!(started.elapsed() < Duration::from_secs(120), "the run never reached time step {}", step + 1);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_run_writes_its_directory() {
    let d = dir("plain");
    let out = d.join("run");
    let o = run(&["train", &config(&d), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    for key in ["final_accuracy", "average_accuracy", "forgetting", "accuracy_per_step", "accuracy_matrix", "optimizer_steps", "flops", "wall_seconds"] {
        assert!(!s[key].is_null(), "summary.json lacks {key}");
    }
    assert_eq!(s["optimizer_steps"], 120);
    assert_eq!(s["accuracy_matrix"][2].as_array().unwrap().len(), 3);
    assert!(out.join("config.yaml").exists());
    let plot = image::open(out.join("accuracy.png")).expect("accuracy.png (CI installs fonts-dejavu-core)");
    // A(t) (800 wide), and the heat map of each class's accuracy beside it (420).
    assert_eq!((plot.width(), plot.height()), (1220, 500));
    let loss = image::open(out.join("loss.png")).expect("loss.png");
    assert_eq!((loss.width(), loss.height()), (1300, 520));
    for t in 0..3 {
        assert!(out.join(format!("checkpoints/step-{t}.safetensors")).exists());
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"type\":\"eval\"")).count(), 3);
    assert_eq!(metrics.lines().filter(|l| l.contains("\"type\":\"train\"")).count(), 120);

    // `rekindle eval` on the same synthetic test set (seed 3 → test seed 7) reproduces A(T−1):
    // class-incremental test sets are equal in size, so their mean accuracy is the overall one.
    let shard = d.join("test.shard");
    let o = run(&["data", "prepare", "--from", "synthetic", "--classes", "6", "--per-class", "10", "--size", "16", "--seed", "7", "--out", shard.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let logits = d.join("logits.safetensors");
    let ckpt = out.join("checkpoints/step-2.safetensors");
    let o = run(&["eval", "--checkpoint", ckpt.to_str().unwrap(), "--data", shard.to_str().unwrap(), "--save-logits", logits.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top1: f64 = text.split("top-1 ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((top1 - s["final_accuracy"].as_f64().unwrap()).abs() < 1e-4, "eval {top1} vs summary {}", s["final_accuracy"]);
    let bytes = std::fs::read(&logits).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("logits").unwrap().shape(), &[60, 6]);
    let o = run(&["report", out.to_str().unwrap(), "--plot", d.join("report.png").to_str().unwrap()]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("dietcl"));

    let png = d.join("recon.png");
    let o = run(&["reconstruct", "--checkpoint", ckpt.to_str().unwrap(), "--data", shard.to_str().unwrap(), "--out", png.to_str().unwrap(), "--n", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 18 + 2, 3 * 18 + 2), "3 panels of 16 px with 2 px gaps, 3 rows");
    let bytes = std::fs::read(png.with_extension("safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("mask").unwrap().shape(), &[3, 16]);
    assert_eq!(st.tensor("pred").unwrap().shape(), &[3, 16, 48]);
}

#[test]
fn a_killed_run_resumes_to_the_same_summary() {
    let d = dir("resume");
    let cfg = config(&d);
    let (whole, killed) = (d.join("whole"), d.join("killed"));
    let o = run(&["train", &cfg, "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Kill during time step 3 (index 2), after the head has grown twice: the resumed run starts
    // with a 4-class head, the whole run started with 2.
    let mut child = command(&["train", &cfg, "--out", killed.to_str().unwrap()]).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_until_training(&killed, 2);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("summary.json").exists(), "killed before it finished");
    assert!(!killed.join("checkpoints/step-2.safetensors").exists(), "killed during time step 3");

    let o = run(&["train", "--resume", killed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The whole summary (FLOPs and every curve point included), wall time aside.
    assert_eq!(summary_without_wall(&whole), summary_without_wall(&killed), "the summary differs after resume");
    // Every training line, throughput aside.
    let (a, b) = (train_lines(&whole), train_lines(&killed));
    assert_eq!(b.len(), 120, "no duplicate lines from the interrupted step");
    assert!(a == b, "training lines differ after resume");
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let d = dir("nan");
    let out = d.join("run");
    // Stage 2 (buffer fine-tuning) first runs at time step 1; an absurd LR there blows it up.
    let o = run(&["train", &config(&d), "--out", out.to_str().unwrap(), "--set", "optim.stage2_lr_scale=1e12"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("non-finite loss") && err.contains("time step 1, stage `buffer`, iteration"), "{err}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_steps"], 1, "the state still points at the last good step");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(record["status"] == "failed" && record["error"].as_str().is_some_and(|e| e.contains("non-finite loss")), "{record}");
    assert!(!out.join("checkpoints/step-1.safetensors").exists());
    let ckpt = out.join("checkpoints/step-0.safetensors");
    let o = run(&["bench", "step", "--preset", "vit-micro-4-28", "--set", "image_size=16", "--set", "channels=3", "--set", "depth=2", "--set", "dim=32", "--set", "heads=2", "--set", "decoder_dim=32", "--set", "classes=2", "--init", ckpt.to_str().unwrap(), "--batch", "2", "--iters", "1", "--warmup", "0"]);
    assert!(o.status.success(), "the last good checkpoint loads: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn speedup_reports_each_run_against_scratch() {
    let d = dir("speedup");
    let path = d.join("rounds.yaml");
    std::fs::write(
        &path,
        TINY.replace("class-incremental, steps: 3, label_rate: 0.25", "data-incremental, steps: 2, label_rate: 1.0")
            .replace("budget: {steps: 40, effective_batch: 32, micro_batch: 16}", "budget: {steps: 20, effective_batch: 32, micro_batch: 16, eval_every: 5}")
            .replace("strategy: {name: dietcl}", "strategy: {name: scratch}\naugment: {enabled: false}"),
    )
    .unwrap();
    let train = |name: &str, sets: &[&str]| {
        let out = d.join(name);
        let mut args = vec!["train", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
        for s in sets {
            args.extend(["--set", s]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let scratch = train("scratch", &[]);
    let warm = train("warm", &["strategy.name=warmstart"]);
    let half = train("half", &["strategy.name=continuous", "continuous.schedule_fraction=0.5", "continuous.drop_easy=0.2"]);
    let full = train("full", &["strategy.name=continuous", "continuous.drop_easy=0.2"]);
    let metrics = std::fs::read_to_string(half.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"type\":\"selection\""), "the selection lever logs what it kept");
    assert_eq!(metrics.lines().filter(|l| l.contains("\"type\":\"curve\"")).count(), 4 + 2, "every 5 steps: 20 then 10");
    let plot = d.join("speedup.png");
    let o = run(&["speedup", "--scratch", scratch.to_str().unwrap(), "--runs", warm.to_str().unwrap(), half.to_str().unwrap(), full.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The target is scratch's own final accuracy, and S its 20 steps.
    let a_star = summary(&scratch)["final_accuracy"].as_f64().unwrap();
    assert!(text.contains(&format!("A* = {a_star:.4}")) && text.contains("S = 20 steps"), "{text}");
    assert!(text.contains("schedule search (continuous): f=0.5"), "the two continuous runs form one search:\n{text}");
    assert_eq!(image::open(&plot).map(|p| (p.width(), p.height())).ok(), Some((1300, 520)));
    // A missing run names the directory.
    let o = run(&["speedup", "--scratch", scratch.to_str().unwrap(), "--runs", d.join("nope").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nope"));
}

/// `pretrain` then `train` from its checkpoint: the hand-off works end to end, writes the
/// reconstruction picture, and a stream that would see the pre-training images is refused.
#[test]
fn pretrain_then_train_from_its_checkpoint_and_refuse_an_overlapping_stream() {
    let d = dir("pretrain");
    let shard = d.join("train.shard");
    let prepared = run(&["data", "prepare", "--from", "synthetic", "--classes", "6", "--per-class", "40", "--size", "16", "--out", shard.to_str().unwrap()]);
    assert!(prepared.status.success(), "{}", String::from_utf8_lossy(&prepared.stderr));
    let config = d.join("config.yaml");
    let text = TINY.replace("data: {synthetic:", &format!("data: {{train: {}, holdout: 0.5, synthetic:", shard.display()))
        + "pretrain: {steps: 6, effective_batch: 32, micro_batch: 16, checkpoint_every: 3}\n";
    std::fs::write(&config, text).unwrap();
    let pre = d.join("pre");
    let out = run(&["pretrain", config.to_str().unwrap(), "--out", pre.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mae = pre.join("mae.safetensors");
    assert!(mae.exists() && pre.join("reconstruction.png").exists() && pre.join("summary.json").exists());
    let init = format!("model.init={}", mae.display());
    let fine = run(&["train", config.to_str().unwrap(), "--set", &init, "--set", "budget.steps=4", "--out", d.join("stream").to_str().unwrap()]);
    assert!(fine.status.success(), "{}", String::from_utf8_lossy(&fine.stderr));
    let overlap = run(&["train", config.to_str().unwrap(), "--set", &init, "--set", "data.holdout=0", "--out", d.join("bad").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&overlap.stderr);
    assert!(!overlap.status.success() && err.contains("data.holdout") && err.contains("pre-trained"), "{err}");
    // The same shard under another spelling of its path is the same shard.
    let respelled = format!("data.train={}", d.join(".").join("train.shard").display());
    let overlap = run(&["train", config.to_str().unwrap(), "--set", &init, "--set", "data.holdout=0", "--set", &respelled, "--out", d.join("bad2").to_str().unwrap()]);
    assert!(!overlap.status.success() && String::from_utf8_lossy(&overlap.stderr).contains("data.holdout"), "{}", String::from_utf8_lossy(&overlap.stderr));
    let _ = std::fs::remove_dir_all(&d);
}

/// The quickstart's shipped start (configs/quickstart-mae.safetensors, made by `rekindle
/// pretrain configs/quickstart.yaml`) fits its model and loads every encoder and decoder tensor.
#[test]
fn the_quickstart_starts_from_its_shipped_pretrained_checkpoint() {
    use rekindle_model::{read_metadata, read_tensor, Part};
    let text = std::fs::read_to_string("configs/quickstart.yaml").unwrap();
    let config = rekindle_coordinator::TrainConfig::from_yaml("quickstart", &text, &[]).unwrap();
    let init = config.model.init.clone().expect("the quickstart names its pretrained start");
    let meta = read_metadata(&init).unwrap();
    assert_eq!(meta.get(rekindle_coordinator::META_PRETRAIN_SOURCE).map(String::as_str), Some("synthetic"));
    assert_eq!(meta.get(rekindle_coordinator::META_PRETRAIN_HOLDOUT), Some(&config.data.holdout.to_string()));
    let mut model = config.model_config().unwrap();
    model.classes = 2;
    let mut be = rekindle_tensor::CpuBackend::new(1);
    let vit = rekindle_coordinator::initial_model(&mut be, &config, &model, 0).unwrap();
    for e in vit.table.entries.iter().filter(|e| e.part != Part::Head) {
        let want = read_tensor(&init, &e.name).unwrap();
        let got = vit.download_tensor(&mut be, &e.name, false);
        assert!(got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", e.name);
    }
}

/// Ctrl-C (SIGINT) stops a run after the optimizer step in progress with exit status 130 and a
/// message naming the directory to resume; the resumed run ends as an uninterrupted one.
#[test]
fn ctrl_c_stops_cleanly_and_the_run_resumes_to_the_same_summary() {
    let d = dir("sigint");
    let cfg = config(&d);
    let (whole, stopped) = (d.join("whole"), d.join("stopped"));
    let o = run(&["train", &cfg, "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let child = command(&["train", &cfg, "--out", stopped.to_str().unwrap()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Once time step 2 trains, time step 1's checkpoint is on disk.
    wait_until_training(&stopped, 1);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains(&format!("rekindle train --resume {}", stopped.display())) && err.contains("interrupted at time step"), "{err}");
    assert!(!stopped.join("summary.json").exists());
    let o = run(&["train", "--resume", stopped.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary_without_wall(&whole), summary_without_wall(&stopped));
}

#[test]
fn a_short_run_on_fashion_mnist_learns_far_above_chance() {
    const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
    if !Path::new(FASHION_MNIST).exists() {
        assert!(std::env::var_os("REKINDLE_REQUIRE_DATA").is_none(), "{FASHION_MNIST} is missing (apt-get install dataset-fashion-mnist)");
        println!("skipped: {FASHION_MNIST} is missing (the Debian package `dataset-fashion-mnist` is not installed)");
        return;
    }
    let d = dir("learns");
    for split in ["train", "test"] {
        let shard = d.join(format!("{split}.shard"));
        let o = run(&["data", "prepare", "--from", "idx", "--input", FASHION_MNIST, "--split", split, "--out", shard.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Joint training over 2 class-incremental steps of 5 classes, 80 optimizer steps of 64 from
    // a random init: about 5 k labelled images seen, once each.
    let yaml = format!(
        "seed: 0
model: {{preset: vit-micro-4-28}}
data: {{train: {0}/train.shard, test: {0}/test.shard, eval_batch: 500}}
stream: {{scenario: class-incremental, steps: 2, label_rate: 0.05}}
budget: {{steps: 40, effective_batch: 64, micro_batch: 64}}
strategy: {{name: joint}}
augment: {{enabled: false}}
optim: {{lr: 4.0e-3, min_lr: 1.0e-5, layer_decay: 1.0}}
threads: 1
",
        d.display()
    );
    let config = d.join("learns.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = d.join("run");
    let o = run(&["train", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    // Chance over the 10 classes is 0.1 (0.2 over the 5 of the first step).
    let (first, last) = (s["accuracy_matrix"][0][0].as_f64().unwrap(), s["final_accuracy"].as_f64().unwrap());
    assert!(first > 0.4, "after the first step the model knows its 5 classes at {first}");
    assert!(last > 0.35, "A(T-1) {last} is not far above chance (0.1)");
    let _ = std::fs::remove_dir_all(&d);
}

/// The quickstart's embedded stream, cut short, with `extra` overrides, into `out`.
fn short_quickstart(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "configs/quickstart.yaml", "--set", "stream.steps=2", "--out", out.to_str().unwrap()];
    args.extend(extra);
    run(&args)
}

#[test]
fn a_directory_that_holds_a_run_is_refused_unless_overwritten() {
    // The reproduction: one run finishes in `x`, a second run with other settings is pointed at
    // the same `x`. It used to reuse the directory and a later --resume printed the first run's
    // results under the second run's config.
    let d = dir("one-run");
    let x = d.join("x");
    let first = short_quickstart(&x, &["--set", "budget.steps=2", "--set", "seed=1"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let kept = std::fs::read_to_string(x.join("summary.json")).unwrap();
    let second = short_quickstart(&x, &["--set", "budget.steps=3"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(err.contains("already holds a run") && err.contains("--resume") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(x.join("summary.json")).unwrap(), kept, "the refused run touched nothing");
    // --overwrite: the second run's own results, and nothing of the first left.
    let replaced = short_quickstart(&x, &["--set", "budget.steps=3", "--overwrite"]);
    assert!(replaced.status.success(), "{}", String::from_utf8_lossy(&replaced.stderr));
    assert_eq!(summary(&x)["optimizer_steps"], 6, "2 time steps of 3 optimizer steps: the second run's");
    assert!(std::fs::read_to_string(x.join("config.yaml")).unwrap().contains("seed: 0"), "the second run's config");
    // Every file that names a run names the second one.
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(x.join("run.json")).unwrap()).unwrap();
    let id = record["id"].as_str().unwrap().to_string();
    assert_eq!(summary(&x)["run_id"], id.as_str());
    assert!(std::fs::read_to_string(x.join("config.yaml")).unwrap().starts_with(&format!("# run {id}")));
    for t in 0..2 {
        let meta = rekindle_model::read_metadata(&x.join(format!("checkpoints/step-{t}.safetensors"))).unwrap();
        assert_eq!(meta["rekindle.run_id"], id, "step {t}'s checkpoint is the second run's");
    }
    // A directory of something else is never deleted.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let o = short_quickstart(&other, &["--overwrite"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("holds no run"));
    assert!(other.join("notes.txt").exists());
}

#[test]
fn resuming_a_directory_without_a_run_is_refused() {
    let d = dir("resume-nothing");
    let o = run(&["train", "configs/quickstart.yaml", "--resume", d.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no run there") && err.contains("--out"), "{err}");
    assert!(std::fs::read_dir(&d).unwrap().next().is_none(), "nothing was trained or written");
}

#[test]
fn sigterm_and_sigusr1_stop_after_the_step_with_their_status_and_the_run_resumes_to_the_same_result() {
    let d = dir("signals");
    let cfg = config(&d);
    let whole = d.join("whole");
    assert!(run(&["train", &cfg, "--out", whole.to_str().unwrap()]).status.success());
    for (signal, status) in [("-TERM", 143), ("-USR1", 138)] {
        let out = d.join(signal.trim_start_matches('-'));
        let child = command(&["train", &cfg, "--out", out.to_str().unwrap()]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // Into time step 1 (40 optimizer steps per time step).
        let started = Instant::now();
        while !std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|m| m.lines().filter(|l| l.contains("\"type\":\"train\"")).count() > 45) {
            assert!(started.elapsed() < Duration::from_secs(120), "the run never reached time step 1");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(status), "{err}");
        let name = format!("stopped by SIG{}", signal.trim_start_matches('-'));
        assert!(err.contains(&name) && err.contains(&format!("rekindle train --resume {}", out.display())), "{err}");
        assert!(!out.join("summary.json").exists(), "stopped before the end");
        // The stop wrote a checkpoint after the step it finished, inside time step 1.
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
        assert!(state["completed_steps"] == 1 && state["inside"]["step_iteration"].as_u64().is_some_and(|k| k > 5), "{state}");
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(record["status"], "stopped");
        let resumed = run(&["train", "--resume", out.to_str().unwrap()]);
        assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
        assert_eq!(summary_without_wall(&out), summary_without_wall(&whole), "{signal}: the resumed run ends as the uninterrupted one");
        assert!(train_lines(&out) == train_lines(&whole), "{signal}: the resumed run's training lines are the uninterrupted one's");
    }
}

#[test]
fn eval_refuses_a_checkpoint_without_a_head() {
    // An MAE pre-training checkpoint has an encoder and a decoder but no head: eval used to score
    // a fresh random head (chance accuracy) without a word.
    let d = dir("eval-headless");
    let pre = d.join("pre");
    let o = run(&["pretrain", "configs/quickstart.yaml", "--set", "pretrain.steps=1", "--out", pre.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let shard = d.join("test.shard");
    let o = run(&["data", "prepare", "--from", "synthetic", "--classes", "10", "--per-class", "2", "--size", "32", "--split", "test", "--out", shard.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mae = pre.join("mae.safetensors");
    let o = run(&["eval", "--checkpoint", mae.to_str().unwrap(), "--data", shard.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("has no classification head") && err.contains("model.init="), "{err}");
}
