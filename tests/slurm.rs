//! rekindle under a real Slurm: a one-node cluster on this machine (slurmctld and slurmd on
//! localhost, started by `scripts/slurm/local-cluster.sh`). `sbatch scripts/slurm/train.sbatch`
//! with 2 tasks trains what one process trains, on CPUs and on GPUs (the software GPU's two
//! devices where there are none), the GPU ranks meeting through MPI or, without MPI, through a
//! rendezvous file; `srun -n 2 rekindle bench all-reduce` checks its
//! sums; a task killed mid-job ends the job with an error within 60 s and leaves the last good
//! checkpoint intact.
//!
//! Where Slurm is missing or slurmd cannot start, each test says why and skips; with
//! `REKINDLE_REQUIRE_SLURM=1` (CI sets it) that is a failure instead, so CI never passes without
//! running them. Needs the `mpi` feature (srun starts MPI ranks through PMIx).
#![cfg(feature = "mpi")]

mod common;

use common::{assert_same_params, config, TINY_RANKS as TINY};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The cluster's SLURM_CONF, started once per test binary; `None` (after saying why) where it
/// cannot run here.
fn slurm() -> Option<&'static str> {
    static CONF: OnceLock<Result<String, String>> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let o = Command::new("bash").arg("scripts/slurm/local-cluster.sh").arg("start").output().map_err(|e| format!("cannot run bash: {e}"))?;
        let out = String::from_utf8_lossy(&o.stdout);
        match out.lines().find_map(|l| l.strip_prefix("export SLURM_CONF=")) {
            Some(conf) if o.status.success() => Ok(conf.to_string()),
            _ => Err(format!("scripts/slurm/local-cluster.sh start failed: {}{}", out, String::from_utf8_lossy(&o.stderr))),
        }
    });
    match conf {
        Ok(c) => Some(c),
        Err(why) if std::env::var("REKINDLE_REQUIRE_SLURM").is_ok_and(|v| v == "1") => panic!("REKINDLE_REQUIRE_SLURM=1 but no Slurm cluster: {why}"),
        Err(why) => {
            eprintln!("skipped: no Slurm cluster on this machine: {why}");
            None
        }
    }
}

/// The one-node cluster has 2 CPUs: one test's job at a time, so that no job waits behind
/// another's past its test's time limits (the requeue test holds the node for minutes).
fn one_job_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn dir(name: &str) -> PathBuf {
    common::dir("slurm", name)
}

/// A Slurm client command against the local cluster, with rekindle's test binary as REKINDLE_BIN.
fn client(conf: &str, tool: &str, args: &[&str]) -> Command {
    let mut c = Command::new(tool);
    c.env("SLURM_CONF", conf).env("REKINDLE_BIN", env!("CARGO_BIN_EXE_rekindle")).args(args);
    c
}

fn output(mut c: Command) -> Output {
    c.output().expect("run a Slurm client")
}

/// `sbatch` of train.sbatch with 2 tasks on the one node; returns the job id.
fn submit(conf: &str, d: &Path, args: &[&str]) -> String {
    submit_with(conf, d, args, &[])
}

/// [`submit`] with extra environment for the job (sbatch exports the submitter's environment).
fn submit_with(conf: &str, d: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let log = d.join("job-%j.out");
    let mut all = vec!["--parsable", "--ntasks", "2", "--nodes", "1", "--ntasks-per-node", "2", "--cpus-per-task", "1", "--time", "5", "--output", log.to_str().unwrap(), "scripts/slurm/train.sbatch"];
    all.extend(args);
    let mut c = client(conf, "sbatch", &all);
    c.envs(env.iter().copied());
    #[cfg(feature = "gpu")]
    rekindle_gpu_sim::configure(&mut c);
    let o = output(c);
    assert!(o.status.success(), "sbatch failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().split(';').next().unwrap().to_string()
}

/// `scontrol show job` fields (`JobState`, `ExitCode`, ...) of a job that is still known.
fn job(conf: &str, id: &str) -> String {
    String::from_utf8_lossy(&output(client(conf, "scontrol", &["show", "job", id])).stdout).into_owned()
}

/// Waits until the job leaves the queue; returns its `scontrol` record and how long it took.
fn wait_job(conf: &str, id: &str, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let record = job(conf, id);
        let state = record.split_whitespace().find_map(|f| f.strip_prefix("JobState=")).unwrap_or("").to_string();
        if !record.is_empty() && !["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(&state.as_str()) {
            return (record, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = output(client(conf, "scancel", &[id]));
            panic!("job {id} still {state} after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn job_log(d: &Path, id: &str) -> String {
    std::fs::read_to_string(d.join(format!("job-{id}.out"))).unwrap_or_default()
}

#[test]
fn an_sbatch_job_of_two_tasks_trains_what_one_process_trains() {
    sbatch_equivalence("equivalence", &[], &[], "MPI (");
}

/// The GPU flags and the software GPU's two devices (where the machine has no GPU).
#[cfg(feature = "gpu")]
const GPU: [&str; 4] = ["--device", "cuda", "--precision", "fp32"];

#[cfg(feature = "gpu")]
#[test]
fn an_sbatch_job_of_two_gpu_tasks_over_mpi_trains_what_one_gpu_trains() {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Sim {
        let env = [("REKINDLE_LAUNCH", "mpi"), ("REKINDLE_SIM_DEVICES", "2"), ("REKINDLE_SIM_QUIET", "1")];
        sbatch_equivalence("gpu-mpi", &GPU, &env, "2 ranks for host values, NCCL, 2 ranks for gradients on cuda:0");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn an_sbatch_job_of_two_gpu_tasks_without_mpi_meets_through_a_file_and_trains_what_one_gpu_trains() {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Sim {
        let meet = dir("gpu-file-meet");
        let meet = meet.to_str().unwrap();
        let env = [("REKINDLE_LAUNCH", "file"), ("REKINDLE_RENDEZVOUS_DIR", meet), ("REKINDLE_SIM_DEVICES", "2"), ("REKINDLE_SIM_QUIET", "1")];
        sbatch_equivalence("gpu-file", &GPU, &env, "NCCL, 2 ranks on cuda:0");
    }
}

/// A 2-task `sbatch` of train.sbatch with the extra `flags` and job environment `env`, against
/// one process with the same flags; rank 0's log names its communicator with `comm`.
fn sbatch_equivalence(name: &str, flags: &[&str], env: &[(&str, &str)], comm: &str) {
    let Some(conf) = slurm() else { return };
    let _node = one_job_at_a_time();
    let d = dir(name);
    let cfg = config(&d, TINY);
    let (one, job_dir) = (d.join("one"), d.join("job"));
    let mut single = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    single.args(["train", &cfg, "--out", one.to_str().unwrap()]).args(flags).envs(env.iter().copied());
    #[cfg(feature = "gpu")]
    rekindle_gpu_sim::configure(&mut single);
    let o = single.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut args = vec![cfg.as_str(), "--out", job_dir.to_str().unwrap()];
    args.extend(flags);
    let id = submit_with(conf, &d, &args, env);
    let (record, took) = wait_job(conf, &id, Duration::from_secs(240));
    let log = job_log(&d, &id);
    eprintln!("job {id} took {:.1} s; its output:\n{log}", took.as_secs_f64());
    assert!(record.contains("JobState=COMPLETED") && record.contains("ExitCode=0:0"), "{record}\n{log}");
    assert!(log.contains("2 ranks") && log.contains(comm), "rank 0 names the world and its communicator ({comm}): {log}");
    for step in 0..3 {
        let name = format!("checkpoints/step-{step}.safetensors");
        assert_same_params(&job_dir.join(&name), &one.join(&name), &format!("Slurm job of 2 tasks vs 1 process, time step {step}"));
    }
    let summary = |d: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap() };
    assert_eq!(summary(&one)["accuracy_matrix"], summary(&job_dir)["accuracy_matrix"]);
}

#[test]
fn srun_all_reduce_checks_its_sums_on_two_tasks() {
    let Some(conf) = slurm() else { return };
    let _node = one_job_at_a_time();
    let o = output(client(conf, "srun", &["--mpi=pmix", "-n", "2", "--time", "2", env!("CARGO_BIN_EXE_rekindle"), "bench", "all-reduce", "--mbytes", "2", "--iters", "3", "--warmup", "1", "--json"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", out, String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let worlds = report["worlds"].as_array().unwrap();
    assert_eq!(worlds.iter().map(|w| w["world"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2], "{report}");
    assert!(worlds[1]["busbw_gbytes_per_sec"].as_f64().unwrap() > 0.0, "{report}");
}

/// The pid of task `rank` of Slurm job `id`.
fn task_pid(id: &str, rank: usize) -> Option<i32> {
    let wanted = [format!("SLURM_JOB_ID={id}"), format!("SLURM_PROCID={rank}")];
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        let is_rekindle = cmdline.split(|&b| b == 0).next().is_some_and(|a| a.ends_with(b"rekindle"));
        (is_rekindle && wanted.iter().all(|w| vars.contains(&w.as_bytes()))).then_some(pid)
    })
}

#[test]
fn a_killed_task_ends_the_job_with_an_error_and_keeps_the_last_checkpoint() {
    let Some(conf) = slurm() else { return };
    let _node = one_job_at_a_time();
    let d = dir("killed");
    let cfg = config(&d, &TINY.replace("steps: 8,", "steps: 400,"));
    let job_dir = d.join("job");
    let id = submit(conf, &d, &[&cfg, "--out", job_dir.to_str().unwrap()]);
    let started = Instant::now();
    while !job_dir.join("state.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(180), "time step 0 never finished: {}", job_log(&d, &id));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = task_pid(&id, 1).unwrap_or_else(|| panic!("no task 1 of job {id}"));
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let (record, took) = wait_job(conf, &id, Duration::from_secs(60));
    let log = job_log(&d, &id);
    eprintln!("job {id} ended {:.1} s after task 1 was killed: {record}\n{log}", took.as_secs_f64());
    assert!(!record.contains("JobState=COMPLETED") && !record.contains("ExitCode=0:0"), "the job must fail: {record}");
    // The last good checkpoint (time step 0) is whole: state.json points at it and it loads.
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(job_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_steps"], 1, "killed during time step 1");
    let values = common::params(&job_dir.join("checkpoints/step-0.safetensors"));
    assert!(!values.is_empty() && values.iter().all(|v| v.is_finite()));
    assert!(!job_dir.join("summary.json").exists() && !job_dir.join("checkpoints/step-1.safetensors").exists());
}

#[test]
fn a_job_near_its_time_limit_checkpoints_inside_a_step_is_requeued_and_ends_as_an_uninterrupted_run() {
    let Some(conf) = slurm() else { return };
    let _node = one_job_at_a_time();
    let d = dir("requeue");
    // Over a minute of training, longer than the first incarnation's one-minute limit however
    // early or late Slurm sends its warning (it may send it up to a minute early).
    let cfg = config(&d, &TINY.replace("steps: 8,", "steps: 6000,"));
    let (one, job_dir) = (d.join("one"), d.join("job"));
    // The uninterrupted run, alongside the job.
    let uninterrupted = Command::new(env!("CARGO_BIN_EXE_rekindle")).args(["train", &cfg, "--out", one.to_str().unwrap()]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // A one-minute limit, and the warning 45 s before it (Slurm may send it up to a minute early).
    let log = d.join("job-%j.out");
    let args = ["--parsable", "--ntasks", "2", "--nodes", "1", "--ntasks-per-node", "2", "--cpus-per-task", "1", "--time", "1", "--signal", "B:USR1@45", "--output", log.to_str().unwrap()];
    let run = [cfg.as_str(), "--out", job_dir.to_str().unwrap(), "--set", "budget.checkpoint_every=100"];
    let o = output(client(conf, "sbatch", &[&args[..], &["scripts/slurm/train.sbatch"], &run[..]].concat()));
    assert!(o.status.success(), "sbatch failed: {}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().split(';').next().unwrap().to_string();
    let started = Instant::now();
    let mut requeued_at: Option<Instant> = None;
    let record = loop {
        let record = job(conf, &id);
        let field = |name: &str| record.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap_or("").to_string();
        let (state, restarts) = (field("JobState="), field("Restarts="));
        match state.as_str() {
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" => break record,
            // Slurm holds a requeued job back for about two minutes: once the node has had a few
            // seconds to clean up after the stopped incarnation (started at once, one failed to
            // launch), start it, with ten minutes to finish in (its warning then comes long after
            // the run ends).
            "PENDING" if restarts != "0" => {
                if requeued_at.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5) {
                    drop(output(client(conf, "scontrol", &["update", &format!("JobId={id}"), "StartTime=now", "TimeLimit=10"])));
                }
            }
            _ => requeued_at = None,
        }
        if started.elapsed() > Duration::from_secs(600) {
            let _ = output(client(conf, "scancel", &[&id]));
            panic!("job {id} still {state} after 600 s: {}", job_log(&d, &id));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = job_log(&d, &id);
    eprintln!("job {id} took {:.1} s; its output:\n{log}", started.elapsed().as_secs_f64());
    let o = uninterrupted.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(record.contains("JobState=COMPLETED") && record.contains("ExitCode=0:0"), "{record}\n{log}");
    assert!(log.contains("time limit near") && log.contains("stopped by SIGUSR1") && log.contains("requeued job") && log.contains("resuming"), "{log}");
    // It stopped inside a time step, after the last checkpoint there, and resumed from it.
    assert!(log.contains(&format!("rekindle train --resume {}", job_dir.display())), "{log}");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(job_dir.join("run.json")).unwrap()).unwrap();
    assert!(record["status"] == "finished" && record["starts"].as_array().unwrap().len() >= 2, "{record}");
    assert!(record["starts"].as_array().unwrap().iter().all(|s| s["world"] == 2), "{record}");
    assert_eq!(common::summary_without_wall(&job_dir), common::summary_without_wall(&one), "every field but wall time");
    // One training line per optimizer step, none lost or repeated across the stops (their loss
    // sums are reduced over 2 ranks, so they differ from one process's in the last bits).
    let position = |d: &Path| -> Vec<(serde_json::Value, serde_json::Value, serde_json::Value, serde_json::Value)> {
        common::train_lines(d).into_iter().map(|l| (l["step"].clone(), l["stage"].clone(), l["iteration"].clone(), l["lr"].clone())).collect()
    };
    assert!(position(&job_dir) == position(&one), "the same training lines, in order");
}
