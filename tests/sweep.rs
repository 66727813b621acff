//! `rekindle sweep`, end to end on the binary: a 2 × 2 sweep on the quickstart (seeds 0, 1 ×
//! DietCL, ER; each run shortened) finishes and reports; stopped by SIGTERM in its second point
//! and run again, it ends with the uninterrupted sweep's four summaries; so does `--jobs 2`, a
//! sweep whose every point crashed (REKINDLE_FAULT) and was run again, and the Slurm array
//! script of `--sbatch` run task by task; bad sweeps are refused before anything runs.

mod common;

use common::summary_without_wall;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The swept keys and the shortening: 2 time steps of 10 optimizer steps per point.
const SETS: [&str; 4] = ["seed=0,1", "strategy.name=dietcl,er", "budget.steps=10", "stream.steps=2"];
const POINTS: [&str; 4] = ["seed=0,strategy.name=dietcl", "seed=0,strategy.name=er", "seed=1,strategy.name=dietcl", "seed=1,strategy.name=er"];

fn sweep_command(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
    c.args(["sweep", "configs/quickstart.yaml"]);
    SETS.iter().for_each(|s| _ = c.args(["--set", s]));
    c.arg("--out").arg(out).args(extra).env_remove("REKINDLE_FAULT");
    c
}

fn sweep(out: &Path, extra: &[&str]) -> Output {
    sweep_command(out, extra).output().expect("run rekindle sweep")
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The four points' summaries, wall time and run id aside.
fn summaries(out: &Path) -> Vec<serde_json::Value> {
    POINTS.iter().map(|p| summary_without_wall(&out.join(p))).collect()
}

fn status(point: &Path) -> String {
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(point.join("run.json")).unwrap()).unwrap();
    record["status"].as_str().unwrap().to_string()
}

/// The uninterrupted sweep, run once for every test that compares with it.
fn whole() -> &'static PathBuf {
    static WHOLE: OnceLock<PathBuf> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let out = common::dir("sweep", "whole");
        let t = Instant::now();
        let o = sweep(&out, &[]);
        eprintln!("the uninterrupted 2 x 2 sweep took {:.1} s", t.elapsed().as_secs_f64());
        assert!(o.status.success(), "{}", text(&o));
        out
    })
}

#[test]
fn a_2x2_sweep_on_the_quickstart_finishes_and_reports() {
    let out = whole();
    for p in POINTS {
        assert_eq!(status(&out.join(p)), "finished", "{p}");
        let log = std::fs::read_to_string(out.join(format!("{p}.log"))).unwrap();
        assert!(log.contains("final A(T-1)"), "{p}.log holds the run's output: {log}");
    }
    assert!(out.join("report.png").exists() && out.join("report.md").exists());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("strategy.name=dietcl") && md.contains("strategy.name=er"), "{md}");
    // Run again: every point is skipped, the report is written again, and nothing is retrained.
    let ids: Vec<_> = POINTS.iter().map(|p| std::fs::read_to_string(out.join(p).join("run.json")).unwrap()).collect();
    let o = sweep(out, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches(": already finished, A(T-1) 0.").count(), 4, "{t}");
    assert!(t.contains("sweep: 4 of 4 points finished (4 before this run)") && t.contains("seeds"), "{t}");
    assert_eq!(ids, POINTS.iter().map(|p| std::fs::read_to_string(out.join(p).join("run.json")).unwrap()).collect::<Vec<_>>());
}

#[test]
fn a_sweep_stopped_in_its_second_point_continues_to_the_same_summaries() {
    let expected = summaries(whole());
    let out = common::dir("sweep", "stopped");
    let mut child = sweep_command(&out, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Once the first point has finished and the second has trained a step, SIGTERM the sweep.
    let (first, second) = (out.join(POINTS[0]), out.join(POINTS[1]));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(first.join("summary.json").exists() && std::fs::read_to_string(second.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"type\":\"train\""))) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the second point never trained");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(143), "{t}");
    assert!(t.contains("[2/4] seed=0,strategy.name=er: stopped after") && t.contains("continue the sweep with:"), "{t}");
    assert!(t.contains("sweep: 1 of 4 points finished, 1 stopped, 2 not started"), "{t}");
    assert_eq!(status(&second), "stopped", "the second point checkpointed and stopped");
    assert!(!second.join("summary.json").exists() && !out.join(POINTS[2]).exists());
    let o = sweep(&out, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("[1/4] seed=0,strategy.name=dietcl: already finished") && t.contains("[2/4] seed=0,strategy.name=er: resumed"), "{t}");
    assert!(t.contains("[3/4] seed=1,strategy.name=dietcl: started"), "{t}");
    assert_eq!(summaries(&out), expected, "a stopped and continued sweep ends as the uninterrupted one");
}

#[test]
fn jobs_2_gives_the_same_summaries_as_jobs_1() {
    let expected = summaries(whole());
    let out = common::dir("sweep", "jobs-2");
    let o = sweep(&out, &["--jobs", "2"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / 2).max(1);
    assert!(t.contains(&format!("2 at a time, {threads} thread")), "{t}");
    let config = std::fs::read_to_string(out.join(POINTS[3]).join("config.yaml")).unwrap();
    assert!(config.contains(&format!("\nthreads: {threads}\n")), "{config}");
    assert_eq!(summaries(&out), expected);
}

#[test]
fn a_crashed_point_ends_alone_and_is_resumed_when_the_sweep_runs_again() {
    let expected = summaries(whole());
    let out = common::dir("sweep", "crashed");
    // Every point aborts (as a SIGKILL would end it) at its last time step's evaluation.
    let o = sweep_command(&out, &[]).env("REKINDLE_FAULT", "eval:1").output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert_eq!(t.matches("killed by signal 6): REKINDLE_FAULT: aborting at eval:1").count(), 4, "each point failed alone: {t}");
    assert!(t.contains("sweep: 0 of 4 points finished, 4 failed") && t.contains("4 of 4 points failed"), "{t}");
    let o = sweep(&out, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches(": resumed").count(), 4, "{t}");
    assert_eq!(summaries(&out), expected);
}

#[test]
fn the_sbatch_array_script_trains_one_point_per_task() {
    let expected = summaries(whole());
    let out = common::dir("sweep", "sbatch");
    let o = sweep(&out, &["--sbatch"]);
    let t = text(&o);
    let script = out.join("sweep.sbatch");
    assert!(o.status.success() && t.contains(&format!("sbatch --array=0-3 {}", script.display())), "{t}");
    assert!(!out.join(POINTS[0]).exists(), "--sbatch trains nothing itself");
    // Each array task as Slurm would start it (task 1 twice: the second finds it finished).
    for task in ["0", "1", "2", "3", "1"] {
        let o = Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", task).env("SLURM_JOB_ID", format!("7{task}")).env_remove("REKINDLE_FAULT").output().unwrap();
        assert!(o.status.success(), "task {task}: {}", text(&o));
    }
    assert_eq!(summaries(&out), expected);
    let o = Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", "4").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "no task 4: {}", text(&o));
    // The sweep itself then finds every point finished and reports.
    let o = sweep(&out, &[]);
    assert!(o.status.success() && text(&o).matches("already finished").count() == 4, "{}", text(&o));
    assert!(out.join("report.md").exists());
}

#[test]
fn bad_sweeps_are_refused_before_anything_runs() {
    let out = common::dir("sweep", "refused");
    let refused = |sets: &[&str], needles: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rekindle"));
        c.args(["sweep", "configs/quickstart.yaml"]);
        sets.iter().for_each(|s| _ = c.args(["--set", s]));
        let o = c.arg("--out").arg(&out).output().unwrap();
        let t = text(&o);
        assert!(!o.status.success() && needles.iter().all(|n| t.contains(n)), "{sets:?}: {t}");
        assert!(std::fs::read_dir(&out).unwrap().next().is_none(), "{sets:?} left files behind");
    };
    refused(&["seed=0,1", "seed=2"], &["seed is set twice"]);
    refused(&["seed=0,,1"], &["an empty value"]);
    refused(&["strategy.name=dietcl,bogus"], &["point strategy.name=bogus", "bogus"]);
    // A sweep directory whose points hold runs of another config is not this sweep's.
    let o = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(["sweep", "configs/quickstart.yaml", "--set", "seed=0,1", "--set", "strategy.name=dietcl,er", "--set", "budget.steps=3", "--set", "stream.steps=2", "--out"])
        .arg(whole())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success() && t.contains("budget.steps: 10 -> 3") && t.contains("give this sweep its own --out DIR"), "{t}");
    let o = Command::new(env!("CARGO_BIN_EXE_rekindle")).args(["sweep", "configs/quickstart.yaml", "--", "--out", "x"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("the sweep chooses each point's directory"), "{}", text(&o));
}
