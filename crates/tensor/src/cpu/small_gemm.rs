//! A register-blocked product for the small matrices of attention (tokens × head_dim, at most a
//! few hundred on a side), where a general GEMM's packing and dispatch cost more than the math.
//!
//! `C[m, n] (=|+=) alpha · A[m, k] · B[k, n]`, with A read through arbitrary strides (so Aᵀ is free)
//! and B through a row stride with unit column stride. The kernel keeps a 4 × 16 tile of C in
//! registers (8 eight-lane accumulators, `wide::f32x8`: AVX2 + FMA on x86-64-v3) across the whole
//! k loop.

use wide::f32x8;

const MR: usize = 4;
const NR: usize = 16;

/// A strided read-only matrix view: element (r, c) is at `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// `c` points at a row-major `m × n` block with row stride `c_rs`. `b` must have `cs == 1`. `panel`
/// is scratch of at least `k · NR` floats, used to zero-pad a partial column block of B.
///
/// # Safety
/// `c` must be valid for writes of that block, and no other thread may touch the block meanwhile
/// (other threads may write the gaps between its rows: attention heads share rows).
#[allow(clippy::too_many_arguments)]
pub unsafe fn small_gemm(m: usize, n: usize, k: usize, alpha: f32, a: View, b: View, c: *mut f32, c_rs: usize, accumulate: bool, panel: &mut [f32]) {
    debug_assert_eq!(b.cs, 1);
    for j0 in (0..n).step_by(NR) {
        let cols = NR.min(n - j0);
        // Full column blocks read B in place; a partial one is copied into a zero-padded panel.
        let (bp, b_rs, b_off) = if cols == NR {
            (b.data, b.rs, j0)
        } else {
            for kk in 0..k {
                let dst = &mut panel[kk * NR..(kk + 1) * NR];
                dst[..cols].copy_from_slice(&b.data[kk * b.rs + j0..kk * b.rs + j0 + cols]);
                dst[cols..].fill(0.0);
            }
            (&panel[..], NR, 0)
        };
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            // A partial row block repeats its last row: a fixed MR keeps the tile in registers,
            // and the extra rows are never stored.
            let row_of = |r: usize| (i0 + r).min(m - 1);
            // The last element each A row reads, checked once so the k loop reads unchecked.
            let a_rows: [usize; MR] = std::array::from_fn(|r| row_of(r) * a.rs);
            assert!(a_rows[MR - 1].max(a_rows[0]) + (k - 1) * a.cs < a.data.len());
            assert!((k - 1) * b_rs + b_off + NR <= bp.len());
            let mut acc = [[f32x8::ZERO; 2]; MR];
            for kk in 0..k {
                let brow = bp.as_ptr().add(kk * b_rs + b_off);
                let b0 = f32x8::new(*(brow as *const [f32; 8]));
                let b1 = f32x8::new(*(brow.add(8) as *const [f32; 8]));
                for (acc_row, &row) in acc.iter_mut().zip(&a_rows) {
                    let av = f32x8::splat(*a.data.get_unchecked(row + kk * a.cs));
                    acc_row[0] = av.mul_add(b0, acc_row[0]);
                    acc_row[1] = av.mul_add(b1, acc_row[1]);
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                let out = std::slice::from_raw_parts_mut(c.add((i0 + r) * c_rs + j0), cols);
                let (lo, hi) = (acc_row[0].to_array(), acc_row[1].to_array());
                for (l, o) in out.iter_mut().enumerate() {
                    let v = if l < 8 { lo[l] } else { hi[l - 8] };
                    *o = if accumulate { *o + alpha * v } else { alpha * v };
                }
            }
        }
    }
}
