//! NCCL at world size 1 on this machine's first GPU, and across two processes on the software GPU
//! (crates/gpu-sim, two simulated devices), which joins them through a rendezvous file.
//!
//! At one rank every reduction is the identity, so the checks that matter are out of place: the
//! result lands in a zeroed buffer only if NCCL ran (the host paths stage out of place too). At
//! two ranks the sums are checked exactly, and the failures a cluster sees are provoked: ranks
//! that call different collectives, a rank that exits, and a rank that stalls, which the watchdog
//! ends within the timeout.
#![cfg(feature = "cuda")]

use rekindle_comm::{Bootstrap, Comm, Launch, Nccl, Reduce, Single};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn nccl_all_reduces_at_world_size_one() {
    rekindle_gpu_sim::install();
    if let Err(e) = Nccl::available() {
        rekindle_gpu_sim::skip(&e.to_string());
        return;
    }
    let ctx = cudarc::driver::CudaContext::new(0).expect("a GPU");
    let stream = ctx.new_stream().unwrap();
    let nccl = Nccl::init(&Launch::SINGLE, stream.clone(), Bootstrap::Comm(&Single), Duration::from_secs(60)).expect("NCCL init");
    assert_eq!((nccl.rank(), nccl.world()), (0, 1));
    let values: Vec<f32> = (0..1_000_003).map(|i| (i % 977) as f32 * 0.25 - 3.0).collect();
    let mut device = stream.clone_htod(&values).unwrap();
    nccl.all_reduce_slice(&mut device, Reduce::Sum).unwrap();
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&device).unwrap(), values, "a sum over one rank is the identity");
    let address = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut device, &stream).0;
    assert!(nccl.all_reduce_device(address, values.len(), Reduce::Average).unwrap(), "NCCL reads device memory");
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&device).unwrap(), values);
    // Out of place: a collective that did not run leaves the destination zero.
    let mut to = stream.alloc_zeros::<f32>(values.len()).unwrap();
    let to_address = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut to, &stream).0;
    nccl.all_reduce_into(address, to_address, values.len(), Reduce::Sum).unwrap();
    nccl.synchronize("all-reduce").unwrap();
    assert_eq!(stream.clone_dtoh(&to).unwrap(), values, "NCCL wrote the out-of-place result");
    let mut host = values.clone();
    nccl.all_reduce(&mut host, Reduce::Average).unwrap();
    assert_eq!(host, values, "the host path reads back what NCCL wrote (staged out of place)");
    let mut bytes = b"nccl id".to_vec();
    nccl.broadcast(&mut bytes, 0).unwrap();
    assert_eq!(bytes, b"nccl id");
    nccl.barrier().unwrap();
}

/// The environment variable that makes this binary's `rank_process` test one rank of a scenario.
const SCENARIO: &str = "REKINDLE_TEST_NCCL_SCENARIO";

/// This test binary as rank `rank` of 2 in `scenario`, on the software GPU with two devices
/// (rank r on device r), joining through the rendezvous file `rendezvous`.
fn spawn_rank(scenario: &str, rank: usize, rendezvous: &Path) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "rank_process", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .env("REKINDLE_TEST_RANK", rank.to_string())
        .env("REKINDLE_TEST_RENDEZVOUS", rendezvous)
        .env("REKINDLE_SIM_DEVICES", "2")
        .env("REKINDLE_SIM_QUIET", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    rekindle_gpu_sim::use_sim(&mut c);
    c.spawn().unwrap()
}

/// Runs `scenario` on two ranks; returns each rank's output and rank 0's wall time. Skips (None)
/// where a real GPU is installed: two processes need two devices, which the sim provides.
fn two_ranks(scenario: &str) -> Option<(Vec<Output>, Duration)> {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        eprintln!("a CUDA driver is installed: the two-process cases run on the software GPU only");
        return None;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("rekindle-nccl-{}-{scenario}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rendezvous = dir.join("nccl-id");
    let start = Instant::now();
    let (rank0, mut rank1) = (spawn_rank(scenario, 0, &rendezvous), spawn_rank(scenario, 1, &rendezvous));
    let first = rank0.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    // A rank 1 that outlives rank 0 by 5 s is stuck: end it (the stall case does that on purpose).
    let limit = Instant::now() + Duration::from_secs(5);
    while rank1.try_wait().unwrap().is_none() && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = rank1.kill();
    Some((vec![first, rank1.wait_with_output().unwrap()], elapsed))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One rank of a two-process scenario (started by [`two_ranks`]); in a plain test run it returns.
#[test]
fn rank_process() {
    let Ok(scenario) = std::env::var(SCENARIO) else { return };
    let rank: usize = std::env::var("REKINDLE_TEST_RANK").unwrap().parse().unwrap();
    let rendezvous = PathBuf::from(std::env::var("REKINDLE_TEST_RENDEZVOUS").unwrap());
    let launch = Launch { rank, world: 2, local_rank: rank, local_world: 2, source: "test" };
    let ctx = cudarc::driver::CudaContext::new(rank).expect("simulated device");
    let stream = ctx.new_stream().unwrap();
    let nccl = Nccl::init(&launch, stream.clone(), Bootstrap::File(&rendezvous), Duration::from_secs(5)).expect("NCCL init over the rendezvous file");
    assert_eq!((nccl.rank(), nccl.world()), (rank, 2));
    let scale = (rank + 1) as f32;
    match scenario.as_str() {
        "collectives" => {
            // More than one of the sim's 1 MiB chunks, and not a multiple of one.
            let base: Vec<f32> = (0..1_000_003).map(|i| (i % 977) as f32 * 0.25 - 3.0).collect();
            let mine: Vec<f32> = base.iter().map(|v| v * scale).collect();
            let sum: Vec<f32> = base.iter().map(|v| 0.0 + v * 1.0 + v * 2.0).collect();
            let mut device = stream.clone_htod(&mine).unwrap();
            nccl.all_reduce_slice(&mut device, Reduce::Sum).unwrap();
            nccl.synchronize("all-reduce").unwrap();
            assert_eq!(stream.clone_dtoh(&device).unwrap(), sum, "rank {rank}: in-place sum");
            let mut host = mine.clone();
            nccl.all_reduce(&mut host, Reduce::Average).unwrap();
            let average: Vec<f32> = sum.iter().map(|s| s / 2.0).collect();
            assert_eq!(host, average, "rank {rank}: out-of-place average through the host path");
            let mut bytes = if rank == 1 { b"from rank one".to_vec() } else { Vec::new() };
            nccl.broadcast(&mut bytes, 1).unwrap();
            assert_eq!(bytes, b"from rank one", "rank {rank}: broadcast from rank 1 (length too)");
            nccl.barrier().unwrap();
        }
        "mismatch" => {
            let mut values = vec![1.0f32; 10 + rank];
            let e = nccl.all_reduce(&mut values, Reduce::Sum).unwrap_err().to_string();
            eprintln!("rank {rank} error: {e}");
        }
        "exit" => {
            if rank == 1 {
                std::process::exit(3);
            }
            let e = nccl.all_reduce(&mut [1.0], Reduce::Sum).unwrap_err().to_string();
            eprintln!("rank {rank} error: {e}");
        }
        "stall" => {
            if rank == 1 {
                std::thread::sleep(Duration::from_secs(60));
            }
            nccl.all_reduce(&mut [1.0], Reduce::Sum).unwrap();
            unreachable!("rank 0's all-reduce cannot finish while rank 1 sleeps");
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn two_processes_sum_average_and_broadcast_exactly() {
    let Some((outputs, _)) = two_ranks("collectives") else { return };
    for (rank, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}:\n{}", stderr(o));
    }
}

#[test]
fn ranks_calling_different_collectives_both_fail_naming_the_calls() {
    let Some((outputs, _)) = two_ranks("mismatch") else { return };
    for (rank, o) in outputs.iter().enumerate() {
        let err = stderr(o);
        assert!(o.status.success(), "rank {rank}:\n{err}");
        assert!(err.contains("ncclAllReduce of 10 f32 (sum)") && err.contains("ncclAllReduce of 11 f32 (sum)") && err.contains("same collectives in the same order"), "rank {rank}: {err}");
    }
}

#[test]
fn a_rank_that_exits_fails_the_others_collective_naming_it() {
    let Some((outputs, elapsed)) = two_ranks("exit") else { return };
    assert_eq!(outputs[1].status.code(), Some(3));
    let err = stderr(&outputs[0]);
    assert!(outputs[0].status.success() && err.contains("rank 1 (process") && err.contains("exited while rank 0 waited"), "{err}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}

#[test]
fn a_rank_that_stalls_is_ended_by_the_watchdog_within_the_timeout() {
    let Some((outputs, elapsed)) = two_ranks("stall") else { return };
    let err = stderr(&outputs[0]);
    assert_eq!(outputs[0].status.code(), Some(rekindle_comm::TIMED_OUT), "{err}");
    assert!(err.contains("rank 0: ncclAllReduce has waited") && err.contains("timeout 5 s"), "{err}");
    assert!(elapsed < Duration::from_secs(30), "rank 0 waited {elapsed:?} for a rank that sleeps 60 s");
}
