//! `rekindle bench data`: loader throughput with augmentation.

use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_data::{batch_seed, Augment, BatchRequest, Loader, Normalize, SyntheticSpec};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

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


pub fn run(args: &DataArgs) -> Result<()> {
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
