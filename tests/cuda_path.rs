//! The commands' CUDA path end to end (`--device cuda:0`): on the machine's GPU where it has
//! one, else on the software GPU (crates/gpu-sim), which CI always has, so none of these skip
//! there (`REKINDLE_REQUIRE_CUDA=1`).
//!
//! Tolerances against the CPU backend: in fp32 every training loss and the final parameters agree
//! to 1e-4 relative. Each op agrees to 1e-5 (crates/cuda/tests/parity.rs), but the GEMMs sum in a
//! different order than the CPU's, and AdamW divides by √v, so a last-bit difference in an early
//! gradient grows over the steps (measured: 1.5e-5 on losses, 3.5e-5 on parameters after 20
//! steps). In bf16 (8-bit mantissas) losses stay within 5% and accuracies within 0.1.
#![cfg(feature = "gpu")]

mod common;

use common::{params, train_lines};
use rekindle_tensor::relative_error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn dir(name: &str) -> PathBuf {
    common::dir("cuda", name)
}

fn rekindle(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.args(args).env("REKINDLE_SIM_QUIET", "1");
    rekindle_gpu_sim::configure(&mut c);
    c
}

fn run(args: &[&str]) -> Output {
    let o = rekindle(args).output().unwrap();
    assert!(o.status.success(), "rekindle {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Skips (or, under REKINDLE_REQUIRE_CUDA=1, fails) where no GPU and no software GPU can run.
fn cuda_present() -> bool {
    rekindle_gpu_sim::install();
    match cudarc::driver::CudaContext::device_count() {
        Ok(n) if n > 0 => true,
        other => {
            rekindle_gpu_sim::skip(&format!("no CUDA device: {other:?}"));
            false
        }
    }
}

/// The quickstart on a short budget: three time steps of four optimizer steps.
const SHORT: [&str; 6] = ["configs/quickstart.yaml", "--set", "budget.steps=4", "--set", "stream.steps=3", "--out"];

fn short_run(out: &Path, device: &[&str]) {
    let mut args: Vec<&str> = vec!["train"];
    args.extend(SHORT);
    args.push(out.to_str().unwrap());
    args.extend(device);
    run(&args);
}

/// The short quickstart on the CPU and on cuda:0 in `precision`, in `dir(name)`: (cpu, gpu).
fn cpu_and_cuda(name: &str, precision: &str) -> (PathBuf, PathBuf) {
    let d = dir(name);
    let (cpu, gpu) = (d.join("cpu"), d.join("gpu"));
    short_run(&cpu, &[]);
    short_run(&gpu, &["--device", "cuda:0", "--precision", precision]);
    (cpu, gpu)
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The largest relative difference of the loss terms (and gradient norms) of two runs' training
/// lines.
fn worst_loss_difference(a: &Path, b: &Path) -> f64 {
    let (la, lb) = (train_lines(a), train_lines(b));
    assert_eq!(la.len(), lb.len(), "the same optimizer steps");
    assert!(!la.is_empty());
    let mut worst = 0.0f64;
    for (x, y) in la.iter().zip(&lb) {
        for key in ["loss", "loss_mae", "loss_current", "loss_buffer", "grad_norm"] {
            if let (Some(p), Some(q)) = (x[key].as_f64(), y[key].as_f64()) {
                worst = worst.max((p - q).abs() / p.abs().max(1e-12));
            }
        }
    }
    worst
}

fn accuracy_rows(run: &Path) -> Vec<f64> {
    summary(run)["accuracy_matrix"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>()).collect()
}

#[test]
fn quickstart_in_fp32_on_cuda_trains_what_the_cpu_trains() {
    if !cuda_present() {
        return;
    }
    let (cpu, gpu) = cpu_and_cuda("fp32", "fp32");
    let losses = worst_loss_difference(&cpu, &gpu);
    let step = "checkpoints/step-2.safetensors";
    let parameters = relative_error(&params(&gpu.join(step)), &params(&cpu.join(step)));
    eprintln!("fp32, CUDA vs CPU: losses differ by at most {losses:.2e}, parameters by {parameters:.2e}");
    assert!(losses <= 1e-4, "training losses differ by {losses:.2e}");
    assert!(parameters <= 1e-4, "final parameters differ by {parameters:.2e}");
    assert!(params(&gpu.join(step)) != params(&gpu.join("checkpoints/step-0.safetensors")), "training moved the model");
    for (a, b) in accuracy_rows(&cpu).iter().zip(accuracy_rows(&gpu)) {
        assert!((a - b).abs() <= 0.01, "accuracies {a} and {b}");
    }
}

#[test]
fn quickstart_in_bf16_on_cuda_stays_close_to_the_cpu() {
    if !cuda_present() {
        return;
    }
    let (cpu, gpu) = cpu_and_cuda("bf16", "bf16");
    let losses = worst_loss_difference(&cpu, &gpu);
    eprintln!("bf16, CUDA vs CPU: losses differ by at most {losses:.2e}");
    assert!(losses <= 0.05, "bf16 training losses differ from fp32 CPU's by {losses:.2e}");
    for (a, b) in accuracy_rows(&cpu).iter().zip(accuracy_rows(&gpu)) {
        assert!((a - b).abs() <= 0.1, "accuracies {a} (CPU) and {b} (bf16)");
    }
}

#[test]
fn pretrain_and_eval_on_cuda_match_the_cpu() {
    if !cuda_present() {
        return;
    }
    let d = dir("pretrain");
    let (cpu, gpu) = (d.join("cpu"), d.join("gpu"));
    for (out, device) in [(&cpu, "cpu"), (&gpu, "cuda:0")] {
        let mut args = vec!["pretrain", "configs/quickstart.yaml", "--set", "pretrain.steps=3", "--out", out.to_str().unwrap(), "--device", device];
        if device != "cpu" {
            args.extend(["--precision", "fp32"]);
        }
        run(&args);
    }
    let e = relative_error(&params(&gpu.join("mae.safetensors")), &params(&cpu.join("mae.safetensors")));
    eprintln!("pretrain, CUDA vs CPU: parameters differ by {e:.2e}");
    assert!(e <= 1e-4, "pre-trained parameters differ by {e:.2e}");

    // eval of a trained checkpoint: the CUDA path's logits are the CPU's.
    let trained = d.join("trained");
    run(&["train", "configs/quickstart.yaml", "--set", "budget.steps=1", "--set", "stream.steps=1", "--out", trained.to_str().unwrap()]);
    let shard = d.join("test.shard");
    run(&["data", "prepare", "--from", "synthetic", "--classes", "10", "--per-class", "6", "--size", "32", "--split", "test", "--out", shard.to_str().unwrap()]);
    let checkpoint = trained.join("checkpoints/step-0.safetensors");
    let logits = |device: &[&str], file: &str| {
        let path = d.join(file);
        let mut args = vec!["eval", "--checkpoint", checkpoint.to_str().unwrap(), "--data", shard.to_str().unwrap(), "--save-logits", path.to_str().unwrap()];
        args.extend(device);
        run(&args);
        params(&path).into_iter().filter(|v| v.is_finite()).collect::<Vec<f32>>()
    };
    let (on_cpu, on_gpu) = (logits(&[], "cpu.safetensors"), logits(&["--device", "cuda:0", "--precision", "fp32"], "gpu.safetensors"));
    assert_eq!(on_cpu.len(), on_gpu.len());
    let e = relative_error(&on_gpu, &on_cpu);
    assert!(e <= 1e-5, "eval logits differ by {e:.2e}");
}

#[test]
fn bench_commands_run_on_cuda() {
    if !cuda_present() {
        return;
    }
    for precision in ["fp32", "bf16"] {
        let o = run(&["bench", "step", "--preset", "vit-micro-4-28", "--batch", "8", "--task", "dietcl", "--device", "cuda:0", "--precision", precision, "--iters", "1"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("images/s"), "bench step reports a rate");
        let o = run(&["bench", "kernels", "--preset", "vit-micro-4-28", "--batch", "4", "--device", "cuda:0", "--precision", precision, "--iters", "1", "--ceiling-size", "128", "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(rows.to_string().contains("gradient norm"), "every op is timed: {rows}");
    }
    let o = run(&["bench", "all-reduce", "--device", "cuda", "--mbytes", "1"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("over NCCL") && table.lines().any(|l| l.trim_start().starts_with("1 ")), "NCCL at world size 1: {table}");
}

/// A run whose first time step finished and whose second was stopped (REKINDLE_FAULT).
fn stopped_after_one_step(d: &Path) -> PathBuf {
    let out = d.join("run");
    let o = rekindle(&["train", SHORT[0], "--set", "budget.steps=2", "--set", "stream.steps=3", "--out", out.to_str().unwrap(), "--device", "cuda:0", "--precision", "fp32"])
        .env("REKINDLE_FAULT", "train:1:joint:0")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the fault stops the run");
    assert!(out.join("checkpoints/step-0.safetensors").exists(), "time step 0 was checkpointed");
    out
}

/// `--resume` of that run on cuda:0 with the same config.
fn resume_on_cuda(out: &Path) -> Command {
    rekindle(&["train", SHORT[0], "--set", "budget.steps=2", "--set", "stream.steps=3", "--resume", out.to_str().unwrap(), "--device", "cuda:0", "--precision", "fp32"])
}

fn completed_steps(run: &Path) -> serde_json::Value {
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    state["completed_steps"].clone()
}

#[test]
fn a_failed_device_stops_the_run_and_keeps_the_checkpoint() {
    if !cuda_present() {
        return;
    }
    let d = dir("device-failure");
    let out = stopped_after_one_step(&d);
    let before = std::fs::read(out.join("checkpoints/step-0.safetensors")).unwrap();
    let o = resume_on_cuda(&out).env("REKINDLE_FAULT", "device:3").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("injected device failure"), "{err}");
    assert_eq!(completed_steps(&out), 1);
    assert_eq!(std::fs::read(out.join("checkpoints/step-0.safetensors")).unwrap(), before, "the checkpoint is untouched");
}

#[test]
fn out_of_memory_on_the_device_names_the_cause_and_keeps_the_checkpoint() {
    if !cuda_present() || rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        return; // a real GPU's memory cannot be made small
    }
    let d = dir("oom");
    let out = stopped_after_one_step(&d);
    let before = std::fs::read(out.join("checkpoints/step-0.safetensors")).unwrap();
    let o = resume_on_cuda(&out).env("REKINDLE_SIM_MEMORY_MB", "4").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("cannot allocate") && err.contains("CUDA_ERROR_OUT_OF_MEMORY"), "names the cause: {err}");
    assert_eq!(completed_steps(&out), 1);
    assert_eq!(std::fs::read(out.join("checkpoints/step-0.safetensors")).unwrap(), before, "the checkpoint is untouched");
}

/// `bench step` on the software GPU with driver version `driver` (major * 1000 + minor * 10) and
/// an empty kernel cache in `cache`, so that this process compiles its kernels.
fn bench_on_driver(driver: i32, cache: &Path) -> Output {
    let _ = std::fs::remove_dir_all(cache);
    rekindle(&["bench", "step", "--preset", "vit-micro-4-28", "--batch", "2", "--device", "cuda:0", "--precision", "fp32", "--iters", "1"])
        .env("REKINDLE_SIM_DRIVER", driver.to_string())
        .env("REKINDLE_CACHE_DIR", cache)
        .output()
        .unwrap()
}

/// The loss `bench step` printed.
fn bench_loss(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    out.split("loss ").nth(1).unwrap_or_else(|| panic!("no loss in {out}")).trim().to_string()
}

#[test]
fn a_driver_older_than_nvrtc_loads_cubins_within_its_major_version_and_is_refused_across_one() {
    if !cuda_present() || rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        return; // the driver version of a real GPU is what it is
    }
    let (major, minor) = rekindle_cuda::nvrtc::version().unwrap();
    let current = major * 1000 + minor * 10;
    let (ptx_cache, cubin_cache) = (dir("driver-ptx"), dir("driver-cubin"));
    let with_ptx = bench_on_driver(current, &ptx_cache);
    let ptx_files = std::fs::read_dir(&ptx_cache).unwrap().flatten().filter(|f| f.path().extension().is_some_and(|e| e == "ptx")).count();
    assert!(ptx_files > 0, "a driver as new as NVRTC gets PTX");
    if minor > 0 {
        // CUDA 13.0 cannot read the PTX of NVRTC 13.x (x > 0), but loads its CUBINs.
        let older = bench_on_driver(major * 1000, &cubin_cache);
        assert_eq!(bench_loss(&older), bench_loss(&with_ptx), "the CUBIN path computes what the PTX path does");
        let cubins = std::fs::read_dir(&cubin_cache).unwrap().flatten().filter(|f| f.path().extension().is_some_and(|e| e == "cubin")).count();
        assert!(cubins > 0, "an older driver of NVRTC's major version gets CUBINs");
    }
    // A driver of the previous major version can load neither.
    let o = bench_on_driver((major - 1) * 1000 + 40, &dir("driver-old"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let previous = major - 1;
    assert!(err.contains(&format!("driver (CUDA {previous}.4) cannot load what NVRTC {major}.{minor} compiles")) && err.contains(&format!("nvidia-cuda-nvrtc-cu{previous}")), "{err}");
}

/// Rank `rank` of two, as `srun` without MPI starts it (Slurm's step variables), on the software
/// GPU's two devices, joining NCCL through `rendezvous`.
fn srun_rank(rank: usize, rendezvous: &Path, args: &[&str]) -> Command {
    let mut c = rekindle(args);
    let (r, local) = (rank.to_string(), rank.to_string());
    c.args(["--rendezvous", &format!("file:{}", rendezvous.display())])
        .env("SLURM_PROCID", &r)
        .env("SLURM_STEP_NUM_TASKS", "2")
        .env("SLURM_LOCALID", &local)
        .env("SLURM_STEP_TASKS_PER_NODE", "2")
        .env("REKINDLE_SIM_DEVICES", "2");
    c
}

#[test]
fn two_gpu_ranks_without_mpi_join_through_a_rendezvous_file_and_train_what_one_gpu_trains() {
    if !cuda_present() || rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        return; // two ranks need two devices: the software GPU's (tests/distributed.rs has the MPI case)
    }
    let d = dir("rendezvous");
    let cfg = common::config(&d, common::TINY_RANKS);
    let (one, two, meet) = (d.join("one"), d.join("two"), d.join("meet"));
    run(&["train", &cfg, "--out", one.to_str().unwrap(), "--device", "cuda:0", "--precision", "fp32"]);
    let args = ["train", cfg.as_str(), "--out", two.to_str().unwrap(), "--device", "cuda", "--precision", "fp32"];
    let ranks: Vec<_> = (0..2).map(|r| srun_rank(r, &meet, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    let outputs: Vec<Output> = ranks.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (r, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "rank {r}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let err = String::from_utf8_lossy(&outputs[0].stderr);
    assert!(err.contains("NCCL, 2 ranks on cuda:0") && err.contains("launched by srun"), "NCCL alone, no MPI: {err}");
    for step in 0..3 {
        let name = format!("checkpoints/step-{step}.safetensors");
        common::assert_same_params(&two.join(&name), &one.join(&name), &format!("2 GPU ranks over a rendezvous file vs 1 GPU, time step {step}"));
    }
    assert_eq!(summary(&one)["accuracy_matrix"], summary(&two)["accuracy_matrix"]);
    assert!(std::fs::read_dir(&meet).unwrap().next().is_none(), "rank 0 removes the rendezvous file once every rank has joined");
}

#[test]
fn a_rendezvous_for_cpu_ranks_is_refused_naming_mpi() {
    let d = dir("rendezvous-cpu");
    let cfg = common::config(&d, common::TINY_RANKS);
    let o = srun_rank(0, &d.join("meet"), &["train", &cfg, "--out", d.join("run").to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--rendezvous joins GPU ranks over NCCL") && err.contains("CPU ranks need MPI"), "{err}");
}
