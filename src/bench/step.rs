//! `rekindle bench step`: times whole training steps (forward, backward, AdamW) on synthetic
//! inputs and reports images/s and achieved GFLOP/s.

use super::measure::median;
use super::workload::{bf16_peak_tflops, StepSettings, Task, Workload};
use anyhow::Result;
use rekindle_tensor::OpTime;
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Instant;

#[derive(clap::Args)]
pub struct StepArgs {
    #[command(flatten)]
    settings: StepSettings,
    /// Also time every backend op over the timed steps and print where the time goes.
    #[arg(long)]
    profile: bool,
}

#[derive(Serialize)]
struct StepReport {
    preset: String,
    task: Task,
    batch: usize,
    threads: usize,
    device: String,
    iters: usize,
    step_seconds_median: f64,
    step_seconds_mean: f64,
    images_per_sec: f64,
    gflops_per_sec: f64,
    train_gflops_per_image: f64,
    /// Achieved FLOP/s over the GPU's dense bf16 peak (None on CPU or an unknown GPU).
    mfu: Option<f64>,
    final_loss: f32,
}

pub fn run(step_args: &StepArgs) -> Result<()> {
    let args = &step_args.settings;
    args.check()?;
    let mut be = args.device.backend(args.threads)?;
    let be = be.as_mut();
    let mut work = Workload::new(be, &args.model, args.task, args.batch)?;
    let mut times = Vec::with_capacity(args.iters);
    let mut loss = f32::NAN;
    // On a terminal the progress rewrites one line; in a log (a pipe, a file) each step is a line.
    let in_place = std::io::stderr().is_terminal();
    for i in 0..args.warmup + args.iters {
        let start = Instant::now();
        loss = work.forward_backward(be, i);
        work.update(be);
        be.synchronize();
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
        if i + 1 == args.warmup && step_args.profile {
            be.start_profile();
        }
        if !args.json && in_place {
            eprint!("\rstep {}/{}", i + 1, args.warmup + args.iters);
        } else if !args.json {
            eprintln!("step {}/{}", i + 1, args.warmup + args.iters);
        }
    }
    if !args.json && in_place {
        eprintln!();
    }
    let per_image = work.flops_per_step() / args.batch as f64;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let total: f64 = times.iter().sum();
    let median = median(&mut times);
    let report = StepReport {
        preset: args.model.preset.clone(),
        task: args.task,
        batch: args.batch,
        threads: args.threads,
        device: be.name(),
        iters: args.iters,
        step_seconds_median: median,
        step_seconds_mean: mean,
        images_per_sec: args.batch as f64 / median,
        gflops_per_sec: per_image * args.batch as f64 / median / 1e9,
        train_gflops_per_image: per_image / 1e9,
        mfu: bf16_peak_tflops(&be.name()).map(|peak| per_image * args.batch as f64 / median / (peak * 1e12)),
        final_loss: loss,
    };
    if step_args.profile {
        print_profile(&be.op_times(), total);
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {:?} batch {} on {}: {:.3} s/step (median of {}), {:.1} images/s, {:.1} GFLOP/s ({:.3} GFLOP per image){}, loss {:.4}",
            report.preset,
            report.task,
            report.batch,
            report.device,
            median,
            args.iters,
            report.images_per_sec,
            report.gflops_per_sec,
            report.train_gflops_per_image,
            report.mfu.map_or(String::new(), |m| format!(", MFU {:.1}% of dense bf16 peak", 100.0 * m)),
            loss
        );
    }
    Ok(())
}

/// Per-op wall time over the timed steps, as a share of the step time.
fn print_profile(ops: &[OpTime], total: f64) {
    let timed: f64 = ops.iter().map(|o| o.seconds).sum();
    eprintln!("{:<22} {:>10} {:>8} {:>7}", "op", "seconds", "calls", "share");
    for o in ops {
        eprintln!("{:<22} {:>10.4} {:>8} {:>6.1}%", o.op, o.seconds, o.calls, 100.0 * o.seconds / total);
    }
    eprintln!("{:<22} {:>10.4} {:>8} {:>6.1}%", "(outside ops)", total - timed, "", 100.0 * (total - timed) / total);
}
