//! Scaled dot-product attention, one task per (sample, head).
//!
//! The CPU keeps each head's softmax probabilities `P [tokens, tokens]` for the backward pass: at
//! ViT sequence lengths they are cheap to store and save recomputing `Q·Kᵀ`. Q, K and V are read in
//! place from the fused qkv activation through strides; nothing is copied out.

use super::elementwise::{self, exp};
use crate::backend::AttentionShape;
use gemm::Parallelism;
use super::parallel::SendPtr;
use rayon::prelude::*;

pub fn saved_len(s: AttentionShape) -> usize {
    s.batch * s.heads * s.tokens * s.tokens
}


/// Row-major matrix at `ptr` viewed with (column stride, row stride), possibly transposed.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    cs: isize,
    rs: isize,
}

impl Mat {
    fn rows(ptr: *const f32, row_stride: usize) -> Mat {
        Mat { ptr, cs: 1, rs: row_stride as isize }
    }
    fn t(self) -> Mat {
        Mat { ptr: self.ptr, cs: self.rs, rs: self.cs }
    }
}

/// `dst [m, n] (row stride dst_rs) = alpha · a [m, k] · b [k, n]`, optionally added to dst.
unsafe fn matmul(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, a: Mat, b: Mat, alpha: f32, add: bool) {
    gemm::gemm(
        m, n, k, dst, 1, dst_rs as isize, add, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 1.0, alpha, false, false, false,
        Parallelism::None,
    );
}

/// Offsets of head `h` of sample `b`: (first q element, first output element).
fn head_offsets(s: AttentionShape, b: usize, h: usize) -> (usize, usize) {
    let c = s.width();
    (b * s.tokens * 3 * c + h * s.head_dim, b * s.tokens * c + h * s.head_dim)
}

pub fn forward(out: &mut [f32], saved: &mut [f32], qkv: &[f32], s: AttentionShape) {
    let (t, d, c) = (s.tokens, s.head_dim, s.width());
    let scale = 1.0 / (d as f32).sqrt();
    let out_ptr = SendPtr(out.as_mut_ptr());
    saved[..saved_len(s)].par_chunks_mut(t * t).enumerate().for_each(|(bh, p)| {
        let out_ptr = out_ptr;
        let (b, h) = (bh / s.heads, bh % s.heads);
        let (qo, oo) = head_offsets(s, b, h);
        let q = Mat::rows(qkv[qo..].as_ptr(), 3 * c);
        let k = Mat::rows(qkv[qo + c..].as_ptr(), 3 * c);
        let v = Mat::rows(qkv[qo + 2 * c..].as_ptr(), 3 * c);
        // SAFETY: every pointer stays inside its slice (lengths checked by the caller); each task
        // writes its own P block and its own head's columns of `out`.
        unsafe { matmul(t, t, d, p.as_mut_ptr(), t, q, k.t(), scale, false) };
        for row in p.chunks_exact_mut(t) {
            softmax_in_place(row);
        }
        unsafe { matmul(t, d, t, out_ptr.0.add(oo), c, Mat::rows(p.as_ptr(), t), v, 1.0, false) };
    });
}

/// Reductions go through the eight-lane helpers so that the exponentials vectorise too.
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
    let dqkv_ptr = SendPtr(dqkv.as_mut_ptr());
    saved[..saved_len(s)].par_chunks(t * t).enumerate().for_each_init(
        || vec![0.0f32; t * t],
        |ds, (bh, p)| {
            let dqkv_ptr = dqkv_ptr;
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (qo, oo) = head_offsets(s, b, h);
            let q = Mat::rows(qkv[qo..].as_ptr(), 3 * c);
            let k = Mat::rows(qkv[qo + c..].as_ptr(), 3 * c);
            let v = Mat::rows(qkv[qo + 2 * c..].as_ptr(), 3 * c);
            let d_o = Mat::rows(dout[oo..].as_ptr(), c);
            let pm = Mat::rows(p.as_ptr(), t);
            // SAFETY: as in `forward`; each task writes only its own head's columns of dqkv.
            unsafe {
                matmul(t, d, t, dqkv_ptr.0.add(qo + 2 * c), 3 * c, pm.t(), d_o, 1.0, false);
                matmul(t, t, d, ds.as_mut_ptr(), t, d_o, v.t(), 1.0, false);
            }
            for (dsr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                let dot = elementwise::dot(dsr, pr);
                dsr.iter_mut().zip(pr).for_each(|(x, p)| *x = p * (*x - dot));
            }
            let dsm = Mat::rows(ds.as_ptr(), t);
            unsafe {
                let (dq, dk) = (dqkv_ptr.0.add(qo), dqkv_ptr.0.add(qo + c));
                matmul(t, d, t, dq, 3 * c, dsm, k, scale, false);
                matmul(t, d, t, dk, 3 * c, dsm.t(), q, scale, false);
            }
        },
    );
}
