//! `rekindle bench kernels`: times each op of a training step at one model's encoder shapes on one
//! device. Each op reports its time and its achieved TFLOP/s (matrix products and attention) or
//! GB/s (everything else). It also reports that rate as a fraction of the device's ceilings, which
//! are measured at start: the copy bandwidth of a large buffer, and the rate of a large square
//! fp32 GEMM (the backend's arithmetic).
//!
//! The ops are the table of `rekindle_tensor::cases` (the one the CUDA parity test checks at the
//! same shapes), with its counting conventions.

use crate::model_args::ModelArgs;
use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_tensor::cases::{op_cases, Place, Shapes, Work};
use rekindle_tensor::{Backend, Gemm, Tensor};
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args)]
pub struct KernelArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Images per step; the ops run at the encoder's shapes for this batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
    /// CPU worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed calls per op (after one untimed call); the mean is reported.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Side of the square GEMM that measures the GEMM ceiling (default: 8192 on a GPU, 1024 on
    /// the CPU; smaller for a quick look, or on the software GPU, where only the code path counts).
    #[arg(long, value_name = "N")]
    ceiling_size: Option<usize>,
}

#[derive(Serialize)]
struct Ceilings {
    copy_gbytes_per_sec: f64,
    gemm_tflops: f64,
    gemm_size: usize,
}

#[derive(Serialize)]
struct KernelReport {
    kernel: &'static str,
    shape: String,
    seconds: f64,
    tflops: Option<f64>,
    gbytes_per_sec: Option<f64>,
    /// Of the GEMM ceiling (TFLOP/s ops) or the copy ceiling (GB/s ops).
    fraction_of_ceiling: f64,
}

#[derive(Serialize)]
struct Report {
    device: String,
    preset: String,
    batch: usize,
    ceilings: Ceilings,
    kernels: Vec<KernelReport>,
}

/// Mean seconds per call of `op` over `iters` calls, after one untimed call.
fn time(be: &mut dyn Backend, iters: usize, mut op: impl FnMut(&mut dyn Backend)) -> f64 {
    op(be);
    be.synchronize();
    let start = Instant::now();
    for _ in 0..iters {
        op(be);
    }
    be.synchronize();
    start.elapsed().as_secs_f64() / iters as f64
}

fn random(be: &mut dyn Backend, rng: &mut ChaCha8Rng, n: usize, place: Place) -> Tensor {
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let t = match place {
        Place::Activation => be.alloc_activations(n),
        Place::Weights => be.alloc_weights(n),
        Place::F32 => be.alloc(n),
    };
    be.upload(t, &v);
    t
}

/// The copy bandwidth (f32), and the GEMM rate in the backend's arithmetic (bf16 tensor cores
/// under mixed precision).
fn ceilings(be: &mut dyn Backend, rng: &mut ChaCha8Rng, on_gpu: bool, size: Option<usize>) -> Ceilings {
    let n = if on_gpu { 1 << 26 } else { 1 << 24 };
    let (src, dst) = (random(be, rng, n, Place::F32), be.alloc(n));
    let copy = time(be, 5, |be| be.copy(dst, src));
    be.free(src);
    be.free(dst);
    let size = size.unwrap_or(if on_gpu { 8192 } else { 1024 });
    let (a, b, c) = (random(be, rng, size * size, Place::Activation), random(be, rng, size * size, Place::Activation), be.alloc_activations(size * size));
    let gemm = time(be, 3, |be| be.gemm(&Gemm::new(size, size, size, a, b, c)));
    for t in [a, b, c] {
        be.free(t);
    }
    Ceilings { copy_gbytes_per_sec: 8.0 * n as f64 / copy / 1e9, gemm_tflops: 2.0 * (size as f64).powi(3) / gemm / 1e12, gemm_size: size }
}

pub fn run(args: &KernelArgs) -> Result<()> {
    if args.batch == 0 || args.iters == 0 || args.ceiling_size == Some(0) {
        bail!("--batch, --iters and --ceiling-size must be at least 1");
    }
    let c = args.model.config()?;
    let mut be = args.device.backend(args.threads)?;
    let be = be.as_mut();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let on_gpu = args.device.device != "cpu";
    let precision = args.device.precision();
    let ceilings = ceilings(be, &mut rng, on_gpu, args.ceiling_size);

    let b = args.batch;
    let shapes = Shapes {
        batch: b,
        tokens: c.patches() + 1,
        kept_tokens: c.kept_patches() + 1,
        dim: c.dim,
        heads: c.heads,
        hidden: c.dim * c.mlp_ratio,
        classes: c.classes,
        patch: c.patch_shape(b),
        params: 12 * c.dim * c.dim * c.depth,
    };
    let mut rows_out: Vec<(&'static str, String, f64, Work)> = Vec::new();
    for (i, case) in op_cases(&shapes, precision.bytes() as f64).into_iter().enumerate() {
        let operands = case.prepare(be, i as u64);
        let seconds = time(be, args.iters, |be| {
            case.run(be, &operands);
        });
        operands.free(be);
        rows_out.push((case.name, case.shape, seconds, case.work));
    }

    let kernels: Vec<KernelReport> = rows_out
        .into_iter()
        .map(|(kernel, shape, seconds, work)| match work {
            Work::Flops(fl) => {
                let tflops = fl / seconds / 1e12;
                KernelReport { kernel, shape, seconds, tflops: Some(tflops), gbytes_per_sec: None, fraction_of_ceiling: tflops / ceilings.gemm_tflops }
            }
            Work::Bytes(by) => {
                let gbs = by / seconds / 1e9;
                KernelReport { kernel, shape, seconds, tflops: None, gbytes_per_sec: Some(gbs), fraction_of_ceiling: gbs / ceilings.copy_gbytes_per_sec }
            }
        })
        .collect();
    let report = Report { device: be.name(), preset: args.model.preset.clone(), batch: b, ceilings, kernels };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} at batch {} on {}; ceilings: copy {:.1} GB/s, {} GEMM ({n}³) {:.2} TFLOP/s",
        report.preset,
        b,
        report.device,
        report.ceilings.copy_gbytes_per_sec,
        precision,
        report.ceilings.gemm_tflops,
        n = report.ceilings.gemm_size
    );
    println!("{:<22} {:>22} {:>11} {:>14} {:>10}", "op", "shape", "time ms", "rate", "ceiling");
    for k in &report.kernels {
        let rate = match (k.tflops, k.gbytes_per_sec) {
            (Some(t), _) => format!("{t:.3} TFLOP/s"),
            (_, Some(g)) => format!("{g:.1} GB/s"),
            _ => String::new(),
        };
        println!("{:<22} {:>22} {:>11.4} {:>14} {:>9.1}%", k.kernel, k.shape, k.seconds * 1e3, rate, 100.0 * k.fraction_of_ceiling);
    }
    Ok(())
}
