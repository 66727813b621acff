//! `rekindle bench scaling`: run under `mpirun -np N` (or `srun`), it times data-parallel
//! training steps at world sizes 1, 2, 4, … N: the first `w` ranks of the job train, the others
//! wait without spinning so they leave their cores alone. Every rank keeps its micro-batch (weak
//! scaling), so the ideal step time is flat and efficiency is `t(1) / t(w)`. A step is the
//! forward and backward pass, one all-reduce of the fp32 gradients (sum), and AdamW, as in
//! training; the all-reduce time includes waiting for the slowest rank.

use super::measure::{each_world_size, median};
use super::workload::{StepSettings, Task, Workload};
use anyhow::Result;
use rekindle_comm::{Comm, Launch};
use rekindle_coordinator::GradientSum;
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ScalingArgs {
    #[command(flatten)]
    settings: StepSettings,
}

#[derive(Serialize)]
struct WorldReport {
    world: usize,
    step_seconds: f64,
    all_reduce_seconds: f64,
    /// All-reduce time over step time.
    all_reduce_share: f64,
    images_per_sec: f64,
    /// `t(1) / t(w)`.
    efficiency: f64,
    /// nccl-tests' bus bandwidth: bytes / time × 2 (w − 1) / w; none at w = 1.
    bus_gbytes_per_sec: Option<f64>,
}

#[derive(Serialize)]
struct ScalingReport {
    preset: String,
    task: Task,
    batch_per_rank: usize,
    threads_per_rank: usize,
    comm: String,
    gradient_mbytes: f64,
    worlds: Vec<WorldReport>,
}

pub fn run(scaling: &ScalingArgs) -> Result<()> {
    let args = &scaling.settings;
    args.check()?;
    let launch = Launch::from_env()?;
    let threads = if args.threads == 0 { launch.threads_per_rank() } else { args.threads };
    let crate::device::Opened { backend: mut be, ranks } = crate::device::Opened::new(&args.device, threads, launch.local_rank)?;
    let be = be.as_mut();
    let mut work = Workload::new(be, &args.model, args.task, args.batch)?;
    let mut gradient_sum = GradientSum::default();
    let mut describe = String::new();
    let mut measure = |comm: &dyn Comm| -> Result<(usize, f64, f64)> {
        // On GPUs, NCCL over these ranks sums the gradients on the device, as in training.
        let world = Launch { rank: comm.rank(), world: comm.world(), ..launch.clone() };
        let nccl = ranks.nccl(&world, crate::device::IdFrom::Host(comm), std::time::Duration::from_secs(600))?;
        describe = nccl.as_ref().map_or_else(|| comm.describe(), |n| n.describe());
        let (mut steps, mut reduces) = (Vec::new(), Vec::new());
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            let loss = work.forward_backward(be, i);
            be.synchronize();
            let reduce = Instant::now();
            if comm.world() > 1 {
                // The reduction training runs: on the device through NCCL where there is one,
                // else a host copy with the loss packed behind the gradients.
                gradient_sum.all_reduce(be, &work.vit, &mut [loss as f64], nccl.as_deref().unwrap_or(comm))?;
                be.synchronize();
            }
            let reduced = reduce.elapsed().as_secs_f64();
            work.update(be);
            be.synchronize();
            if i >= args.warmup {
                steps.push(start.elapsed().as_secs_f64());
                reduces.push(reduced);
            }
        }
        Ok((comm.world(), median(&mut steps), median(&mut reduces)))
    };
    let measured = each_world_size(&launch, &mut measure)?;
    if launch.rank != 0 {
        return Ok(());
    }
    let bytes = (work.vit.table.total * 4) as f64;
    let single = measured.first().map_or(f64::NAN, |m| m.1);
    let worlds = measured
        .iter()
        .map(|&(w, step, reduce)| WorldReport {
            world: w,
            step_seconds: step,
            all_reduce_seconds: reduce,
            all_reduce_share: reduce / step,
            images_per_sec: (w * args.batch) as f64 / step,
            efficiency: single / step,
            bus_gbytes_per_sec: (w > 1).then(|| bytes / reduce * 2.0 * (w - 1) as f64 / w as f64 / 1e9),
        })
        .collect();
    let report = ScalingReport { preset: args.model.preset.clone(), task: args.task, batch_per_rank: args.batch, threads_per_rank: threads, comm: describe, gradient_mbytes: bytes / 1e6, worlds };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} {:?}, {} images per rank, {} threads per rank, {:.1} MB of gradients, over {}",
        report.preset, report.task, report.batch_per_rank, threads, report.gradient_mbytes, report.comm
    );
    println!("{:>6} {:>10} {:>14} {:>7} {:>10} {:>11} {:>9}", "world", "step s", "all-reduce s", "share", "images/s", "efficiency", "bus GB/s");
    for w in &report.worlds {
        let bus = w.bus_gbytes_per_sec.map_or("-".into(), |b| format!("{b:.2}"));
        println!(
            "{:>6} {:>10.4} {:>14.4} {:>6.1}% {:>10.1} {:>10.1}% {:>9}",
            w.world,
            w.step_seconds,
            w.all_reduce_seconds,
            100.0 * w.all_reduce_share,
            w.images_per_sec,
            100.0 * w.efficiency,
            bus
        );
    }
    Ok(())
}
