//! `rekindle bench kernels`: times each op of a training step at one model's encoder shapes on one
//! device. Each op reports its time and its achieved TFLOP/s (matrix products and attention) or
//! GB/s (everything else). It also reports that rate as a fraction of the device's ceilings, which
//! are measured at start: the copy bandwidth of a large buffer, and the rate of a large square
//! fp32 GEMM (the backend's arithmetic).
//!
//! Counting conventions:
//! - bytes are the minimum each op must move (inputs read once, outputs written once, accumulated
//!   outputs read and written);
//! - attention FLOPs are `4·B·H·T²·D` forward and 2.5× that backward (FlashAttention's convention:
//!   five T×T products, one of them the recomputed scores).

use crate::model_args::ModelArgs;
use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_tensor::{AdamW, AttentionShape, Backend, Gemm, ParamGroup, PatchOrder, Sgd, Tensor};
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

/// What an op's rate is measured in.
enum Work {
    Flops(f64),
    Bytes(f64),
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

/// Where an operand lives, as the model places it: activations (bf16 under mixed precision),
/// parameters (with their bf16 copy), or plain f32.
#[derive(Clone, Copy)]
enum Place {
    Activation,
    Weights,
    F32,
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
fn ceilings(be: &mut dyn Backend, rng: &mut ChaCha8Rng, on_gpu: bool) -> Ceilings {
    let n = if on_gpu { 1 << 26 } else { 1 << 24 };
    let (src, dst) = (random(be, rng, n, Place::F32), be.alloc(n));
    let copy = time(be, 5, |be| be.copy(dst, src));
    be.free(src);
    be.free(dst);
    let size = if on_gpu { 8192 } else { 1024 };
    let (a, b, c) = (random(be, rng, size * size, Place::Activation), random(be, rng, size * size, Place::Activation), be.alloc_activations(size * size));
    let gemm = time(be, 3, |be| be.gemm(&Gemm::new(size, size, size, a, b, c)));
    for t in [a, b, c] {
        be.free(t);
    }
    Ceilings { copy_gbytes_per_sec: 8.0 * n as f64 / copy / 1e9, gemm_tflops: 2.0 * (size as f64).powi(3) / gemm / 1e12, gemm_size: size }
}

pub fn run(args: &KernelArgs) -> Result<()> {
    if args.batch == 0 || args.iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    let c = args.model.config()?;
    let mut be = args.device.backend(args.threads)?;
    let be = be.as_mut();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let on_gpu = args.device.device != "cpu";
    let precision = args.device.precision();
    // Bytes per activation element, and per f32.
    let (a, f) = (precision.bytes() as f64, 4.0);
    let ceilings = ceilings(be, &mut rng, on_gpu);

    let (b, t, d) = (args.batch, c.patches() + 1, c.dim);
    let (rows, hidden, kept) = (b * t, c.dim * c.mlp_ratio, c.kept_patches() + 1);
    let attention = AttentionShape { batch: b, tokens: t, heads: c.heads, head_dim: d / c.heads };
    let patch_len = c.patch_len();
    let image_len = c.channels * c.image_size * c.image_size;
    let pred_len = b * (c.patches() + 1) * patch_len;
    // Operands sit where the model puts them. `x` is a [rows, d] activation, `wide` the largest
    // activation an op reads (qkv, or the MLP's hidden layer), `resid` the f32 residual stream;
    // `out_act` receives the ops' activation outputs and `out` their f32 outputs.
    let wide_len = rows * (3 * d).max(hidden);
    let x = random(be, &mut rng, rows * d, Place::Activation);
    let resid = random(be, &mut rng, rows * d, Place::F32);
    let wide = random(be, &mut rng, wide_len, Place::Activation);
    let out_act = be.alloc_activations(wide_len);
    let out = be.alloc((rows * d).max(pred_len).max(b * image_len).max(b * c.classes));
    let weight = random(be, &mut rng, d * (3 * d).max(hidden), Place::Weights);
    let grad = be.alloc(weight.len);
    let (vec_a, vec_b) = (random(be, &mut rng, d, Place::F32), random(be, &mut rng, d, Place::F32));
    let (mean, rstd) = (be.alloc(rows), be.alloc(rows));
    let saved_len = be.attention_saved_len(attention);
    let (saved, att_out) = (be.alloc(saved_len), be.alloc_activations(rows * d));

    let mut rows_out: Vec<(&'static str, String, f64, Work)> = Vec::new();
    let mut record = |name: &'static str, shape: String, seconds: f64, work: Work| rows_out.push((name, shape, seconds, work));

    let s = time(be, args.iters, |be| be.gemm(&Gemm { trans_b: true, ..Gemm::new(rows, 3 * d, d, x, weight, out_act) }));
    record("gemm qkv forward", format!("{rows}x{}x{d}", 3 * d), s, Work::Flops(2.0 * (rows * 3 * d * d) as f64));
    let s = time(be, args.iters, |be| be.gemm(&Gemm { trans_a: true, accumulate: true, ..Gemm::new(hidden, d, rows, wide, x, grad) }));
    record("gemm fc1 weight grad", format!("{hidden}x{d}x{rows}"), s, Work::Flops(2.0 * (rows * hidden * d) as f64));
    // Attention over every token, and over the MAE encoder's kept ones (T = 50 for ViT-B/16).
    for tokens in [t, kept] {
        let shape = AttentionShape { tokens, ..attention };
        let n = b * tokens;
        let (qkv, o) = (wide.slice(0, n * 3 * d), att_out.slice(0, n * d));
        let label = format!("B{b} H{} T{tokens} D{}", c.heads, shape.head_dim);
        let fwd_flops = 4.0 * (b * c.heads * tokens * tokens * shape.head_dim) as f64;
        let s = time(be, args.iters, |be| be.attention_forward(o, saved, qkv, shape));
        record("attention forward", label.clone(), s, Work::Flops(fwd_flops));
        let s = time(be, args.iters, |be| be.attention_backward(out_act.slice(0, n * 3 * d), x.slice(0, n * d), qkv, o, saved, shape));
        record("attention backward", label, s, Work::Flops(2.5 * fwd_flops));
    }
    // LayerNorm reads the f32 residual stream and writes an activation; its backward reads the
    // activation gradient and the input, and adds into the residual stream's gradient.
    let s = time(be, args.iters, |be| be.layernorm_forward(out_act.slice(0, rows * d), mean, rstd, resid, vec_a, vec_b, rows, d, 1e-6));
    record("layernorm forward", format!("{rows}x{d}"), s, Work::Bytes((f + a) * (rows * d) as f64));
    let s = time(be, args.iters, |be| be.layernorm_backward(out.slice(0, rows * d), vec_a, vec_b, x, resid, weight.slice(0, d), mean, rstd, rows, d));
    record("layernorm backward", format!("{rows}x{d}"), s, Work::Bytes((a + 3.0 * f) * (rows * d) as f64));
    // GELU on a third of the hidden layer, so its input and output gradient both fit in `wide`.
    let n = rows * hidden / 3;
    let s = time(be, args.iters, |be| be.gelu_forward(out_act.slice(0, n), wide.slice(0, n)));
    record("gelu forward", format!("{n}"), s, Work::Bytes(a * 2.0 * n as f64));
    let s = time(be, args.iters, |be| be.gelu_backward(out_act.slice(0, n), wide.slice(0, n), wide.slice(n, n)));
    record("gelu backward", format!("{n}"), s, Work::Bytes(a * 3.0 * n as f64));
    let s = time(be, args.iters, |be| be.bias_backward(vec_a, x, rows, d));
    record("bias gradient", format!("{rows}x{d}"), s, Work::Bytes(a * (rows * d) as f64));
    let s = time(be, args.iters, |be| be.mean_pool_forward(out.slice(0, b * d), resid, b, t, d, 1));
    record("mean pool forward", format!("{b}x{t}x{d}"), s, Work::Bytes(f * (rows * d) as f64));
    let s = time(be, args.iters, |be| be.mean_pool_backward(out.slice(0, rows * d), resid.slice(0, b * d), b, t, d, 1));
    record("mean pool backward", format!("{b}x{t}x{d}"), s, Work::Bytes(f * (rows * d) as f64));
    // The residual stream's updates: a gradient term added in (axpy), the position table added
    // to every sample.
    let s = time(be, args.iters, |be| be.axpy(out.slice(0, rows * d), 0.5, resid));
    record("axpy", format!("{}", rows * d), s, Work::Bytes(f * 3.0 * (rows * d) as f64));
    let s = time(be, args.iters, |be| be.add_rows(out.slice(0, rows * d), resid.slice(0, t * d), t, d));
    record("add position rows", format!("{b}x{t}x{d}"), s, Work::Bytes(f * 2.0 * (rows * d) as f64));

    let idx: Vec<i32> = (0..b).flat_map(|_| std::iter::once(-1).chain((0..kept as i32 - 1).map(|i| i * 3 % (c.patches() as i32)))).collect();
    let indices = be.alloc_indices(idx.len());
    be.upload_indices(indices, &idx);
    let s = time(be, args.iters, |be| be.gather_rows(out.slice(0, b * kept * d), resid, indices, vec_a, b, t, kept, d));
    record("gather kept patches", format!("{b}x{kept}x{d}"), s, Work::Bytes(f * 2.0 * (b * kept * d) as f64));
    let s = time(be, args.iters, |be| be.gather_rows_backward(out.slice(0, rows * d), vec_b, resid.slice(0, b * kept * d), indices, b, t, kept, d));
    record("scatter kept patches", format!("{b}x{kept}x{d}"), s, Work::Bytes(f * 3.0 * (b * kept * d) as f64));
    let images = random(be, &mut rng, b * image_len, Place::F32);
    let s = time(be, args.iters, |be| be.patchify(out.slice(0, b * image_len), images, c.patch_shape(b), PatchOrder::RowColChannel));
    record("patchify", format!("{b}x{image_len}"), s, Work::Bytes(f * 2.0 * (b * image_len) as f64));
    let s = time(be, args.iters, |be| be.unpatchify(out.slice(0, b * image_len), images, c.patch_shape(b), PatchOrder::RowColChannel));
    record("unpatchify", format!("{b}x{image_len}"), s, Work::Bytes(f * 2.0 * (b * image_len) as f64));
    let mask = be.upload_new(&(0..b * c.patches()).map(|i| (i % 4 != 0) as u8 as f32).collect::<Vec<_>>());
    let (pred, loss) = (random(be, &mut rng, pred_len, Place::F32), be.alloc(1));
    let s = time(be, args.iters, |be| be.mae_loss(loss, out.slice(0, pred_len), pred, images, mask, b, c.patches(), patch_len, 1.0));
    record("mae loss", format!("{b}x{}x{patch_len}", c.patches()), s, Work::Bytes(f * 3.0 * (b * c.patches() * patch_len) as f64));
    let k = c.classes;
    let (logits, targets, class_mask, losses) = (random(be, &mut rng, b * k, Place::F32), random(be, &mut rng, b * k, Place::F32), be.upload_new(&vec![1.0; k]), be.alloc(b));
    let s = time(be, args.iters, |be| be.cross_entropy(losses, out.slice(0, b * k), logits, targets, class_mask, b, k, 1.0));
    record("cross-entropy", format!("{b}x{k}"), s, Work::Bytes(f * 3.0 * (b * k) as f64));

    let params = 12 * d * d * c.depth;
    let (p, g, m, v) = (random(be, &mut rng, params, Place::Weights), random(be, &mut rng, params, Place::F32), be.alloc(params), be.alloc(params));
    let groups = [ParamGroup { offset: 0, len: params, lr_scale: 1.0, weight_decay: true }];
    let mut step = 0;
    let s = time(be, args.iters, |be| {
        step += 1;
        be.adamw(p, g, m, v, &groups, &AdamW { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step, grad_scale: 1.0 })
    });
    // Reads parameters, gradients and both moments, writes those three back, and the bf16 copy.
    let copy = if a < f { a } else { 0.0 };
    record("adamw", format!("{params}"), s, Work::Bytes((f * 7.0 + copy) * params as f64));
    let s = time(be, args.iters, |be| be.sgd(p, g, m, &groups, &Sgd { lr: 1e-3, momentum: 0.9, nesterov: false, weight_decay: 0.05, grad_scale: 1.0 }));
    // Reads parameters, gradients and momentum, writes parameters and momentum, and the bf16 copy.
    record("sgd", format!("{params}"), s, Work::Bytes((f * 5.0 + copy) * params as f64));
    let s = time(be, args.iters, |be| {
        be.sum_squares(g);
    });
    record("gradient norm", format!("{params}"), s, Work::Bytes(f * params as f64));

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
