//! Data parallelism over MPI ranks, end to end with `mpirun`: two ranks train exactly what one
//! process trains at the same effective batch; a rank that dies or hangs stops the job within
//! 60 s with an error; and a run resumes at another world size to the same parameters.
//!
//! Each of these also runs on GPUs (`--device cuda`, fp32, the `gpu` feature): each rank on its
//! own device, gradients summed by NCCL. Where the machine has no two GPUs, the software GPU
//! (crates/gpu-sim) provides two simulated devices and NCCL across the ranks' processes.
//!
//! Needs the `mpi` feature and Open MPI's `mpirun` (the README's test command and CI have both).
#![cfg(feature = "mpi")]

mod common;

use common::{assert_same_params, config, summary_without_wall, TINY_RANKS as TINY};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dir(name: &str) -> PathBuf {
    common::dir("dist", name)
}

/// Where the ranks compute.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Cpu,
    /// A GPU per rank in fp32 (the CPU's arithmetic); the software GPU's where there are none.
    #[cfg(feature = "gpu")]
    Cuda,
}

/// `rekindle ARGS` on `ranks` MPI ranks (`ranks = 0`: plain, without mpirun), on `on`.
fn rekindle_on(on: On, ranks: usize, args: &[&str]) -> Command {
    let mut c = rekindle(ranks, args);
    #[cfg(feature = "gpu")]
    if on == On::Cuda {
        c.args(["--device", "cuda"]).env("REKINDLE_SIM_DEVICES", "2").env("REKINDLE_SIM_QUIET", "1");
        // `bench all-reduce` runs no model, so it has no arithmetic to choose.
        if args[..2] != ["bench", "all-reduce"] {
            c.args(["--precision", "fp32"]);
        }
        rekindle_gpu_sim::configure(&mut c);
    }
    let _ = on;
    c
}

/// Whether two ranks can each have a GPU here (skipping, or failing under
/// REKINDLE_REQUIRE_CUDA=1, where not).
#[cfg(feature = "gpu")]
fn two_gpus() -> bool {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Sim {
        return true;
    }
    match cudarc::driver::CudaContext::device_count() {
        Ok(n) if n >= 2 => true,
        other => {
            rekindle_gpu_sim::skip(&format!("two GPU ranks need two GPUs: {other:?}"));
            false
        }
    }
}

/// A test on the CPU and its twin on GPUs (which returns where two GPUs cannot be had), both
/// calling `body(on, args…)`; a leading name (the test's directory) gets `-cuda` on the GPU.
macro_rules! cpu_and_gpu_tests {
    ($cpu:ident, $gpu:ident, $body:ident $(, $name:literal $(, $arg:expr)*)?) => {
        #[test]
        fn $cpu() {
            $body(On::Cpu $(, $name $(, $arg)*)?);
        }

        #[cfg(feature = "gpu")]
        #[test]
        fn $gpu() {
            if two_gpus() {
                $body(On::Cuda $(, concat!($name, "-cuda") $(, $arg)*)?);
            }
        }
    };
}

/// `rekindle ARGS` on `ranks` MPI ranks (`ranks = 0`: plain, without mpirun).
fn rekindle(ranks: usize, args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_rekindle");
    let mut c = if ranks == 0 {
        Command::new(bin)
    } else {
        let mut c = Command::new("mpirun");
        // CI runs as root in a container: allow it, let 2 ranks share fewer cores, and use plain
        // shared memory (no ptrace-based single copy, which containers forbid).
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        c.args(["-np", &ranks.to_string(), "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none", bin]);
        c
    };
    c.args(args);
    c
}

fn run_on(on: On, ranks: usize, args: &[&str]) -> Output {
    let o = rekindle_on(on, ranks, args).output().expect("run rekindle (is Open MPI's mpirun on PATH?)");
    assert!(o.status.success(), "rekindle {args:?} on {ranks} ranks failed:\n{}", String::from_utf8_lossy(&o.stderr));
    o
}

cpu_and_gpu_tests!(two_ranks_train_what_one_process_trains, two_gpu_ranks_train_what_one_gpu_trains, train_equivalence, "equivalence");

fn train_equivalence(on: On, name: &str) {
    let d = dir(name);
    let cfg = config(&d, TINY);
    let (one, two) = (d.join("one"), d.join("two"));
    run_on(on, 0, &["train", &cfg, "--out", one.to_str().unwrap()]);
    let o = run_on(on, 2, &["train", &cfg, "--out", two.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 ranks"), "rank 0 names the world: {err}");
    #[cfg(feature = "gpu")]
    if on == On::Cuda {
        assert!(err.contains("NCCL, 2 ranks"), "gradients go over NCCL: {err}");
    }
    for step in 0..3 {
        let name = format!("checkpoints/step-{step}.safetensors");
        assert_same_params(&two.join(&name), &one.join(&name), &format!("2 ranks vs 1 process, time step {step}"));
    }
    let summary = |d: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap() };
    let (s1, s2) = (summary(&one), summary(&two));
    assert_eq!(s1["accuracy_matrix"], s2["accuracy_matrix"], "evaluation split across ranks counts the same");
    assert_eq!((s1["optimizer_steps"].clone(), s1["flops"].clone()), (s2["optimizer_steps"].clone(), s2["flops"].clone()));
    // Only rank 0 writes: one line per optimizer step, not one per rank.
    let metrics = std::fs::read_to_string(two.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"type\":\"train\"")).count(), 24);
}

#[test]
fn a_micro_batch_the_world_cannot_split_is_refused() {
    let d = dir("indivisible");
    let cfg = config(&d, TINY);
    let o = rekindle(2, &["train", &cfg, "--out", d.join("run").to_str().unwrap(), "--set", "budget.micro_batch=32"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("budget.micro_batch") && err.contains("on each of 2 ranks"), "{err}");
}

/// Starts a 2-rank run and waits until time step 0 is checkpointed and time step 1 is training
/// (it has seconds of work left: 400 optimizer steps per time step on the CPU, 20 on the slow
/// software GPU). The wait is long: tests run side by side on few cores.
fn start_long_run(on: On, d: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let steps = if on == On::Cpu { "steps: 400," } else { "steps: 20," };
    let cfg = config(d, &TINY.replace("steps: 8,", steps));
    let out = d.join("run");
    let mut args = vec!["train", cfg.as_str(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    let child = rekindle_on(on, 2, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while !out.join("state.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(300), "time step 0 never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, out)
}

/// The run a stopped job left: time step 0's checkpoint, whole, is the last one.
fn assert_checkpoint_kept(out: &Path) {
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_steps"], 1, "stopped during time step 1");
    let values = common::params(&out.join("checkpoints/step-0.safetensors"));
    assert!(!values.is_empty() && values.iter().all(|v| v.is_finite()), "the kept checkpoint is whole");
    assert!(!out.join("summary.json").exists() && !out.join("checkpoints/step-1.safetensors").exists());
}

/// The pid of rank `rank` among `mpirun`'s children.
fn rank_pid(mpirun: u32, rank: usize) -> i32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let parent = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        if parent == Some(mpirun) && environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            return pid;
        }
    }
    panic!("no rank {rank} under mpirun {mpirun}");
}

fn signal(pid: i32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// Waits for `child` to exit; returns its stderr and how long it took.
fn wait_exit(child: Child, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let id = child.id();
    let watcher = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !watcher.is_finished() {
        if started.elapsed() > limit {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("the job still runs {} s after the rank stopped: it hangs", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (watcher.join().unwrap(), started.elapsed())
}

cpu_and_gpu_tests!(a_killed_rank_stops_the_job_with_an_error, a_killed_gpu_rank_stops_the_job_with_an_error, killed_rank, "killed");

fn killed_rank(on: On, name: &str) {
    let d = dir(name);
    let (child, out) = start_long_run(on, &d, &[]);
    signal(rank_pid(child.id(), 1), "-KILL");
    let (o, took) = wait_exit(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("exited after {:.1} s: {err}", took.as_secs_f64());
    assert!(!o.status.success());
    assert!(err.contains("rank 1") && err.contains("signal 9"), "the error names the dead rank: {err}");
    assert_checkpoint_kept(&out);
}

cpu_and_gpu_tests!(a_hung_rank_stops_the_job_through_the_watchdog, a_hung_gpu_rank_stops_the_job_through_the_watchdog, hung_rank, "hung");

fn hung_rank(on: On, name: &str) {
    let d = dir(name);
    let (child, out) = start_long_run(on, &d, &["--comm-timeout", "5"]);
    // A stopped process is alive to mpirun, so only the other rank's watchdog can notice.
    let hung = rank_pid(child.id(), 1);
    signal(hung, "-STOP");
    let (o, took) = wait_exit(child, Duration::from_secs(60));
    let _ = Command::new("kill").args(["-9", &hung.to_string()]).status();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("exited after {:.1} s: {err}", took.as_secs_f64());
    assert!(!o.status.success());
    // On GPUs rank 0 waits in NCCL's all-reduce of the gradients, on the CPU in MPI's.
    let waited = if on == On::Cpu { "rank 0: all-reduce has waited" } else { "rank 0: ncclAllReduce has waited" };
    assert!(err.contains(waited) && err.contains("a rank has died or hangs"), "{err}");
    assert_checkpoint_kept(&out);
}

/// Runs `first` ranks until time step 0 is checkpointed, stops the job, resumes on `then` ranks,
/// and checks the result against an uninterrupted single-process run.
fn resume_across_world_sizes(on: On, name: &str, first: usize, then: usize) {
    let d = dir(name);
    // The software GPU is slow: fewer steps per time step there still leave seconds to stop in.
    let steps = if on == On::Cpu { "steps: 400," } else { "steps: 40," };
    let cfg = config(&d, &TINY.replace("steps: 8,", steps));
    let (whole, split) = (d.join("whole"), d.join("split"));
    run_on(on, 0, &["train", &cfg, "--out", whole.to_str().unwrap()]);
    let args = ["train", &cfg, "--out", split.to_str().unwrap(), "--set", "budget.checkpoint_every=25"];
    let child = rekindle_on(on, first, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // After time step 0's checkpoint; the whole run takes seconds, so the stop lands in step 1.
    let state = stop_once(child, &split, "time step 0 never finished", |s| s["completed_steps"].as_u64().is_some_and(|c| c >= 1));
    assert!(!split.join("summary.json").exists(), "stopped before it finished");
    // The stop wrote a checkpoint inside a time step (step 1, or 2 on a busy machine), which the
    // resume continues from.
    assert!(state["completed_steps"].as_u64().is_some_and(|c| (1..3).contains(&c)) && state["inside"]["step_iteration"].as_u64().is_some(), "{state}");
    run_on(on, then, &["train", "--resume", split.to_str().unwrap()]);
    let what = format!("{} then {} vs 1 process", ranks(first), ranks(then));
    assert_same_params(&split.join("checkpoints/step-2.safetensors"), &whole.join("checkpoints/step-2.safetensors"), &what);
    // The whole summary too (accuracies, steps, FLOPs, the curve), wall time aside.
    assert_eq!(summary_without_wall(&split), summary_without_wall(&whole), "{what}: the summary differs");
}

/// The run's `state.json`, once it reads.
fn saved_state(run: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).ok()?).ok()
}

/// Waits (at most 120 s, else fails with `never`) until the run in `run` saved a state that is
/// `ready`, stops the job with SIGTERM (mpirun passes it on to its ranks), waits for it to end,
/// and returns the state the stop left.
fn stop_once(mut child: Child, run: &Path, never: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let started = Instant::now();
    while !saved_state(run).is_some_and(|s| ready(&s)) {
        assert!(started.elapsed() < Duration::from_secs(120), "{never}");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(child.id() as i32, "-TERM");
    child.wait().unwrap();
    saved_state(run).expect("the stopped run's state.json")
}

fn ranks(n: usize) -> String {
    if n == 0 { "1 process".into() } else { format!("{n} ranks") }
}

cpu_and_gpu_tests!(two_ranks_resume_on_one, two_gpu_ranks_resume_on_one, resume_across_world_sizes, "2to1", 2, 1);
cpu_and_gpu_tests!(one_rank_resumes_on_two, one_gpu_rank_resumes_on_two, resume_across_world_sizes, "1to2", 0, 2);

cpu_and_gpu_tests!(bench_scaling_measures_each_world_size, bench_scaling_measures_each_world_size_on_gpus, bench_scaling);

fn bench_scaling(on: On) {
    let model = ["--preset", "vit-micro-4-28", "--batch", "4", "--iters", "2", "--json"];
    let o = run_on(on, 2, &[&["bench", "scaling"][..], &model].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let worlds = report["worlds"].as_array().unwrap();
    assert_eq!(worlds.iter().map(|w| w["world"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2], "only rank 0 reports, once per world size");
    assert!(worlds[0]["bus_gbytes_per_sec"].is_null());
    assert!(worlds[1]["bus_gbytes_per_sec"].as_f64().unwrap() > 0.0 && worlds[1]["all_reduce_seconds"].as_f64().unwrap() > 0.0);
    assert!((worlds[0]["efficiency"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!(report["gradient_mbytes"].as_f64().unwrap() > 0.0);
}

cpu_and_gpu_tests!(bench_all_reduce_checks_and_times_each_world_size, bench_all_reduce_checks_and_times_each_world_size_over_nccl, bench_all_reduce);

fn bench_all_reduce(on: On) {
    let o = run_on(on, 2, &["bench", "all-reduce", "--mbytes", "4", "--iters", "3", "--warmup", "1", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let carrier = if on == On::Cpu { "MPI" } else { "NCCL" };
    assert!(report["comm"].as_str().unwrap().starts_with(carrier), "{report}");
    let worlds = report["worlds"].as_array().unwrap();
    assert_eq!(worlds.len(), 2);
    assert!(worlds[1]["busbw_gbytes_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    // nccl-tests' all-reduce bus bandwidth: algbw · 2 (N−1)/N, which is algbw at N = 2.
    let (alg, bus) = (worlds[1]["algbw_gbytes_per_sec"].as_f64().unwrap(), worlds[1]["busbw_gbytes_per_sec"].as_f64().unwrap());
    assert!((bus - alg).abs() <= 1e-12 * alg, "{report}");
}

cpu_and_gpu_tests!(two_ranks_pretrain_what_one_process_pretrains, two_gpu_ranks_pretrain_what_one_gpu_pretrains, pretrain_equivalence, "pretrain");

fn pretrain_equivalence(on: On, name: &str) {
    let d = dir(name);
    let text = TINY.replace("data: {synthetic:", "data: {holdout: 0.5, synthetic:") + "pretrain: {steps: 6, effective_batch: 32, micro_batch: 8, checkpoint_every: 3}\n";
    let cfg = config(&d, &text);
    let (one, two) = (d.join("one"), d.join("two"));
    run_on(on, 0, &["pretrain", &cfg, "--out", one.to_str().unwrap()]);
    run_on(on, 2, &["pretrain", &cfg, "--out", two.to_str().unwrap()]);
    let (a, b) = (common::params(&one.join("mae.safetensors")), common::params(&two.join("mae.safetensors")));
    let e = rekindle_tensor::relative_error(&a, &b);
    eprintln!("MAE pre-training, 2 ranks vs 1 process: relative parameter error {e:.3e} over {} values", a.len());
    assert!(e <= 1e-5, "relative error {e:.3e}");
}

#[test]
fn two_ranks_pretraining_stopped_inside_resume_on_one() {
    let d = dir("pretrain-2to1");
    let text = TINY.replace("data: {synthetic:", "data: {holdout: 0.5, synthetic:") + "pretrain: {steps: 400, effective_batch: 32, micro_batch: 8, checkpoint_every: 20}\n";
    let cfg = config(&d, &text);
    let (whole, split) = (d.join("whole"), d.join("split"));
    run_on(On::Cpu, 0, &["pretrain", &cfg, "--out", whole.to_str().unwrap()]);
    let child = rekindle_on(On::Cpu, 2, &["pretrain", &cfg, "--out", split.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let state = stop_once(child, &split, "no checkpoint was ever written", |_| true);
    assert!(!split.join("mae.safetensors").exists(), "stopped before it finished");
    let stopped_at = state["iteration"].as_u64().unwrap();
    assert!(stopped_at > 0 && stopped_at < 400, "stopped inside the run: {state}");
    run_on(On::Cpu, 1, &["pretrain", "--resume", split.to_str().unwrap()]);
    let (a, b) = (common::params(&whole.join("mae.safetensors")), common::params(&split.join("mae.safetensors")));
    let e = rekindle_tensor::relative_error(&a, &b);
    eprintln!("MAE pre-training stopped at iteration {stopped_at} on 2 ranks, resumed on 1, vs 1 process: relative parameter error {e:.3e}");
    assert!(e <= 1e-5, "relative error {e:.3e}");
}

/// A 2-rank run on `on` with the environment `env`, which makes rank 1 fail: it must stop both
/// ranks well before the watchdog, with an error containing each of `cause`, and keep the last
/// checkpoint. Returns the run directory and the completed time steps.
fn rank_1_fails(on: On, name: &str, env: (&str, &str), cause: &[&str]) -> (PathBuf, u64) {
    let d = dir(name);
    let cfg = config(&d, TINY);
    let out = d.join("run");
    let child = rekindle_on(on, 2, &["train", &cfg, "--out", out.to_str().unwrap(), "--comm-timeout", "120"])
        .env(env.0, env.1)
        .env("REKINDLE_FAULT_RANK", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (o, took) = wait_exit(child, Duration::from_secs(100));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(took < Duration::from_secs(60), "stopped after {took:?}: that is the watchdog, not the failure flag");
    assert!(cause.iter().all(|c| err.contains(c)) && err.contains("every rank stopped"), "the cause and the rank: {err}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    let completed = state["completed_steps"].as_u64().unwrap();
    let kept = out.join(format!("checkpoints/step-{}.safetensors", completed - 1));
    assert!(common::params(&kept).iter().all(|v| v.is_finite()), "the kept checkpoint is whole");
    (out, completed)
}

#[test]
fn a_failed_device_on_one_rank_stops_every_rank_at_once() {
    // Rank 1's backend fails at optimizer step 12 (time step 2, as a GPU allocation that does not
    // fit would): both ranks stop after that step with the cause, and the checkpoint of time
    // step 1 is kept.
    let (out, completed) = rank_1_fails(On::Cpu, "device", ("REKINDLE_FAULT", "device:12"), &["rank 1: injected device failure"]);
    assert_eq!(completed, 1, "time step 1's checkpoint is the last one");
    assert!(!out.join("checkpoints/step-1.safetensors").exists());
}

#[cfg(feature = "gpu")]
#[test]
fn an_out_of_memory_on_one_gpu_rank_stops_every_rank_and_keeps_the_checkpoint() {
    if !two_gpus() || rekindle_gpu_sim::install() != rekindle_gpu_sim::Device::Sim {
        return; // a real card's memory cannot be shrunk for one rank
    }
    // Rank 1's simulated card has 7 MiB: enough for time step 0, not for all of the run (whose
    // peak is about 8 MB: REKINDLE_SIM_PROFILE=1 prints it), so an allocation fails in step 1.
    let (_, completed) = rank_1_fails(On::Cuda, "oom-cuda", ("REKINDLE_SIM_MEMORY_MB", "16384,7"), &["rank 1: cuda:1", "CUDA_ERROR_OUT_OF_MEMORY"]);
    assert_eq!(completed, 1, "time step 0's checkpoint is the last one");
}
