//! `rekindle bench all-reduce`: times in-place all-reduces (sum) of one f32 buffer at each world
//! size up to the launcher's, over MPI with host buffers or over NCCL with GPU buffers. It
//! reports the algorithm bandwidth `bytes / time` and the bus bandwidth `algbw · 2 (w − 1) / w`,
//! as nccl-tests does, so the numbers compare with NVIDIA's published ones. Each measurement
//! first checks the result: every rank contributes `rank + 1`, so each value must be
//! `w (w + 1) / 2`.

use super::measure::{each_world_size, median};
use anyhow::{bail, Result};
use rekindle_comm::{Comm, Launch, Reduce};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// MPI over host memory.
    Cpu,
    /// NCCL over the GPU of each rank's local rank (build with `--features cuda`).
    Cuda,
}

#[derive(clap::Args)]
pub struct AllReduceArgs {
    /// Buffer size in MB (1e6 bytes) of f32 values; ViT-B/16 with its MAE decoder has 450 MB of
    /// fp32 gradients.
    #[arg(long, default_value_t = 256.0)]
    mbytes: f64,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// Timed all-reduces per world size (after `--warmup` untimed ones); the median is reported.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct WorldReport {
    world: usize,
    seconds: f64,
    algbw_gbytes_per_sec: f64,
    /// None at world size 1, where nothing crosses a link.
    busbw_gbytes_per_sec: Option<f64>,
}

#[derive(Serialize)]
struct AllReduceReport {
    device: Device,
    comm: String,
    mbytes: f64,
    worlds: Vec<WorldReport>,
}

/// Checks an all-reduced buffer whose ranks contributed `rank + 1`.
fn check_sum(values: &[f32], world: usize) -> Result<()> {
    let want = (world * (world + 1) / 2) as f32;
    match values.iter().position(|&v| v != want) {
        Some(i) => bail!("all-reduce over {world} ranks is wrong: value {i} is {} instead of {want}", values[i]),
        None => Ok(()),
    }
}

pub fn run(args: &AllReduceArgs) -> Result<()> {
    if args.iters == 0 || args.mbytes.is_nan() || args.mbytes <= 0.0 {
        bail!("--iters must be at least 1 and --mbytes positive");
    }
    let launch = Launch::from_env()?;
    let n = (args.mbytes * 1e6 / 4.0).round().max(1.0) as usize;
    let mut describe = String::new();
    let mut measure = |comm: &dyn Comm| -> Result<(usize, f64)> {
        let mut times = match args.device {
            Device::Cpu => {
                describe = comm.describe();
                host_times(comm, n, args.warmup + args.iters)?
            }
            Device::Cuda => {
                describe = format!("NCCL, bootstrapped over {}", comm.describe());
                nccl_times(&launch, comm, n, args.warmup + args.iters)?
            }
        };
        Ok((comm.world(), median(&mut times[args.warmup..])))
    };
    let measured = each_world_size(&launch, &mut measure)?;
    if launch.rank != 0 {
        return Ok(());
    }
    let bytes = (n * 4) as f64;
    let worlds = measured
        .iter()
        .map(|&(w, t)| WorldReport {
            world: w,
            seconds: t,
            algbw_gbytes_per_sec: bytes / t / 1e9,
            busbw_gbytes_per_sec: (w > 1).then(|| bytes / t * 2.0 * (w - 1) as f64 / w as f64 / 1e9),
        })
        .collect();
    let report = AllReduceReport { device: args.device, comm: describe, mbytes: bytes / 1e6, worlds };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("all-reduce (sum, in place) of {:.1} MB of f32 over {}", report.mbytes, report.comm);
    println!("{:>6} {:>12} {:>12} {:>12}", "world", "time ms", "algbw GB/s", "busbw GB/s");
    for w in &report.worlds {
        let bus = w.busbw_gbytes_per_sec.map_or("-".into(), |b| format!("{b:.2}"));
        println!("{:>6} {:>12.3} {:>12.2} {:>12}", w.world, w.seconds * 1e3, w.algbw_gbytes_per_sec, bus);
    }
    Ok(())
}

/// Seconds per all-reduce of `n` host values, `count` times; the first result is checked.
fn host_times(comm: &dyn Comm, n: usize, count: usize) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let mut data = vec![(comm.rank() + 1) as f32; n];
        let start = Instant::now();
        comm.all_reduce(&mut data, Reduce::Sum)?;
        times.push(start.elapsed().as_secs_f64());
        if i == 0 {
            check_sum(&data, comm.world())?;
        }
    }
    Ok(times)
}

/// Seconds per NCCL all-reduce of `n` values on this rank's GPU, `count` times; the first result
/// is checked. The NCCL id travels over `comm`.
#[cfg(feature = "gpu")]
fn nccl_times(launch: &Launch, comm: &dyn Comm, n: usize, count: usize) -> Result<Vec<f64>> {
    use rekindle_comm::{Bootstrap, Nccl};
    Nccl::available()?;
    let ctx = cudarc::driver::CudaContext::new(launch.local_rank)?;
    let stream = ctx.new_stream()?;
    let ranks = Launch { rank: comm.rank(), world: comm.world(), ..launch.clone() };
    let nccl = Nccl::init(&ranks, stream.clone(), Bootstrap::Comm(comm), std::time::Duration::from_secs(600))?;
    let mut data = stream.clone_htod(&vec![(comm.rank() + 1) as f32; n])?;
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        if i == 1 {
            // Restore the inputs after the checked first sum.
            stream.memcpy_htod(&vec![(comm.rank() + 1) as f32; n], &mut data)?;
            stream.synchronize()?;
        }
        let start = Instant::now();
        nccl.all_reduce_slice(&mut data, Reduce::Sum)?;
        nccl.synchronize("all-reduce")?;
        times.push(start.elapsed().as_secs_f64());
        if i == 0 {
            check_sum(&stream.clone_dtoh(&data)?, comm.world())?;
        }
    }
    Ok(times)
}

#[cfg(not(feature = "gpu"))]
fn nccl_times(_launch: &Launch, _comm: &dyn Comm, _n: usize, _count: usize) -> Result<Vec<f64>> {
    bail!("--device cuda needs a build with GPU support: cargo build --release --features mpi,cuda")
}
