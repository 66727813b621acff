//! The `rekindle` binary end to end: `info`, `bench step`, and clear errors with a non-zero exit.

use std::process::{Command, Output};

fn rekindle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rekindle")).args(args).output().expect("run rekindle")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn info_reports_vit_base_counts() {
    let out = rekindle(&["info", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let presets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let base = presets.as_array().unwrap().iter().find(|p| p["preset"] == "vit-base-16").unwrap();
    assert_eq!(base["classifier_params"], 86_416_360);
    let gflops = base["classify_gflops"].as_f64().unwrap();
    assert!((gflops - 35.1).abs() < 0.2, "{gflops}");
    assert!(base["mae_gflops"].as_f64().unwrap() < gflops, "MAE encodes a quarter of the patches");
    let table = rekindle(&["info"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("86,416,360"));
}

#[test]
fn bench_step_prints_json_for_every_task() {
    for task in ["classify", "mae", "dietcl"] {
        let out = rekindle(&["bench", "step", "--preset", "vit-micro-4-28", "--batch", "4", "--task", task, "--iters", "1", "--warmup", "0", "--threads", "1", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r["images_per_sec"].as_f64().unwrap() > 0.0 && r["gflops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(r["final_loss"].as_f64().unwrap().is_finite(), "{task}: loss {}", r["final_loss"]);
    }
}

#[test]
fn bench_kernels_times_every_op_against_measured_ceilings() {
    let out = rekindle(&["bench", "kernels", "--preset", "vit-micro-4-28", "--batch", "2", "--iters", "1", "--threads", "1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["ceilings"]["copy_gbytes_per_sec"].as_f64().unwrap() > 0.0 && r["ceilings"]["gemm_tflops"].as_f64().unwrap() > 0.0);
    let kernels = r["kernels"].as_array().unwrap();
    // Every compute op of the Backend trait, in the bench's order (attention twice: over all
    // tokens, and over the MAE encoder's kept ones; copy and fill are the copy ceiling's and
    // memory's own), each with a time, a rate and a share of its ceiling.
    let every_op = [
        "gemm qkv forward",
        "gemm fc1 weight grad",
        "attention forward",
        "attention backward",
        "attention forward",
        "attention backward",
        "layernorm forward",
        "layernorm backward",
        "gelu forward",
        "gelu backward",
        "bias gradient",
        "mean pool forward",
        "mean pool backward",
        "axpy",
        "add position rows",
        "gather kept patches",
        "scatter kept patches",
        "patchify",
        "unpatchify",
        "mae loss",
        "cross-entropy",
        "adamw",
        "sgd",
        "gradient norm",
    ];
    let names: Vec<&str> = kernels.iter().map(|k| k["kernel"].as_str().unwrap()).collect();
    assert_eq!(names, every_op);
    for k in kernels {
        let rate = k["tflops"].as_f64().or(k["gbytes_per_sec"].as_f64()).unwrap_or(0.0);
        assert!(k["seconds"].as_f64().unwrap() > 0.0 && rate > 0.0 && k["fraction_of_ceiling"].as_f64().unwrap() > 0.0, "{k}");
        assert!(!k["shape"].as_str().unwrap().is_empty(), "{k}");
    }
    let out = rekindle(&["bench", "kernels", "--device", "cuda:7"]);
    assert!(!out.status.success() && (stderr(&out).contains("cuda") || stderr(&out).contains("CUDA")), "{}", stderr(&out));
}

fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = rekindle(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} should fail");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn bad_input_gives_a_clear_error_and_nonzero_exit() {
    let step = ["bench", "step", "--preset", "vit-micro-4-28", "--batch", "2", "--iters", "1"];
    fn with<'a>(step: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        step.iter().chain(extra).copied().collect()
    }
    assert_fails(&with(&step, &["--set", "image_size=30"]), &["`patch`", "image size 30 is not divisible by patch 4"]);
    assert_fails(&with(&step, &["--set", "heads=3"]), &["`heads`", "3 heads do not divide width 64"]);
    assert_fails(&with(&step, &["--set", "dpeth=2"]), &["`dpeth`", "unknown model key"]);
    assert_fails(&["bench", "step", "--preset", "vit-large"], &["unknown preset 'vit-large'"]);
    assert_fails(&with(&step, &["--init", "/nonexistent/ckpt.safetensors"]), &["/nonexistent/ckpt.safetensors"]);

    let dir = std::env::temp_dir().join(format!("rekindle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("misshaped.safetensors");
    let data = vec![0u8; 4 * 32];
    let view = safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, vec![1, 1, 32], &data).unwrap();
    safetensors::serialize_to_file(vec![("cls_token", view)], None, &bad).unwrap();
    assert_fails(&with(&step, &["--init", bad.to_str().unwrap()]), &["`cls_token` has shape [1, 1, 32], the model needs [1, 1, 64]"]);
    let missing = dir.join("missing.safetensors");
    let data = vec![0u8; 4 * 64];
    let view = safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, vec![1, 1, 64], &data).unwrap();
    safetensors::serialize_to_file(vec![("cls_token", view)], None, &missing).unwrap();
    assert_fails(&with(&step, &["--init", missing.to_str().unwrap()]), &["`patch_embed.proj.weight` is missing", "[64, 1, 4, 4]"]);
}

/// Every config shipped in configs/ parses and passes validation (its data files need not exist).
#[test]
fn every_shipped_config_is_valid() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut configs = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &mut configs);
    assert!(configs.len() >= 8, "found {configs:?}");
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = rekindle_coordinator::TrainConfig::from_yaml(&path.display().to_string(), &text, &[]) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// `rekindle … | head` that closes the pipe early ends quietly: no panic, no stack trace.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    for args in [&["info"][..], &["info", "--json"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rekindle")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(out.status.success() || out.status.signal() == Some(libc::SIGPIPE), "{args:?}: {:?}", out.status);
        }
    }
}

/// `rekindle report` over several seeds of one setting: one row with mean ± std across seeds,
/// named by the key that differs between settings, and a plot.
#[test]
fn report_aggregates_the_seeds_of_each_setting() {
    let d = std::env::temp_dir().join(format!("rekindle-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let write_run = |name: &str, seed: u64, strategy: &str, finals: [f64; 2]| {
        let run = d.join(name);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("config.yaml"), format!("seed: {seed}\nthreads: 0\nstrategy:\n  name: {strategy}\n  mae_weight: 50.0\n")).unwrap();
        let summary = serde_json::json!({
            "strategy": strategy, "scenario": "class-incremental", "final_accuracy": finals[1], "average_accuracy": (finals[0] + finals[1]) / 2.0,
            "forgetting": 0.1, "accuracy_per_step": finals, "accuracy_matrix": [[finals[0]], [finals[0], finals[1]]],
            "optimizer_steps": 10, "flops": 1.0e9, "wall_seconds": 2.0 + seed as f64,
        });
        std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
        run.display().to_string()
    };
    let runs = [
        write_run("er-0", 0, "er", [0.8, 0.5]),
        write_run("er-1", 1, "er", [0.8, 0.6]),
        write_run("er-2", 2, "er", [0.8, 0.7]),
        write_run("dietcl-0", 0, "dietcl", [0.9, 0.4]),
    ];
    let (md, png) = (d.join("table.md"), d.join("plot.png"));
    let mut args = vec!["report"];
    args.extend(runs.iter().map(String::as_str));
    args.extend(["--plot", png.to_str().unwrap(), "--markdown", md.to_str().unwrap()]);
    let out = rekindle(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = std::fs::read_to_string(&md).unwrap();
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "two settings: {table}");
    // ER: finals 0.5, 0.6, 0.7 -> mean 0.6, sample std 0.1; wall 2, 3, 4 -> 3.0 ± 1.0.
    assert!(rows[0].starts_with("| strategy.name=er | 3 | 0.6000 ± 0.1000 |") && rows[0].contains("3.0 ± 1.0"), "{}", rows[0]);
    assert!(rows[1].starts_with("| strategy.name=dietcl | 1 | 0.4000 |"), "{}", rows[1]);
    assert!(image::open(&png).is_ok(), "the plot is a PNG");
    let _ = std::fs::remove_dir_all(&d);
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rekindle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// configs/quickstart.yaml, wherever the test runs.
fn quickstart() -> String {
    format!("{}/configs/quickstart.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// A value of the wrong type names its full key path (three keys are called `steps`) and its line.
#[test]
fn a_config_type_error_names_the_key_path_and_the_line() {
    let dir = scratch("config-type");
    let config = dir.join("x.yaml");
    std::fs::write(&config, "seed: 1\nbudget:\n  steps: two hundred\n").unwrap();
    let out = dir.join("run");
    let want = format!("{} line 3: budget.steps: invalid type: string \"two hundred\", expected usize", config.display());
    assert_fails(&["train", config.to_str().unwrap(), "--out", out.to_str().unwrap()], &[&want]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A typo in `--set` is the override's, not the config file's.
#[test]
fn a_set_typo_names_the_override_not_the_file() {
    let out = scratch("set-typo").join("run");
    let config = quickstart();
    let args = ["train", &config, "--set", "budget.stepz=3", "--out", out.to_str().unwrap()];
    assert_fails(&args, &["--set budget.stepz=3: unknown key budget.stepz (budget has: steps, effective_batch, micro_batch,"]);
    let err = stderr(&rekindle(&args));
    assert!(!err.contains("quickstart.yaml"), "the file is not to blame: {err}");
    assert_fails(&["train", &config, "--set", "budget.steps=many", "--out", out.to_str().unwrap()], &["--set budget.steps=many: budget.steps: invalid type: string \"many\", expected usize"]);
    assert_fails(&["train", &config, "--set", "budget.steps", "--out", out.to_str().unwrap()], &["--set budget.steps: an override is KEY=VALUE"]);
}

/// A file that cannot be read or written is named once, with the OS's reason once (anyhow's `{:#}`
/// prints an error's `source()` after its message: one that held both printed the reason twice).
#[test]
fn an_os_error_names_the_path_and_the_reason_once() {
    let dir = scratch("os-error");
    let missing = |name: &str| dir.join("absent").join(name).display().to_string();
    let shard = dir.join("s.shard");
    let made = rekindle(&["data", "prepare", "--from", "synthetic", "--classes", "2", "--per-class", "2", "--size", "8", "--out", shard.to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let under_a_file = a_file.join("run").display().to_string();
    let (config, data, ckpt, info, run) = (missing("x.yaml"), missing("train.shard"), missing("c.safetensors"), missing("i.shard"), missing("run"));
    let data_train = format!("data.train={data}");
    let out = dir.join("out").display().to_string();
    let quickstart = quickstart();
    let cases: [(Vec<&str>, &str, &str); 6] = [
        (vec!["train", &config], &config, "No such file or directory (os error 2)"),
        (vec!["train", &quickstart, "--set", &data_train, "--out", &out], &data, "No such file or directory (os error 2)"),
        (vec!["eval", "--checkpoint", &ckpt, "--data", shard.to_str().unwrap()], &ckpt, "No such file or directory (os error 2)"),
        (vec!["data", "info", &info], &info, "No such file or directory (os error 2)"),
        (vec!["speedup", "--scratch", &run, "--runs", &run], &run, "No such file or directory (os error 2)"),
        (vec!["train", &quickstart, "--out", &under_a_file], &under_a_file, "Not a directory (os error 20)"),
    ];
    for (args, path, reason) in cases {
        let out = rekindle(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(err.matches(reason).count(), 1, "{args:?}: the OS's reason once:\n{err}");
        assert_eq!(err.matches(path).count(), 1, "{args:?}: the path once:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_names_only_files_that_exist_and_the_defaults_it_has() {
    // `pretrain --help` named configs/fashion-mnist/pretrained.yaml (no such file) and a default
    // --out of runs/CONFIG_NAME (it is runs/CONFIG_NAME-pretrain).
    let mut texts = Vec::new();
    for command in [&[][..], &["train"], &["pretrain"], &["eval"], &["report"], &["speedup"], &["bench", "step"], &["data", "prepare"]] {
        let o = rekindle(&[command, &["--help"]].concat());
        assert!(o.status.success(), "{command:?} --help");
        texts.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    let all = texts.join("\n");
    for word in all.split(|c: char| c.is_whitespace() || "`(),;".contains(c)) {
        if word.starts_with("configs/") && word.trim_end_matches('.').ends_with(".yaml") {
            let path = word.trim_end_matches('.');
            assert!(std::path::Path::new(path).exists(), "--help names {path}, which does not exist");
        }
    }
    assert!(texts[2].contains("runs/CONFIG_NAME-pretrain"), "{}", texts[2]);
    assert!(!texts[2].contains("last completed time step"), "a resume continues from the last checkpoint: {}", texts[2]);
    // The commands the README says take --preset take it.
    for command in [["bench", "step"], ["bench", "kernels"], ["bench", "scaling"]] {
        let o = rekindle(&[&command[..], &["--help"]].concat());
        assert!(String::from_utf8_lossy(&o.stdout).contains("--preset"), "{command:?}");
    }
}
