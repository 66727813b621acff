//! The CUDA backend against the CPU backend, op by op: the same random inputs through both, every
//! output compared at relative error ≤ 1e-5 in fp32 and ≤ 1e-2 in bf16 (mixed precision, where
//! operands the model keeps as activations are stored in bf16 and GEMMs read bf16). The CPU
//! backend is itself checked against reference loops and finite differences
//! (crates/tensor/tests/ops.rs) and the whole model against PyTorch (tests/pytorch_fixtures.rs),
//! so agreeing with it is agreeing with those.
//!
//! The ops `rekindle bench kernels` times come from one table (`rekindle_tensor::cases`), and
//! every one of its cases is compared here at two models' shapes; the cases after it add what the
//! model's shapes do not reach (every transpose, batching, stale bf16 copies, conversions).
//!
//! One test body serves both precisions: it places each operand where the model does
//! (`alloc_activations`, `alloc_weights` or `alloc`), which the CPU backend, and the GPU in fp32,
//! treat alike. Runs on the software GPU (crates/gpu-sim) where the machine has no GPU.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rekindle_cuda::CudaBackend;
use rekindle_tensor::{relative_error, AdamW, AttentionShape, Backend, CpuBackend, Gemm, ParamGroup, PatchOrder, PatchShape, Precision, Sgd, Tensor};

/// GPU 0, or the software GPU where this machine has none.
fn gpu(precision: Precision) -> Option<CudaBackend> {
    rekindle_gpu_sim::install();
    match CudaBackend::new(0, precision) {
        Ok(be) => Some(be),
        Err(e) => {
            rekindle_gpu_sim::skip(&e.to_string());
            None
        }
    }
}

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// A new activation buffer holding `values` (bf16 on the GPU under mixed precision).
fn act(be: &mut dyn Backend, values: &[f32]) -> Tensor {
    let t = be.alloc_activations(values.len());
    be.upload(t, values);
    t
}

/// A new parameter buffer holding `values` (with a bf16 copy under mixed precision).
fn weights(be: &mut dyn Backend, values: &[f32]) -> Tensor {
    let t = be.alloc_weights(values.len());
    be.upload(t, values);
    t
}

/// Runs `op` (which uploads its inputs, runs, and returns named outputs) on both backends and
/// compares every output.
fn agree(what: &str, gpu: &mut CudaBackend, tolerance: f64, op: impl Fn(&mut dyn Backend) -> Vec<(&'static str, Vec<f32>)>) {
    let mut cpu = CpuBackend::new(2);
    let (want, got) = (op(&mut cpu), op(gpu));
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(w.len(), g.len(), "{what}: {name} lengths");
        let e = relative_error(g, w);
        assert!(e <= tolerance, "{what}: {name} differs from the CPU backend, relative error {e:.3e} ({:?})", gpu.precision());
        assert!(w.iter().any(|&v| v != 0.0), "{what}: {name} is all zeros; the comparison proves nothing");
    }
}

#[test]
fn every_op_agrees_with_the_cpu_backend_in_fp32() {
    if let Some(mut gpu) = gpu(Precision::Fp32) {
        every_op_agrees(&mut gpu, 1e-5);
    }
}

#[test]
fn every_op_agrees_with_the_cpu_backend_in_bf16() {
    if let Some(mut gpu) = gpu(Precision::Bf16) {
        every_op_agrees(&mut gpu, 1e-2);
    }
}

#[test]
fn every_bench_case_agrees_with_the_cpu_backend_in_fp32_and_bf16() {
    for (precision, tolerance) in [(Precision::Fp32, 1e-5), (Precision::Bf16, 1e-2)] {
        if let Some(mut gpu) = gpu(precision) {
            every_case_agrees(&mut gpu, tolerance);
        }
    }
}

/// Every op `rekindle bench kernels` times, at two models' shapes (head dims 64 and 32), through
/// both backends from the same operands.
fn every_case_agrees(gpu: &mut CudaBackend, tolerance: f64) {
    use rekindle_tensor::cases::{op_cases, Shapes};
    let vit_like = Shapes {
        batch: 2,
        tokens: 50,
        kept_tokens: 13,
        dim: 128,
        heads: 2,
        hidden: 512,
        classes: 10,
        patch: PatchShape { batch: 2, channels: 1, image_size: 28, patch: 4 },
        params: 12 * 128 * 128,
    };
    let small = Shapes { batch: 3, tokens: 17, kept_tokens: 5, dim: 64, heads: 2, hidden: 256, patch: PatchShape { batch: 3, channels: 3, image_size: 16, patch: 4 }, ..vit_like };
    for shapes in [vit_like, small] {
        for (i, case) in op_cases(&shapes, gpu.precision().bytes() as f64).into_iter().enumerate() {
            let what = format!("{} {}", case.name, case.shape);
            agree(&what, gpu, tolerance, |be| {
                let operands = case.prepare(be, i as u64);
                let scalar = case.run(be, &operands);
                let mut out: Vec<(&'static str, Vec<f32>)> = case.outputs(be, &operands).into_iter().map(|(_, v)| ("output", v)).collect();
                out.extend(scalar.map(|v| ("result", vec![v])));
                operands.free(be);
                out
            });
        }
    }
}

fn every_op_agrees(gpu: &mut CudaBackend, tolerance: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);

    // Every transpose, batching, a bias, accumulation; operands as activations, parameters (read
    // through their bf16 copy) or plain f32 (converted for a bf16 GEMM), into activation or f32
    // outputs.
    for (case, (trans_a, trans_b, batch, bias, accumulate)) in [(false, false, 1, true, false), (false, true, 1, false, true), (true, false, 1, false, true), (true, true, 3, false, false), (false, true, 2, true, false)].into_iter().enumerate() {
        let (m, n, k) = (37, 29, 53);
        let (a, b, c0, bv) = (random(&mut rng, batch * m * k), random(&mut rng, batch * k * n), random(&mut rng, batch * m * n), random(&mut rng, n));
        agree(&format!("gemm ta={trans_a} tb={trans_b} batch={batch} bias={bias} acc={accumulate}"), gpu, tolerance, |be| {
            let (ta, tb) = if case % 2 == 0 { (act(be, &a), weights(be, &b)) } else { (be.upload_new(&a), act(be, &b)) };
            let tc = if accumulate { be.upload_new(&c0) } else { act(be, &c0) };
            let tbias = be.upload_new(&bv);
            be.gemm(&Gemm {
                trans_a,
                trans_b,
                alpha: 0.75,
                accumulate,
                bias: bias.then_some(tbias),
                batch,
                stride_a: m * k,
                stride_b: k * n,
                stride_c: m * n,
                ..Gemm::new(m, n, k, ta, tb, tc)
            });
            vec![("c", be.download_vec(tc))]
        });
    }
    let (m, n, k) = (19, 24, 40);
    let (a, b0, b1) = (random(&mut rng, m * k), random(&mut rng, k * n), random(&mut rng, k * n));
    agree("gemm after its weights are uploaded again", gpu, tolerance, |be| {
        let (ta, tb, tc) = (act(be, &a), weights(be, &b0), be.alloc(m * n));
        be.gemm(&Gemm::new(m, n, k, ta, tb, tc));
        be.upload(tb, &b1);
        be.gemm(&Gemm::new(m, n, k, ta, tb, tc));
        vec![("c", be.download_vec(tc))]
    });

    let (rows, width) = (301, 96);
    let (x, w, bv, d, y0) = (random(&mut rng, rows * width), random(&mut rng, width), random(&mut rng, width), random(&mut rng, rows * width), random(&mut rng, rows * width));
    agree("bias_backward, axpy, add_rows, GELU, copies and fills across precisions", gpu, tolerance, |be| {
        let (tx, td, tb, ty) = (act(be, &x), act(be, &d), be.upload_new(&bv), be.upload_new(&y0));
        be.bias_backward(tb, td, rows, width);
        be.axpy(ty, -0.5, tx);
        let tr = be.upload_new(&x);
        be.add_rows(tr, td.slice(0, 7 * width), 7, width);
        let (g, dg) = (be.alloc_activations(rows * width), be.alloc_activations(rows * width));
        be.gelu_forward(g, tx);
        be.gelu_backward(dg, tx, td);
        let (narrow, wide) = (be.alloc_activations(rows * width), be.alloc(rows * width));
        be.copy(narrow, ty);
        be.copy(wide, narrow);
        be.fill(narrow.slice(width, width), 0.25);
        vec![
            ("dbias", be.download_vec(tb)),
            ("axpy", be.download_vec(ty)),
            ("add_rows", be.download_vec(tr)),
            ("gelu", be.download_vec(g)),
            ("dgelu", be.download_vec(dg)),
            ("copy there and back", be.download_vec(wide)),
            ("fill", be.download_vec(narrow)),
        ]
    });
    agree("layernorm forward and backward", gpu, tolerance, |be| {
        let (tx, tw, tb, td) = (be.upload_new(&x), be.upload_new(&w), be.upload_new(&bv), act(be, &d));
        let (out, mean, rstd) = (be.alloc_activations(rows * width), be.alloc(rows), be.alloc(rows));
        be.layernorm_forward(out, mean, rstd, tx, tw, tb, rows, width, 1e-6);
        let (dx, dw, db) = (be.upload_new(&y0), be.upload_new(&bv), be.upload_new(&w));
        be.layernorm_backward(dx, dw, db, td, tx, tw, mean, rstd, rows, width);
        vec![("out", be.download_vec(out)), ("dinp", be.download_vec(dx)), ("dweight", be.download_vec(dw)), ("dbias", be.download_vec(db))]
    });

    for (tokens, head_dim) in [(50, 64), (197, 64), (17, 32), (65, 16), (9, 8)] {
        let s = AttentionShape { batch: 3, tokens, heads: 2, head_dim };
        let (qkv, dout) = (random(&mut rng, 3 * tokens * 3 * s.width()), random(&mut rng, 3 * tokens * s.width()));
        agree(&format!("attention T={tokens} D={head_dim}"), gpu, tolerance, |be| {
            let (tq, td) = (act(be, &qkv), act(be, &dout));
            let (out, saved, dq) = (be.alloc_activations(dout.len()), be.alloc(be.attention_saved_len(s)), be.alloc_activations(qkv.len()));
            be.attention_forward(out, saved, tq, s);
            be.attention_backward(dq, td, tq, out, saved, s);
            vec![("out", be.download_vec(out)), ("dqkv", be.download_vec(dq))]
        });
    }

    let (samples, in_rows, out_rows, width) = (4, 16, 9, 40);
    let mut idx = Vec::new();
    for s in 0..samples {
        let mut perm: Vec<i32> = (0..in_rows as i32).collect();
        perm.rotate_left(s * 3);
        idx.push(-1);
        idx.extend_from_slice(&perm[..out_rows - 2]);
        idx.push(-1);
    }
    let (inp, fill, dout) = (random(&mut rng, samples * in_rows * width), random(&mut rng, width), random(&mut rng, samples * out_rows * width));
    agree("gather_rows and its backward, mean pool", gpu, tolerance, |be| {
        let (ti, tf, td) = (act(be, &inp), be.upload_new(&fill), act(be, &dout));
        let ix = be.alloc_indices(idx.len());
        be.upload_indices(ix, &idx);
        let out = be.alloc_activations(dout.len());
        be.gather_rows(out, ti, ix, tf, samples, in_rows, out_rows, width);
        let (di, df) = (act(be, &inp), be.upload_new(&fill));
        be.gather_rows_backward(di, df, td, ix, samples, in_rows, out_rows, width);
        let (pooled, dpool) = (be.alloc(samples * width), be.alloc(samples * in_rows * width));
        be.mean_pool_forward(pooled, ti, samples, in_rows, width, 1);
        be.mean_pool_backward(dpool, td.slice(0, samples * width), samples, in_rows, width, 1);
        vec![("out", be.download_vec(out)), ("dinp", be.download_vec(di)), ("dfill", be.download_vec(df)), ("pooled", be.download_vec(pooled)), ("dpool", be.download_vec(dpool))]
    });

    let shape = PatchShape { batch: 2, channels: 3, image_size: 32, patch: 8 };
    let images = random(&mut rng, 2 * 3 * 32 * 32);
    for order in [PatchOrder::ChannelRowCol, PatchOrder::RowColChannel] {
        agree(&format!("patchify {order:?}"), gpu, tolerance, |be| {
            let ti = be.upload_new(&images);
            let (patches, back) = (be.alloc(images.len()), be.alloc(images.len()));
            be.patchify(patches, ti, shape, order);
            be.unpatchify(back, patches, shape, order);
            vec![("patches", be.download_vec(patches)), ("images", be.download_vec(back))]
        });
    }

    let (rows, classes) = (23, 11);
    let logits = random(&mut rng, rows * classes);
    let targets: Vec<f32> = (0..rows * classes).map(|i| if i % classes == (i / classes) % 7 { 0.9 } else { 0.01 }).collect();
    let mask: Vec<f32> = (0..classes).map(|k| (k < 8) as u8 as f32).collect();
    agree("cross_entropy", gpu, tolerance, |be| {
        let (z, t, m) = (be.upload_new(&logits), be.upload_new(&targets), be.upload_new(&mask));
        let (losses, dz) = (be.alloc(rows), be.alloc(rows * classes));
        be.cross_entropy(losses, dz, z, t, m, rows, classes, 0.3);
        vec![("losses", be.download_vec(losses)), ("dlogits", be.download_vec(dz))]
    });
    let (samples, patches, patch_len) = (3, 16, 48);
    let pred = random(&mut rng, samples * (patches + 1) * patch_len);
    let target = random(&mut rng, samples * patches * patch_len);
    let patch_mask: Vec<f32> = (0..samples * patches).map(|i| (i % 4 != 0) as u8 as f32).collect();
    agree("mae_loss", gpu, tolerance, |be| {
        let (p, t, m) = (be.upload_new(&pred), be.upload_new(&target), be.upload_new(&patch_mask));
        let (loss, dp) = (be.alloc(1), be.alloc(pred.len()));
        be.mae_loss(loss, dp, p, t, m, samples, patches, patch_len, 2.0);
        vec![("loss", be.download_vec(loss)), ("dpred", be.download_vec(dp))]
    });

    let n = 10_007;
    let (params, grads, m0, v0) = (random(&mut rng, n), random(&mut rng, n), random(&mut rng, n), random(&mut rng, n).iter().map(|v| v.abs()).collect::<Vec<_>>());
    let groups = [
        ParamGroup { offset: 0, len: 4000, lr_scale: 1.0, weight_decay: true },
        ParamGroup { offset: 4000, len: 17, lr_scale: 0.5, weight_decay: false },
        ParamGroup { offset: 4017, len: 5990, lr_scale: 0.25, weight_decay: true },
    ];
    let x = random(&mut rng, 5 * 40);
    agree("sum_squares, AdamW (and a GEMM reading its parameters), SGD", gpu, tolerance, |be| {
        let (p, g, m, v) = (weights(be, &params), be.upload_new(&grads), be.upload_new(&m0), be.upload_new(&v0));
        let (tx, product) = (act(be, &x), be.alloc(5 * 100));
        let norm = be.sum_squares(g);
        // The first GEMM makes the parameters' bf16 copy current; the updates must keep it so
        // (nothing else marks it stale), and at this learning rate a copy left behind would
        // be ~25% off.
        be.gemm(&Gemm::new(5, 100, 40, tx, p.slice(0, 4000), product));
        for step in 1..=3 {
            be.adamw(p, g, m, v, &groups, &AdamW { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step, grad_scale: 0.8 });
        }
        be.gemm(&Gemm::new(5, 100, 40, tx, p.slice(0, 4000), product));
        let (q, buf) = (be.upload_new(&params), be.upload_new(&m0));
        for nesterov in [false, true] {
            be.sgd(q, g, buf, &groups, &Sgd { lr: 1e-2, momentum: 0.9, nesterov, weight_decay: 1e-4, grad_scale: 1.0 });
        }
        vec![("sum_squares", vec![norm]), ("adamw params", be.download_vec(p)), ("gemm after adamw", be.download_vec(product)), ("adamw m", be.download_vec(m)), ("adamw v", be.download_vec(v)), ("sgd params", be.download_vec(q)), ("sgd momentum", be.download_vec(buf))]
    });
}
