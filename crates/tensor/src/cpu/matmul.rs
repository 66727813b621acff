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
/// single-threaded product per task: on tall-skinny ViT shapes this beats letting `gemm` split the
/// work itself. The bias is written into (or added to) each task's block just before its product,
/// which then accumulates onto it: no separate pass over C.
///
/// The blocks depend on the thread count, the arithmetic does not: each output element keeps its
/// whole k-reduction in one task, `block` cuts k into the same pieces whatever the block, and no
/// block is small enough for `gemm` to take another kernel (see `min_block`), so results are
/// bitwise identical for any thread count.
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
        let (extent, across) = if split_rows { (g.m, g.n) } else { (g.n, g.m) };
        // Blocks are multiples of 16 (the microkernel's tile) so no task gets ragged edges.
        let least = min_block(across);
        let step = extent.div_ceil(tasks).next_multiple_of(16).max(least);
        let mut blocks = extent.div_ceil(step);
        // A last block too small for the usual kernels joins the one before it.
        if blocks > 1 && extent - (blocks - 1) * step < least {
            blocks -= 1;
        }
        (0..blocks).into_par_iter().for_each(|t| {
            let span = t * step..if t + 1 == blocks { extent } else { (t + 1) * step };
            if split_rows {
                run(0, span, 0..g.n)
            } else {
                run(0, 0..g.m, span)
            }
        });
    }
}

/// The deepest k-reduction one `gemm` call gets. `gemm` cuts a deeper one into pieces whose size
/// depends on the block's shape (512 deep for blocks up to 64×64; for larger ones, even pieces of
/// at most a depth set by the L1 cache, never under 512), and each piece is summed apart before
/// it is added to C. So `block` cuts k itself, into even pieces set by k alone, each of which
/// `gemm` takes in one pass.
const MAX_DEPTH: usize = 512;

/// The fewest rows (or columns) of a block that is `across` wide (or high), so that `gemm` runs
/// every block through its usual microkernels: a block of at most 16×16 outputs takes its
/// dot-product kernels, and one of a single row or column its matrix-vector ones, either of which
/// sums in another order. Smaller products are a single block whatever the thread count.
fn min_block(across: usize) -> usize {
    (16 * 16 / across.max(1) + 1).next_multiple_of(16)
}

/// The block `rows × cols` of one product at raw pointers: row-major C `[m, n]`, A and B
/// row-major unless transposed; k in pieces of at most `MAX_DEPTH`, of sizes set by k alone.
unsafe fn block(g: &Gemm, a: *const f32, b: *const f32, c: *mut f32, rows: Range<usize>, cols: Range<usize>, read_c: bool) {
    // (column stride, row stride) of op(A) [m, k] and op(B) [k, n].
    let (a_cs, a_rs) = if g.trans_a { (g.m as isize, 1) } else { (1, g.k as isize) };
    let (b_cs, b_rs) = if g.trans_b { (g.k as isize, 1) } else { (1, g.n as isize) };
    let a = a.offset(rows.start as isize * a_rs);
    let b = b.offset(cols.start as isize * b_cs);
    let c = c.add(rows.start * g.n + cols.start);
    let pieces = g.k.div_ceil(MAX_DEPTH).max(1);
    let mut depth = 0;
    for piece in 0..pieces {
        let kb = g.k / pieces + usize::from(piece < g.k % pieces);
        // gemm computes dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
        gemm::gemm(
            rows.len(), cols.len(), kb, c, 1, g.n as isize, read_c || piece > 0, a.offset(depth as isize * a_cs), a_cs, a_rs,
            b.offset(depth as isize * b_rs), b_cs, b_rs, 1.0, g.alpha, false, false, false, Parallelism::None,
        );
        depth += kb;
    }
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
