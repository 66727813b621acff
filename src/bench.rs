//! `rekindle bench step`: times whole training steps (forward, backward, AdamW) on synthetic
//! inputs and reports images/s and achieved GFLOP/s.

use crate::ModelArgs;
use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_model::{ClassifyPass, Flops, MaePass, MaskIds};
use rekindle_tensor::{AdamW, Backend, CpuBackend, OpTime};
use serde::Serialize;
use rekindle_data::{batch_seed, Augment, BatchRequest, Loader, Normalize, SyntheticSpec};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Time full training steps of one model on synthetic data.
    Step(StepArgs),
    /// Time the data loader: synthetic shard, random resized crop + flip + normalise, in batches.
    Data(DataArgs),
}

#[derive(clap::Args)]
pub struct DataArgs {
    /// Side of the stored and of the produced images.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Loader worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed batches (after 2 untimed ones).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DataReport {
    size: u32,
    batch: usize,
    threads: usize,
    batches: usize,
    images_per_sec: f64,
    images_per_sec_per_thread: f64,
    /// Worker threads needed to feed one GPU at 3,000 images/s at this rate.
    threads_for_3000_per_sec: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Supervised classification on full images (soft-target cross-entropy).
    Classify,
    /// MAE reconstruction with 75% of the patches removed.
    Mae,
}

#[derive(clap::Args)]
pub struct StepArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, value_enum, default_value_t = Task::Classify)]
    task: Task,
    /// Timed steps (after `--warmup` untimed ones); the median is reported.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// CPU worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
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
    final_loss: f32,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Step(args) => step(&args),
        BenchCommand::Data(args) => data(&args),
    }
}

fn step(args: &StepArgs) -> Result<()> {
    if args.batch == 0 || args.iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    let mut cpu = CpuBackend::new(args.threads);
    let vit = args.model.build(&mut cpu, 0)?;
    let config = vit.config.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pixels = args.batch * config.channels * config.image_size * config.image_size;
    let images: Vec<f32> = (0..pixels).map(|_| rng.random_range(-2.0f32..2.0)).collect();

    let groups = vit.table.groups(config.depth, 0.65);
    let (m, v) = (cpu.alloc(vit.table.total), cpu.alloc(vit.table.total));
    let mut hp = AdamW { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step: 0, grad_scale: 1.0 };

    enum Pass {
        Classify(ClassifyPass),
        Mae(MaePass),
    }
    let pass = match args.task {
        Task::Classify => {
            let p = ClassifyPass::new(&mut cpu, &vit, args.batch);
            let mut targets = vec![0.0f32; args.batch * config.classes];
            for row in targets.chunks_exact_mut(config.classes) {
                row[rng.random_range(0..config.classes)] = 1.0;
            }
            cpu.upload(p.targets, &targets);
            cpu.upload(p.images(), &images);
            Pass::Classify(p)
        }
        Task::Mae => {
            let p = MaePass::new(&mut cpu, &vit, args.batch);
            cpu.upload(p.images(), &images);
            Pass::Mae(p)
        }
    };

    let mut times = Vec::with_capacity(args.iters);
    let mut loss = f32::NAN;
    for i in 0..args.warmup + args.iters {
        let start = Instant::now();
        vit.zero_grads(&mut cpu);
        loss = match &pass {
            Pass::Classify(p) => {
                p.forward(&mut cpu, &vit);
                p.backward(&mut cpu, &vit, 1.0)
            }
            Pass::Mae(p) => {
                // A fresh random mask every step, as in MAE training.
                let ids = MaskIds::random(i as u64, 0, args.batch, config.patches(), config.kept_patches());
                p.set_mask(&mut cpu, &ids);
                p.forward(&mut cpu, &vit);
                p.backward(&mut cpu, &vit, 1.0)
            }
        };
        hp.step += 1;
        cpu.adamw(vit.params, vit.grads, m, v, &groups, &hp);
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
        if i + 1 == args.warmup && args.profile {
            cpu.start_profile();
        }
        if !args.json {
            eprint!("\rstep {}/{}", i + 1, args.warmup + args.iters);
        }
    }
    if !args.json {
        eprintln!();
    }
    let device = cpu.name();

    let flops = Flops::of(&config);
    let per_image = flops.train(match args.task {
        Task::Classify => flops.classify_forward,
        Task::Mae => flops.mae_forward,
    });
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let report = StepReport {
        preset: args.model.preset.clone(),
        task: args.task,
        batch: args.batch,
        threads: args.threads,
        device,
        iters: args.iters,
        step_seconds_median: median,
        step_seconds_mean: mean,
        images_per_sec: args.batch as f64 / median,
        gflops_per_sec: per_image * args.batch as f64 / median / 1e9,
        train_gflops_per_image: per_image / 1e9,
        final_loss: loss,
    };
    if args.profile {
        print_profile(&cpu.op_times(), times.iter().sum());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {:?} batch {} on {}: {:.3} s/step (median of {}), {:.1} images/s, {:.1} GFLOP/s ({:.3} GFLOP per image), loss {:.4}",
            report.preset,
            report.task,
            report.batch,
            report.device,
            median,
            args.iters,
            report.images_per_sec,
            report.gflops_per_sec,
            report.train_gflops_per_image,
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

fn data(args: &DataArgs) -> Result<()> {
    if args.batch == 0 || args.batches == 0 || args.threads == 0 {
        bail!("--batch, --batches and --threads must be at least 1");
    }
    // Enough distinct images that batches do not hit the same few in cache.
    let per_class = (4 * args.batch / 10).max(10);
    let spec = SyntheticSpec { classes: 10, per_class, size: args.size, seed: 0, drift: 0.0 };
    let shard = Arc::new(spec.generate("synthetic")?);
    let loader = Loader::new(shard.clone(), args.size as usize, Normalize::default_for(3), args.threads, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let warmup = 2;
    let request = |rng: &mut ChaCha8Rng, i: usize| BatchRequest {
        images: (0..args.batch).map(|_| rng.random_range(0..shard.len() as u32)).collect(),
        augment: Some(Augment::LABELLED),
        seed: batch_seed(0, 0, i as u64, 0),
        first: 0,
    };
    for i in 0..warmup {
        loader.submit(request(&mut rng, i));
    }
    for _ in 0..warmup {
        let b = loader.next();
        loader.recycle(b);
    }
    let start = Instant::now();
    for i in 0..args.batches {
        loader.submit(request(&mut rng, warmup + i));
    }
    for _ in 0..args.batches {
        let b = loader.next();
        loader.recycle(b);
    }
    let rate = (args.batch * args.batches) as f64 / start.elapsed().as_secs_f64();
    let per_thread = rate / args.threads as f64;
    let report = DataReport {
        size: args.size,
        batch: args.batch,
        threads: args.threads,
        batches: args.batches,
        images_per_sec: rate,
        images_per_sec_per_thread: per_thread,
        threads_for_3000_per_sec: 3000.0 / per_thread,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "loader, {0}x{0} RGB, random resized crop + flip + normalise, batch {1}, {2} threads: {3:.0} images/s ({4:.0} per thread; {5:.1} threads for 3,000 images/s)",
            args.size, args.batch, args.threads, rate, per_thread, report.threads_for_3000_per_sec
        );
    }
    Ok(())
}
