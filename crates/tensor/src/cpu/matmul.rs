//! Matrix products through the `gemm` crate, which takes arbitrary strides, so transposes cost
//! nothing: a transposed operand is the same memory read with its strides swapped.

use super::parallel::SendPtr;
use crate::backend::Gemm;
use gemm::Parallelism;
use rayon::prelude::*;
use std::ops::Range;

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_MACS: usize = 1 << 18;
/// Blocks per worker thread: a little over-splitting evens out uneven progress.
const TASKS_PER_THREAD: usize = 2;

/// Large products are split into row blocks of C (or column blocks when C is wide and short), one
/// single-threaded product per task. Each output element keeps its whole k-reduction in one task,
/// so results are bitwise identical for any thread count; and on tall-skinny ViT shapes this beats
/// letting `gemm` split the work itself. The bias is written into (or added to) each task's block
/// just before its product, which then accumulates onto it: no separate pass over C.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>, threads: usize) {
    let c_ptr = SendPtr(c.as_mut_ptr());
    let run = |i: usize, rows: Range<usize>, cols: Range<usize>| {
        let c_ptr = c_ptr;
        // SAFETY: every call writes a disjoint block of C (distinct batches, or distinct row or
        // column ranges of one product); lengths were checked by the caller (`checks::gemm`).
        unsafe {
            let c = c_ptr.0.add(i * g.stride_c);
            if let Some(bias) = bias {
                for r in rows.clone() {
                    let row = std::slice::from_raw_parts_mut(c.add(r * g.n + cols.start), cols.len());
                    let bias = &bias[cols.clone()];
                    if g.accumulate {
                        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                    } else {
                        row.copy_from_slice(bias);
                    }
                }
            }
            block(g, a.as_ptr().add(i * g.stride_a), b.as_ptr().add(i * g.stride_b), c, rows, cols, g.accumulate || bias.is_some());
        }
    };
    if g.batch > 1 {
        // Batched (attention-sized) products: one product per task.
        (0..g.batch).into_par_iter().for_each(|i| run(i, 0..g.m, 0..g.n));
    } else {
        let tasks = if g.m * g.n * g.k < PARALLEL_MACS { 1 } else { threads * TASKS_PER_THREAD };
        let split_rows = g.m >= g.n;
        let extent = if split_rows { g.m } else { g.n };
        // Blocks are multiples of 16 (the microkernel's tile) so no task gets ragged edges.
        let step = extent.div_ceil(tasks).next_multiple_of(16);
        (0..extent.div_ceil(step)).into_par_iter().for_each(|t| {
            let span = t * step..((t + 1) * step).min(extent);
            if split_rows {
                run(0, span, 0..g.n)
            } else {
                run(0, 0..g.m, span)
            }
        });
    }
}

/// The block `rows × cols` of one product at raw pointers: row-major C `[m, n]`, A and B
/// row-major unless transposed.
unsafe fn block(g: &Gemm, a: *const f32, b: *const f32, c: *mut f32, rows: Range<usize>, cols: Range<usize>, read_c: bool) {
    // (column stride, row stride) of op(A) [m, k] and op(B) [k, n].
    let (a_cs, a_rs) = if g.trans_a { (g.m as isize, 1) } else { (1, g.k as isize) };
    let (b_cs, b_rs) = if g.trans_b { (g.k as isize, 1) } else { (1, g.n as isize) };
    let a = a.offset(rows.start as isize * a_rs);
    let b = b.offset(cols.start as isize * b_cs);
    let c = c.add(rows.start * g.n + cols.start);
    // gemm computes dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
    gemm::gemm(
        rows.len(), cols.len(), g.k, c, 1, g.n as isize, read_c, a, a_cs, a_rs, b, b_cs, b_rs, 1.0, g.alpha,
        false, false, false, Parallelism::None,
    );
}

/// `dbias[j] += Σ_i dout[i, j]`, split over column blocks so threads never share an output.
pub fn bias_backward(dbias: &mut [f32], dout: &[f32], rows: usize, cols: usize) {
    const COLS_PER_TASK: usize = 64;
    dbias[..cols].par_chunks_mut(COLS_PER_TASK).enumerate().for_each(|(block, db)| {
        let start = block * COLS_PER_TASK;
        let mut acc = vec![0.0f32; db.len()];
        for row in dout[..rows * cols].chunks_exact(cols) {
            acc.iter_mut().zip(&row[start..start + db.len()]).for_each(|(a, d)| *a += d);
        }
        db.iter_mut().zip(acc).for_each(|(b, a)| *b += a);
    });
}
