//! Losses fused with their gradients: soft-target masked cross-entropy and the MAE patch loss.
//! Row reductions run in f64: they are cheap here and keep the loss exact to f32 precision.

use rayon::prelude::*;

#[allow(clippy::too_many_arguments)]
pub fn cross_entropy(
    losses: &mut [f32],
    dlogits: &mut [f32],
    logits: &[f32],
    targets: &[f32],
    class_mask: &[f32],
    rows: usize,
    classes: usize,
    grad_scale: f32,
) {
    let mask = &class_mask[..classes];
    losses[..rows]
        .par_iter_mut()
        .zip(dlogits[..rows * classes].par_chunks_mut(classes))
        .zip(logits[..rows * classes].par_chunks(classes).zip(targets[..rows * classes].par_chunks(classes)))
        .for_each(|((loss, dz), (z, t))| {
            let active = |k: usize| mask[k] != 0.0;
            let max = (0..classes).filter(|&k| active(k)).map(|k| z[k] as f64).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..classes).filter(|&k| active(k)).map(|k| (z[k] as f64 - max).exp()).sum();
            let lse = max + sum.ln();
            let target_mass: f64 = (0..classes).filter(|&k| active(k)).map(|k| t[k] as f64).sum();
            let mut l = 0.0f64;
            for k in 0..classes {
                if active(k) {
                    let logp = z[k] as f64 - lse;
                    l -= t[k] as f64 * logp;
                    dz[k] = (grad_scale as f64 * (logp.exp() * target_mass - t[k] as f64)) as f32;
                } else {
                    dz[k] = 0.0;
                }
            }
            *loss = l as f32;
        });
}

#[allow(clippy::too_many_arguments)]
pub fn mae_loss(
    loss: &mut [f32],
    dpred: &mut [f32],
    pred: &[f32],
    target: &[f32],
    mask: &[f32],
    samples: usize,
    patches: usize,
    patch_len: usize,
    grad_scale: f32,
) {
    let masked: f64 = mask[..samples * patches].iter().map(|&m| m as f64).sum();
    let pred_rows = (patches + 1) * patch_len;
    let coef = 2.0 * grad_scale as f64 / (patch_len as f64 * masked);
    // Per-sample losses, added in sample order: a parallel sum's order would follow the threads.
    let sample_losses: Vec<f64> = dpred[..samples * pred_rows]
        .par_chunks_mut(pred_rows)
        .enumerate()
        .map(|(s, dp)| {
            let p = &pred[s * pred_rows..(s + 1) * pred_rows];
            dp[..patch_len].fill(0.0); // the decoder's CLS row is not predicted
            let mut sample_loss = 0.0f64;
            for i in 0..patches {
                let m = mask[s * patches + i] as f64;
                let t = &target[(s * patches + i) * patch_len..(s * patches + i + 1) * patch_len];
                let out = &mut dp[(i + 1) * patch_len..(i + 2) * patch_len];
                if m == 0.0 {
                    out.fill(0.0);
                    continue;
                }
                let mean = t.iter().map(|&x| x as f64).sum::<f64>() / patch_len as f64;
                let var = t.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (patch_len as f64 - 1.0);
                let inv_std = 1.0 / (var + 1e-6).sqrt();
                let mut sq = 0.0;
                for ((o, &x), &y) in out.iter_mut().zip(t).zip(&p[(i + 1) * patch_len..]) {
                    let err = y as f64 - (x as f64 - mean) * inv_std;
                    sq += err * err;
                    *o = (coef * m * err) as f32;
                }
                sample_loss += m * sq / patch_len as f64;
            }
            sample_loss
        })
        .collect();
    loss[0] = (sample_losses.iter().sum::<f64>() / masked) as f32;
}
