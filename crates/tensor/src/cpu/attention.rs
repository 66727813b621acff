//! Scaled dot-product attention, one task per (sample, head).
//!
//! The CPU keeps each head's softmax probabilities `P [tokens, tokens]` for the backward pass: at
//! ViT sequence lengths they are cheap to store and save recomputing `Q·Kᵀ`. Q, K and V are read in
//! place from the fused qkv activation through strides; only K (forward) and V (backward) are
//! transposed into per-task scratch, because the small GEMM wants unit-stride rows of B.

use super::elementwise::{self, exp};
use crate::backend::AttentionShape;
use super::small_gemm::{small_gemm, View};
use rayon::prelude::*;

pub fn saved_len(s: AttentionShape) -> usize {
    s.batch * s.heads * s.tokens * s.tokens
}

#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

/// Per-task scratch: two tokens × tokens matrices, a transposed head (head_dim × tokens) and the
/// small-GEMM panel. Transposed operands are copied once rather than read with a stride inside
/// the kernel's k loop.
struct Scratch {
    square: Vec<f32>,
    square_t: Vec<f32>,
    transposed: Vec<f32>,
    panel: Vec<f32>,
}

impl Scratch {
    fn new(s: AttentionShape) -> Scratch {
        let t = s.tokens;
        Scratch { square: vec![0.0; t * t], square_t: vec![0.0; t * t], transposed: vec![0.0; s.head_dim * t], panel: vec![0.0; t.max(s.head_dim) * 16] }
    }
}

/// Copies the `rows × cols` block at `src` (row stride `rs`) transposed into `dst` (`cols × rows`).
fn transpose(dst: &mut [f32], src: &[f32], rs: usize, rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * rs + c];
        }
    }
}

/// Offsets of head `h` of sample `b`: (first q element, first output element).
fn head_offsets(s: AttentionShape, b: usize, h: usize) -> (usize, usize) {
    let c = s.width();
    (b * s.tokens * 3 * c + h * s.head_dim, b * s.tokens * c + h * s.head_dim)
}

/// The row-major view of a matrix with row stride `rs`.
fn rows(data: &[f32], rs: usize) -> View<'_> {
    View { data, rs, cs: 1 }
}

pub fn forward(out: &mut [f32], saved: &mut [f32], qkv: &[f32], s: AttentionShape) {
    let (t, d, c) = (s.tokens, s.head_dim, s.width());
    let scale = 1.0 / (d as f32).sqrt();
    let out_ptr = Ptr(out.as_mut_ptr());
    let out_len = out.len();
    saved[..saved_len(s)].par_chunks_mut(t * t).enumerate().for_each_init(
        || Scratch::new(s),
        |sc, (bh, p)| {
            let out_ptr = out_ptr;
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (qo, oo) = head_offsets(s, b, h);
            transpose(&mut sc.transposed, &qkv[qo + c..], 3 * c, t, d);
            // SAFETY: `p` is this task's own t × t block.
            unsafe { small_gemm(t, t, d, scale, rows(&qkv[qo..], 3 * c), rows(&sc.transposed, t), p.as_mut_ptr(), t, false, &mut sc.panel) };
            for row in p.chunks_exact_mut(t) {
                softmax_in_place(row);
            }
            assert!(oo + (t - 1) * c + d <= out_len);
            // SAFETY: in bounds (above); each task writes only its own head's columns of `out`.
            unsafe { small_gemm(t, d, t, 1.0, rows(p, t), rows(&qkv[qo + 2 * c..], 3 * c), out_ptr.0.add(oo), c, false, &mut sc.panel) };
        },
    );
}

fn softmax_in_place(row: &mut [f32]) {
    let max = elementwise::max(row);
    row.iter_mut().for_each(|x| *x = exp(*x - max));
    let inv = 1.0 / elementwise::sum(row);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// With P the saved probabilities: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P)),
/// dQ = scale · dS·K, dK = scale · dSᵀ·Q.
pub fn backward(dqkv: &mut [f32], dout: &[f32], qkv: &[f32], saved: &[f32], s: AttentionShape) {
    let (t, d, c) = (s.tokens, s.head_dim, s.width());
    let scale = 1.0 / (d as f32).sqrt();
    let dqkv_ptr = Ptr(dqkv.as_mut_ptr());
    let dqkv_len = dqkv.len();
    saved[..saved_len(s)].par_chunks(t * t).enumerate().for_each_init(
        || Scratch::new(s),
        |sc, (bh, p)| {
            let dqkv_ptr = dqkv_ptr;
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (qo, oo) = head_offsets(s, b, h);
            assert!(qo + 2 * c + (t - 1) * 3 * c + d <= dqkv_len);
            let (dq, dk, dv) = unsafe { (dqkv_ptr.0.add(qo), dqkv_ptr.0.add(qo + c), dqkv_ptr.0.add(qo + 2 * c)) };
            let d_o = rows(&dout[oo..], c);
            let ds = &mut sc.square;
            transpose(&mut sc.transposed, &qkv[qo + 2 * c..], 3 * c, t, d);
            transpose(&mut sc.square_t, p, t, t, t);
            // SAFETY: in bounds (above); each task writes only its own head's q, k and v columns of
            // dqkv, and `ds` is its own scratch.
            unsafe {
                small_gemm(t, d, t, 1.0, rows(&sc.square_t, t), d_o, dv, 3 * c, false, &mut sc.panel);
                small_gemm(t, t, d, 1.0, d_o, rows(&sc.transposed, t), ds.as_mut_ptr(), t, false, &mut sc.panel);
            }
            for (dsr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                let dot = elementwise::dot(dsr, pr);
                dsr.iter_mut().zip(pr).for_each(|(x, p)| *x = p * (*x - dot));
            }
            transpose(&mut sc.square_t, ds, t, t, t);
            unsafe {
                small_gemm(t, d, t, scale, rows(ds, t), rows(&qkv[qo + c..], 3 * c), dq, 3 * c, false, &mut sc.panel);
                small_gemm(t, d, t, scale, rows(&sc.square_t, t), rows(&qkv[qo..], 3 * c), dk, 3 * c, false, &mut sc.panel);
            }
        },
    );
}
