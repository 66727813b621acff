//! Every backward op against central finite differences of its forward, and the forward ops
//! against plain reference loops. Inputs are random (never zeros).
//!
//! Every test body takes `&mut dyn Backend` and runs on each backend present: the CPU always,
//! and the CUDA backend in fp32 on a GPU or, where there is none, on the software GPU
//! (crates/gpu-sim; candle's one-body-per-device idea), so the same
//! finite-difference and reference checks hold the GPU kernels, not only their agreement with
//! the CPU (crates/cuda/tests/parity.rs).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rekindle_tensor::{relative_error, AttentionShape, Backend, CpuBackend, Gemm, Indices, PatchOrder, PatchShape};

fn backends() -> Vec<Box<dyn Backend>> {
    let mut all: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::new(2))];
    rekindle_gpu_sim::install();
    match rekindle_cuda::CudaBackend::new(0, rekindle_tensor::Precision::Fp32) {
        Ok(gpu) => all.push(Box::new(gpu)),
        Err(e) => rekindle_gpu_sim::skip(&format!("the CUDA backend is not tested here: {e}")),
    }
    all
}

fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Central differences of the scalar `loss(x)` at every coordinate of `x`, against `analytic`.
fn check_gradient(what: &str, x: &[f32], analytic: &[f32], mut loss: impl FnMut(&[f32]) -> f64) {
    const H: f32 = 1e-2;
    let mut numeric = vec![0.0f32; x.len()];
    let mut probe = x.to_vec();
    for i in 0..x.len() {
        probe[i] = x[i] + H;
        let up = loss(&probe);
        probe[i] = x[i] - H;
        let down = loss(&probe);
        probe[i] = x[i];
        numeric[i] = ((up - down) / (2.0 * H as f64)) as f32;
    }
    let err = relative_error(analytic, &numeric);
    assert!(err < 2e-3, "{what}: analytic vs finite-difference gradient, relative error {err:e}");
    assert!(analytic.iter().any(|&g| g != 0.0), "{what}: gradient is identically zero");
}

#[test]
fn gemm_matches_reference_loops() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (m, n, k, batch) in [(7, 5, 3, 1), (33, 70, 19, 1), (300, 40, 64, 1), (9, 11, 13, 4), (200, 300, 100, 1)] {
            for (trans_a, trans_b, accumulate, with_bias) in
                [(false, false, false, false), (true, false, true, false), (false, true, false, true), (true, true, true, true)]
            {
                let (sa, sb, sc) = (m * k + 3, k * n + 5, m * n + 7);
                let a = randn(&mut rng, batch * sa);
                let b = randn(&mut rng, batch * sb);
                let c0 = randn(&mut rng, batch * sc);
                let bias = randn(&mut rng, n);
                let alpha = 0.75;
                let (ta, tb, tc, tbias) = (be.upload_new(&a), be.upload_new(&b), be.upload_new(&c0), be.upload_new(&bias));
                be.gemm(&Gemm {
                    trans_a,
                    trans_b,
                    alpha,
                    accumulate,
                    bias: with_bias.then_some(tbias),
                    batch,
                    stride_a: sa,
                    stride_b: sb,
                    stride_c: sc,
                    ..Gemm::new(m, n, k, ta, tb, tc)
                });
                let got = be.download_vec(tc);
                let mut want = c0.clone();
                for p in 0..batch {
                    for i in 0..m {
                        for j in 0..n {
                            let mut s = 0.0f64;
                            for l in 0..k {
                                let av = if trans_a { a[p * sa + l * m + i] } else { a[p * sa + i * k + l] };
                                let bv = if trans_b { b[p * sb + j * k + l] } else { b[p * sb + l * n + j] };
                                s += av as f64 * bv as f64;
                            }
                            let c = &mut want[p * sc + i * n + j];
                            let prior = if accumulate { *c as f64 } else { 0.0 };
                            *c = (prior + alpha as f64 * s + if with_bias { bias[j] as f64 } else { 0.0 }) as f32;
                        }
                    }
                }
                // Only the m·n block of each batch is written; the padding between blocks keeps c0.
                let err = relative_error(&got, &want);
                assert!(err < 1e-6, "gemm {m}x{n}x{k} batch {batch} ta {trans_a} tb {trans_b}: {err:e}");
            }
        }
    }
}

/// A linear layer `y = x·Wᵀ + b` built from the gemm and bias ops, and its three gradients.
#[test]
fn linear_backward_matches_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (rows, inf, outf) = (6, 5, 4);
        let (x, w, b, r) = (randn(&mut rng, rows * inf), randn(&mut rng, outf * inf), randn(&mut rng, outf), randn(&mut rng, rows * outf));
        let forward = |be: &mut dyn Backend, x: &[f32], w: &[f32], b: &[f32]| {
            let (tx, tw, tb, ty) = (be.upload_new(x), be.upload_new(w), be.upload_new(b), be.alloc(rows * outf));
            be.gemm(&Gemm { trans_b: true, bias: Some(tb), ..Gemm::new(rows, outf, inf, tx, tw, ty) });
            dot(&be.download_vec(ty), &r)
        };
        let (tx, tw, tr) = (be.upload_new(&x), be.upload_new(&w), be.upload_new(&r));
        let (dx, dw, db) = (be.alloc(rows * inf), be.upload_new(&vec![0.0; outf * inf]), be.alloc(outf));
        be.gemm(&Gemm::new(rows, inf, outf, tr, tw, dx));
        be.gemm(&Gemm { trans_a: true, accumulate: true, ..Gemm::new(outf, inf, rows, tr, tx, dw) });
        be.bias_backward(db, tr, rows, outf);
        let (dx, dw, db) = (be.download_vec(dx), be.download_vec(dw), be.download_vec(db));
        check_gradient("linear dx", &x, &dx, |v| forward(be, v, &w, &b));
        check_gradient("linear dw", &w, &dw, |v| forward(be, &x, v, &b));
        check_gradient("linear db", &b, &db, |v| forward(be, &x, &w, v));
    }
}

#[test]
fn layernorm_backward_matches_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, width) = (5, 8);
        let (x, w, b, r) = (randn(&mut rng, rows * width), randn(&mut rng, width), randn(&mut rng, width), randn(&mut rng, rows * width));
        let (tm, ts) = (be.alloc(rows), be.alloc(rows));
        let forward = |be: &mut dyn Backend, x: &[f32], w: &[f32], b: &[f32]| {
            let (tx, tw, tb, ty) = (be.upload_new(x), be.upload_new(w), be.upload_new(b), be.alloc(rows * width));
            be.layernorm_forward(ty, tm, ts, tx, tw, tb, rows, width, 1e-6);
            let y = be.download_vec(ty);
            (dot(&y, &r), y)
        };
        let (_, y) = forward(be, &x, &w, &b);
        // PyTorch semantics: biased variance, eps inside the square root.
        for (row, yr) in x.chunks(width).zip(y.chunks(width)) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            for j in 0..width {
                let want = (row[j] as f64 - mean) / (var + 1e-6).sqrt() * w[j] as f64 + b[j] as f64;
                assert!((yr[j] as f64 - want).abs() < 1e-5, "layernorm forward");
            }
        }
        let (tx, tw, tr) = (be.upload_new(&x), be.upload_new(&w), be.upload_new(&r));
        let dx0 = randn(&mut rng, rows * width); // accumulates: start from a non-zero buffer
        let (dx, dw, db) = (be.upload_new(&dx0), be.alloc(width), be.alloc(width));
        be.layernorm_backward(dx, dw, db, tr, tx, tw, tm, ts, rows, width);
        let dx: Vec<f32> = be.download_vec(dx).iter().zip(&dx0).map(|(a, b)| a - b).collect();
        let (dw, db) = (be.download_vec(dw), be.download_vec(db));
        check_gradient("layernorm dx", &x, &dx, |v| forward(be, v, &w, &b).0);
        check_gradient("layernorm dweight", &w, &dw, |v| forward(be, &x, v, &b).0);
        check_gradient("layernorm dbias", &b, &db, |v| forward(be, &x, &w, v).0);
    }
}

#[test]
fn gelu_matches_erf_and_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x: Vec<f32> = randn(&mut rng, 64).iter().map(|v| 3.0 * v).collect();
        let r = randn(&mut rng, 64);
        let forward = |be: &mut dyn Backend, x: &[f32]| {
            let (tx, ty) = (be.upload_new(x), be.alloc(x.len()));
            be.gelu_forward(ty, tx);
            be.download_vec(ty)
        };
        for (y, &v) in forward(be, &x).iter().zip(&x) {
            let want = 0.5 * v as f64 * (1.0 + libm::erf(v as f64 / 2f64.sqrt()));
            assert!((*y as f64 - want).abs() < 1e-6 * (1.0 + want.abs()), "gelu({v}) = {y}, want {want}");
        }
        let (tx, tr, tdx) = (be.upload_new(&x), be.upload_new(&r), be.alloc(64));
        be.gelu_backward(tdx, tx, tr);
        let dx = be.download_vec(tdx);
        check_gradient("gelu", &x, &dx, |v| dot(&forward(be, v), &r));
    }
}

/// Plain softmax attention in f64, the reference for the forward.
fn attention_reference(qkv: &[f32], s: AttentionShape) -> Vec<f32> {
    let (t, d, c) = (s.tokens, s.head_dim, s.width());
    let mut out = vec![0.0; s.batch * t * c];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let at = |tok: usize, part: usize, j: usize| qkv[b * t * 3 * c + tok * 3 * c + part * c + h * d + j] as f64;
            for i in 0..t {
                let scores: Vec<f64> = (0..t).map(|j| (0..d).map(|l| at(i, 0, l) * at(j, 1, l)).sum::<f64>() / (d as f64).sqrt()).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for l in 0..d {
                    out[b * t * c + i * c + h * d + l] = ((0..t).map(|j| e[j] * at(j, 2, l)).sum::<f64>() / z) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_reference_and_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Head dim 8: the smallest the CUDA kernels are instantiated for.
        let s = AttentionShape { batch: 2, tokens: 5, heads: 2, head_dim: 8 };
        let n = s.batch * s.tokens * 3 * s.width();
        let qkv = randn(&mut rng, n);
        let r = randn(&mut rng, s.batch * s.tokens * s.width());
        let saved = be.alloc(be.attention_saved_len(s));
        let forward = |be: &mut dyn Backend, x: &[f32]| {
            let (tx, ty) = (be.upload_new(x), be.alloc(s.batch * s.tokens * s.width()));
            be.attention_forward(ty, saved, tx, s);
            be.download_vec(ty)
        };
        let out = forward(be, &qkv);
        assert!(relative_error(&out, &attention_reference(&qkv, s)) < 1e-6, "attention forward");
        let (tx, tr, ty, tdx) = (be.upload_new(&qkv), be.upload_new(&r), be.upload_new(&out), be.alloc(n));
        be.attention_forward(ty, saved, tx, s);
        be.attention_backward(tdx, tr, tx, ty, saved, s);
        let dx = be.download_vec(tdx);
        check_gradient("attention dqkv", &qkv, &dx, |v| dot(&forward(be, v), &r));
    }
}

fn indices(be: &mut dyn Backend, v: &[i32]) -> Indices {
    let i = be.alloc_indices(v.len());
    be.upload_indices(i, v);
    i
}

#[test]
fn gather_rows_backward_matches_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (samples, in_rows, out_rows, width) = (2, 4, 5, 3);
        // A source row used twice, one never, and two fill rows per sample.
        let ids = indices(be, &[-1, 2, 0, 2, -1, 3, -1, 1, 0, 2]);
        let (x, fill, r) = (randn(&mut rng, samples * in_rows * width), randn(&mut rng, width), randn(&mut rng, samples * out_rows * width));
        let forward = |be: &mut dyn Backend, x: &[f32], fill: &[f32]| {
            let (tx, tf, ty) = (be.upload_new(x), be.upload_new(fill), be.alloc(samples * out_rows * width));
            be.gather_rows(ty, tx, ids, tf, samples, in_rows, out_rows, width);
            be.download_vec(ty)
        };
        let y = forward(be, &x, &fill);
        assert_eq!(&y[0..3], &fill[..], "row 0 of sample 0 is the fill");
        assert_eq!(&y[3..6], &x[6..9], "row 1 of sample 0 is source row 2");
        assert_eq!(&y[15..18], &x[12 + 9..12 + 12], "row 0 of sample 1 is its source row 3");
        let (tr, dx, dfill) = (be.upload_new(&r), be.alloc(x.len()), be.alloc(width));
        be.gather_rows_backward(dx, dfill, tr, ids, samples, in_rows, out_rows, width);
        let (dx, dfill) = (be.download_vec(dx), be.download_vec(dfill));
        check_gradient("gather dinp", &x, &dx, |v| dot(&forward(be, v, &fill), &r));
        check_gradient("gather dfill", &fill, &dfill, |v| dot(&forward(be, &x, v), &r));
    }
}

#[test]
fn mean_pool_backward_matches_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (samples, rows, width, skip) = (2, 5, 3, 1);
        let (x, r) = (randn(&mut rng, samples * rows * width), randn(&mut rng, samples * width));
        let forward = |be: &mut dyn Backend, x: &[f32]| {
            let (tx, ty) = (be.upload_new(x), be.alloc(samples * width));
            be.mean_pool_forward(ty, tx, samples, rows, width, skip);
            be.download_vec(ty)
        };
        let y = forward(be, &x);
        let want0 = (1..rows).map(|r| x[r * width] as f64).sum::<f64>() / (rows - 1) as f64;
        assert!((y[0] as f64 - want0).abs() < 1e-6, "mean pool skips the CLS row");
        let (tr, dx) = (be.upload_new(&r), be.alloc(x.len()));
        be.mean_pool_backward(dx, tr, samples, rows, width, skip);
        let dx = be.download_vec(dx);
        check_gradient("mean pool", &x, &dx, |v| dot(&forward(be, v), &r));
    }
}

#[test]
fn cross_entropy_matches_finite_differences_and_masks_exactly() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (rows, classes) = (3, 6);
        let logits = randn(&mut rng, rows * classes);
        let mut targets: Vec<f32> = (0..rows * classes).map(|_| rng.random_range(0.0..1.0)).collect();
        for row in targets.chunks_mut(classes) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|t| *t /= s);
        }
        let mask = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let (tt, tm, losses, dz) = (be.upload_new(&targets), be.upload_new(&mask), be.alloc(rows), be.alloc(rows * classes));
        let loss = |be: &mut dyn Backend, z: &[f32]| {
            let tz = be.upload_new(z);
            be.cross_entropy(losses, dz, tz, tt, tm, rows, classes, 0.5);
            be.download_vec(losses)
        };
        // Reference: loss_r = −Σ_{k active} t_k · log softmax over active classes (z_k).
        let got = loss(be, &logits);
        for r in 0..rows {
            let z = &logits[r * classes..][..classes];
            let lse = (0..classes).filter(|&k| mask[k] != 0.0).map(|k| (z[k] as f64).exp()).sum::<f64>().ln();
            let want: f64 = (0..classes).filter(|&k| mask[k] != 0.0).map(|k| -(targets[r * classes + k] as f64) * (z[k] as f64 - lse)).sum();
            assert!((got[r] as f64 - want).abs() < 1e-6, "cross-entropy row {r}: {} vs {want}", got[r]);
        }
        let grad = be.download_vec(dz);
        for r in 0..rows {
            assert_eq!(grad[r * classes + 1], 0.0, "masked class gets exactly zero gradient");
            assert_eq!(grad[r * classes + 4], 0.0, "masked class gets exactly zero gradient");
        }
        // grad_scale 0.5 applied to the gradient of the summed losses.
        check_gradient("cross-entropy", &logits, &grad, |z| 0.5 * loss(be, z).iter().map(|&l| l as f64).sum::<f64>());
    }
}

#[test]
fn mae_loss_matches_reference_and_finite_differences() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (samples, patches, plen) = (2, 4, 5);
        let pred = randn(&mut rng, samples * (patches + 1) * plen);
        let target = randn(&mut rng, samples * patches * plen);
        let mask: [f32; 8] = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let (tt, tm, tl, dp) = (be.upload_new(&target), be.upload_new(&mask), be.alloc(1), be.alloc(pred.len()));
        let loss = |be: &mut dyn Backend, p: &[f32]| {
            let tp = be.upload_new(p);
            be.mae_loss(tl, dp, tp, tt, tm, samples, patches, plen, 2.0);
            be.download_vec(tl)[0] as f64
        };
        let mut want = 0.0f64;
        for s in 0..samples {
            for i in 0..patches {
                let t = &target[(s * patches + i) * plen..][..plen];
                let mean = t.iter().map(|&v| v as f64).sum::<f64>() / plen as f64;
                let var = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (plen - 1) as f64;
                let p = &pred[(s * (patches + 1) + 1 + i) * plen..][..plen];
                let mse = p.iter().zip(t).map(|(&y, &x)| (y as f64 - (x as f64 - mean) / (var + 1e-6).sqrt()).powi(2)).sum::<f64>() / plen as f64;
                want += mask[s * patches + i] as f64 * mse;
            }
        }
        want /= mask.iter().map(|&m| m as f64).sum::<f64>();
        let got = loss(be, &pred);
        assert!((got - want).abs() < 1e-6 * want, "mae loss {got} vs {want}");
        let grad = be.download_vec(dp);
        assert!(grad[..plen].iter().all(|&g| g == 0.0), "the CLS row gets no gradient");
        check_gradient("mae loss", &pred, &grad, |p| 2.0 * loss(be, p));
    }
}

#[test]
fn patchify_orders_and_round_trips() {
    for mut be in backends() {
        let be = be.as_mut();
        let s = PatchShape { batch: 2, channels: 3, image_size: 8, patch: 4 };
        let n = s.batch * s.channels * s.image_size * s.image_size;
        let images: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let (ti, tp, back) = (be.upload_new(&images), be.alloc(n), be.alloc(n));
        for order in [PatchOrder::ChannelRowCol, PatchOrder::RowColChannel] {
            be.patchify(tp, ti, s, order);
            let p = be.download_vec(tp);
            // Sample 1, patch (row 1, col 0) = index 2, pixel (channel 2, y 3, x 1).
            let pixel = ((3 + 2) * 8 + (4 + 3)) * 8 + 1;
            let inner = match order {
                PatchOrder::ChannelRowCol => (2 * 4 + 3) * 4 + 1,
                PatchOrder::RowColChannel => (3 * 4 + 1) * 3 + 2,
            };
            assert_eq!(p[(4 + 2) * 48 + inner], pixel as f32, "{order:?}");
            be.unpatchify(back, tp, s, order);
            assert_eq!(be.download_vec(back), images, "{order:?} round trip");
        }
    }
}

#[test]
fn add_and_copy_ops() {
    for mut be in backends() {
        let be = be.as_mut();
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let (x, y, table) = (randn(&mut rng, 12), randn(&mut rng, 12), randn(&mut rng, 6));
        let (tx, ty, tt, tc) = (be.upload_new(&x), be.upload_new(&y), be.upload_new(&table), be.alloc(12));
        be.axpy(tx, -2.5, ty);
        let sum = be.download_vec(tx);
        assert!(sum.iter().zip(x.iter().zip(&y)).all(|(s, (a, b))| *s == a + -2.5 * b));
        be.add_rows(ty, tt, 2, 3);
        let got = be.download_vec(ty);
        assert!((0..12).all(|i| got[i] == y[i] + table[i % 6]));
        be.copy(tc, ty);
        assert_eq!(be.download_vec(tc), got);
        be.fill(tc, 0.5);
        assert!(be.download_vec(tc).iter().all(|&v| v == 0.5));
    }
}

/// The panic message of `f`, which must panic.
fn refusal(f: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the op should refuse its operands");
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn every_backend_refuses_short_and_overlapping_operands_alike() {
    for mut be in backends() {
        let be = be.as_mut();
        let (a, b, short) = (be.alloc(6), be.alloc(6), be.alloc(5));
        // A 2x4 · 4x2 GEMM reads 8 elements of A, which holds 6.
        let err = refusal(|| be.gemm(&Gemm::new(2, 2, 4, a, b, short)));
        assert!(err.contains("gemm A") || err.contains("gemm B"), "{}: {err}", be.name());
        let err = refusal(|| be.axpy(a, 1.0, short));
        assert!(err.contains("axpy"), "{}: {err}", be.name());
        let err = refusal(|| be.gelu_forward(a.slice(0, 4), a.slice(2, 4)));
        assert!(err.contains("overlaps"), "{}: {err}", be.name());
        let (stats, params) = (be.alloc(2), be.alloc(3));
        let err = refusal(|| be.layernorm_forward(short, stats, stats, a, params, params, 2, 3, 1e-6));
        assert!(err.contains("layernorm out"), "{}: {err}", be.name());
    }
}

#[test]
fn every_op_case_runs_on_every_backend_and_writes_its_outputs() {
    use rekindle_tensor::cases::{op_cases, Shapes};
    let shapes = Shapes {
        batch: 2,
        tokens: 17,
        kept_tokens: 5,
        dim: 32,
        heads: 2,
        hidden: 128,
        classes: 7,
        patch: PatchShape { batch: 2, channels: 3, image_size: 16, patch: 4 },
        params: 3000,
    };
    for mut be in backends() {
        let be = be.as_mut();
        let cases = op_cases(&shapes, 4.0);
        assert_eq!(cases.len(), 24, "the table has every compute op");
        for (i, case) in cases.iter().enumerate() {
            let operands = case.prepare(be, i as u64);
            let result = case.run(be, &operands);
            let outputs = case.outputs(be, &operands);
            assert!(!outputs.is_empty() || result.is_some(), "{}: nothing to compare", case.name);
            for (slot, values) in &outputs {
                assert!(values.iter().all(|v| v.is_finite()) && values.iter().any(|&v| v != 0.0), "{} on {}: output {slot} is not a finite, non-zero result", case.name, be.name());
            }
            assert!(result.is_none_or(|r| r.is_finite() && r > 0.0), "{}: {result:?}", case.name);
            operands.free(be);
        }
    }
}

/// This table again on the CUDA backend, under the software GPU's analogues of compute-sanitizer
/// (scripts/gpu-sim-sanitize.sh, which re-runs this binary, less this test): with the kernel twins
/// built under AddressSanitizer and under ThreadSanitizer it must pass with no report, and each
/// sanitizer must report the bugs the script plants in a copy of kernels/. About 70 s on 2 cores.
#[test]
fn sanitizers_report_nothing_in_the_kernels_and_every_planted_bug() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gpu-sim-sanitize.sh");
    let binary = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new("bash").arg(&script).arg("--binary").arg(&binary).output().expect("bash runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed:\n{stdout}\n{stderr}", script.display());
    eprintln!("{stdout}");
}
