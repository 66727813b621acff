//! LayerNorm over the last axis, forward and backward (two-pass mean/variance in f32).

use super::parallel::MIN_ROWS_PER_TASK;
use rayon::prelude::*;

#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
    rows: usize,
    width: usize,
    eps: f32,
) {
    let (w, b) = (&weight[..width], &bias[..width]);
    out[..rows * width]
        .par_chunks_mut(width)
        .zip(inp[..rows * width].par_chunks(width))
        .zip(mean[..rows].par_iter_mut().zip(rstd[..rows].par_iter_mut()))
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each(|((o, x), (m, r))| {
            let mu = x.iter().sum::<f32>() / width as f32;
            let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / width as f32;
            let rs = 1.0 / (var + eps).sqrt();
            for (((o, x), w), b) in o.iter_mut().zip(x).zip(w).zip(b) {
                *o = (x - mu) * rs * w + b;
            }
            *m = mu;
            *r = rs;
        });
}

/// Accumulates into `dinp`, `dweight`, `dbias`. With n = (x − mean)·rstd and g = dout·weight:
/// `dinp += rstd · (g − mean(g) − n · mean(g·n))`, `dweight += Σ dout·n`, `dbias += Σ dout`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    rows: usize,
    width: usize,
) {
    let w = &weight[..width];
    // Each block of rows sums its weight/bias gradients privately; the partial sums are then
    // added in block order. Blocks have a fixed size, so the result does not depend on how
    // rayon schedules them: runs are bit-reproducible.
    let block = MIN_ROWS_PER_TASK * 4;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dinp[..rows * width]
        .par_chunks_mut(block * width)
        .zip(dout[..rows * width].par_chunks(block * width))
        .zip(inp[..rows * width].par_chunks(block * width))
        .zip(mean[..rows].par_chunks(block).zip(rstd[..rows].par_chunks(block)))
        .map(|(((di, d), x), (mu, rs))| {
            let (mut dw, mut db) = (vec![0.0f32; width], vec![0.0f32; width]);
            for (((di, d), x), (&mu, &rs)) in di.chunks_exact_mut(width).zip(d.chunks_exact(width)).zip(x.chunks_exact(width)).zip(mu.iter().zip(rs)) {
                let mut mean_g = 0.0f32;
                let mut mean_gn = 0.0f32;
                for ((&d, &x), &w) in d.iter().zip(x).zip(w) {
                    let n = (x - mu) * rs;
                    let g = d * w;
                    mean_g += g;
                    mean_gn += g * n;
                }
                mean_g /= width as f32;
                mean_gn /= width as f32;
                for (j, ((di, &d), &x)) in di.iter_mut().zip(d).zip(x).enumerate() {
                    let n = (x - mu) * rs;
                    *di += rs * (d * w[j] - mean_g - n * mean_gn);
                    dw[j] += d * n;
                    db[j] += d;
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0f32; width], vec![0.0f32; width]);
    for (bw, bb) in partials {
        dw.iter_mut().zip(bw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(bb).for_each(|(a, b)| *a += b);
    }
    dweight[..width].iter_mut().zip(dw).for_each(|(a, b)| *a += b);
    dbias[..width].iter_mut().zip(db).for_each(|(a, b)| *a += b);
}
