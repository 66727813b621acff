//! Fixed 2-D sin-cos position embeddings (MAE), with a zero row in front for the CLS token.

/// `[1 + grid², dim]` table. Patch `k = row·grid + col`; the first half of the channels encodes the
/// column and the second half the row, each as `[sin(pos·ω), cos(pos·ω)]` with
/// `ω_i = 10000^(−i/(dim/4))` for `i < dim/4`.
pub fn sincos_2d(dim: usize, grid: usize) -> Vec<f32> {
    assert!(dim.is_multiple_of(4), "sin-cos position embedding needs a width divisible by 4");
    let quarter = dim / 4;
    let mut table = vec![0.0f32; (1 + grid * grid) * dim];
    for row in 0..grid {
        for col in 0..grid {
            let out = &mut table[(1 + row * grid + col) * dim..][..dim];
            for (half, pos) in [(0, col), (1, row)] {
                for i in 0..quarter {
                    let omega = 1.0 / 10000f64.powf(i as f64 / quarter as f64);
                    let angle = pos as f64 * omega;
                    out[half * 2 * quarter + i] = angle.sin() as f32;
                    out[half * 2 * quarter + quarter + i] = angle.cos() as f32;
                }
            }
        }
    }
    table
}
