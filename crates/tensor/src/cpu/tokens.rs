//! Token plumbing: gathering rows by index (MAE masking and un-shuffling) and mean-pooling.

use rayon::prelude::*;

/// `out[s, i] = inp[s, idx[s, i]]`, or `fill` where the index is negative.
pub fn gather_rows(out: &mut [f32], inp: &[f32], idx: &[i32], fill: &[f32], in_rows: usize, out_rows: usize, width: usize) {
    let samples = idx.len() / out_rows;
    out[..samples * out_rows * width].par_chunks_mut(out_rows * width).enumerate().for_each(|(s, o)| {
        let src = &inp[s * in_rows * width..(s + 1) * in_rows * width];
        for (row, &i) in o.chunks_exact_mut(width).zip(&idx[s * out_rows..(s + 1) * out_rows]) {
            if i < 0 {
                row.copy_from_slice(&fill[..width]);
            } else {
                let i = i as usize;
                assert!(i < in_rows, "gather index {i} out of {in_rows} rows");
                row.copy_from_slice(&src[i * width..(i + 1) * width]);
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn gather_rows_backward(
    dinp: &mut [f32],
    dfill: &mut [f32],
    dout: &[f32],
    idx: &[i32],
    samples: usize,
    in_rows: usize,
    out_rows: usize,
    width: usize,
) {
    dinp[..samples * in_rows * width].par_chunks_mut(in_rows * width).enumerate().for_each(|(s, di)| {
        let d = &dout[s * out_rows * width..(s + 1) * out_rows * width];
        for (row, &i) in d.chunks_exact(width).zip(&idx[s * out_rows..(s + 1) * out_rows]) {
            if i >= 0 {
                let i = i as usize;
                di[i * width..(i + 1) * width].iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
        }
    });
    for (row, &i) in dout[..samples * out_rows * width].chunks_exact(width).zip(idx) {
        if i < 0 {
            dfill[..width].iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }
}

pub fn mean_pool_forward(out: &mut [f32], inp: &[f32], samples: usize, rows: usize, width: usize, skip: usize) {
    let inv = 1.0 / (rows - skip) as f32;
    out[..samples * width].par_chunks_mut(width).enumerate().for_each(|(s, o)| {
        o.fill(0.0);
        for row in inp[(s * rows + skip) * width..(s + 1) * rows * width].chunks_exact(width) {
            o.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        o.iter_mut().for_each(|a| *a *= inv);
    });
}

pub fn mean_pool_backward(dinp: &mut [f32], dout: &[f32], samples: usize, rows: usize, width: usize, skip: usize) {
    let inv = 1.0 / (rows - skip) as f32;
    dinp[..samples * rows * width].par_chunks_mut(rows * width).enumerate().for_each(|(s, di)| {
        let d = &dout[s * width..(s + 1) * width];
        for (r, row) in di.chunks_exact_mut(width).enumerate() {
            if r < skip {
                row.fill(0.0);
            } else {
                row.iter_mut().zip(d).for_each(|(a, b)| *a = b * inv);
            }
        }
    });
}
