//! A whole run gives bitwise the same results on any number of CPU threads (the `threads` key
//! changes only the speed): every training loss, the accuracies of summary.json, and every
//! parameter of every checkpoint. The op-level check is crates/tensor/tests/threads.rs.

mod common;

use common::{config, dir, params, summary_without_wall, train_lines, TINY_RANKS};
use std::path::Path;
use std::process::Command;

/// Trains the tiny stream on `threads` threads into `out`. Width 64 and micro-batches of 32 make
/// products deep (544 token rows) and wide enough to be split across threads.
fn train(cfg: &str, out: &Path, threads: usize) {
    let threads = format!("threads={threads}");
    let args = ["train", cfg, "--set", "model.overrides.dim=64", "--set", "budget.effective_batch=32", "--set", "budget.micro_batch=32", "--set", &threads, "--out", out.to_str().unwrap()];
    let run = Command::new(env!("CARGO_BIN_EXE_rekindle")).args(args).output().expect("run rekindle");
    assert!(run.status.success(), "rekindle {args:?}:\n{}", String::from_utf8_lossy(&run.stderr));
}

/// Each training line's (time step, iteration, loss).
fn losses(run: &Path) -> Vec<(u64, u64, f64)> {
    train_lines(run).iter().map(|l| (l["step"].as_u64().unwrap(), l["iteration"].as_u64().unwrap(), l["loss"].as_f64().unwrap())).collect()
}

/// The first training line whose loss differs, bitwise, between the runs `a` and `b`.
fn first_different_loss(a: &Path, b: &Path) -> Option<String> {
    let (la, lb) = (losses(a), losses(b));
    if la.len() != lb.len() {
        return Some(format!("{} training lines against {}", la.len(), lb.len()));
    }
    la.iter().zip(&lb).find(|(x, y)| x.2.to_bits() != y.2.to_bits()).map(|(x, y)| format!("time step {} iteration {}: loss {} against {}", x.0, x.1, x.2, y.2))
}

#[test]
fn runs_are_bitwise_identical_for_any_thread_count() {
    let d = dir("threads", "identical");
    let cfg = config(&d, TINY_RANKS);
    let one = d.join("threads-1");
    train(&cfg, &one, 1);
    let checkpoints: Vec<_> = std::fs::read_dir(one.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().ends_with(".safetensors")).collect();
    assert!(!checkpoints.is_empty() && !losses(&one).is_empty(), "the run trained and kept checkpoints");
    for threads in [2, 3] {
        let many = d.join(format!("threads-{threads}"));
        train(&cfg, &many, threads);
        let differ = first_different_loss(&one, &many);
        assert!(differ.is_none(), "1 and {threads} threads: {}", differ.unwrap());
        assert_eq!(train_lines(&one), train_lines(&many), "training lines on 1 and {threads} threads");
        assert_eq!(summary_without_wall(&one), summary_without_wall(&many), "summary.json on 1 and {threads} threads");
        for name in &checkpoints {
            let (a, b) = (params(&one.join("checkpoints").join(name)), params(&many.join("checkpoints").join(name)));
            let same = a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "parameters of {name:?} on 1 and {threads} threads");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
