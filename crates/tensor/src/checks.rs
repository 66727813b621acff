//! Every op's contract on its operands, checked once for all backends: each view holds at least
//! the elements the op reads or writes, and no output overlaps another operand. The CPU and CUDA
//! backends call the op's check first, so a wrong length fails the same way (a panic naming the
//! op and the operand) on either, before any kernel runs.

use crate::{AttentionShape, Gemm, Indices, PatchShape, Tensor};

/// Panics unless no output overlaps an input or another output.
pub fn disjoint(outputs: &[Tensor], inputs: &[Tensor]) {
    for (i, o) in outputs.iter().enumerate() {
        for x in inputs.iter().chain(&outputs[i + 1..]) {
            assert!(!o.overlaps(*x), "output view {o:?} overlaps operand {x:?}");
        }
    }
}

/// Panics unless view `t` holds at least `len` elements.
pub fn at_least(t: Tensor, len: usize, what: &str) {
    assert!(t.len >= len, "{what}: view of {} elements, op needs {len}", t.len);
}

fn same_len(views: &[Tensor], what: &str) {
    assert!(views.iter().all(|v| v.len == views[0].len), "{what}: views of different lengths {:?}", views.iter().map(|v| v.len).collect::<Vec<_>>());
}

pub fn copy(dst: Tensor, src: Tensor) {
    same_len(&[dst, src], "copy");
    disjoint(&[dst], &[src]);
}

/// Elements each operand of `g` must hold: (A, B, C).
pub fn gemm_operand_lens(g: &Gemm) -> (usize, usize, usize) {
    let last = g.batch.saturating_sub(1);
    (last * g.stride_a + g.m * g.k, last * g.stride_b + g.k * g.n, last * g.stride_c + g.m * g.n)
}

pub fn gemm(g: &Gemm) {
    let (sa, sb, sc) = gemm_operand_lens(g);
    at_least(g.a, sa, "gemm A");
    at_least(g.b, sb, "gemm B");
    at_least(g.c, sc, "gemm C");
    disjoint(&[g.c], &[g.a, g.b]);
    if let Some(b) = g.bias {
        at_least(b, g.n, "gemm bias");
        disjoint(&[g.c], &[b]);
    }
}

pub fn bias_backward(dbias: Tensor, dout: Tensor, rows: usize, cols: usize) {
    at_least(dout, rows * cols, "bias_backward dout");
    at_least(dbias, cols, "bias_backward dbias");
    disjoint(&[dbias], &[dout]);
}

pub fn axpy(dst: Tensor, src: Tensor) {
    same_len(&[dst, src], "axpy");
    disjoint(&[dst], &[src]);
}

pub fn add_rows(x: Tensor, table: Tensor, rows: usize, width: usize) {
    at_least(table, rows * width, "add_rows table");
    disjoint(&[x], &[table]);
}

pub fn gelu_forward(out: Tensor, inp: Tensor) {
    same_len(&[out, inp], "gelu_forward");
    disjoint(&[out], &[inp]);
}

pub fn gelu_backward(dinp: Tensor, inp: Tensor, dout: Tensor) {
    same_len(&[dinp, inp, dout], "gelu_backward");
    disjoint(&[dinp], &[inp, dout]);
}

/// `stats` are the mean and rstd outputs, `params` the weight and bias.
pub fn layernorm_forward(out: Tensor, stats: [Tensor; 2], inp: Tensor, params: [Tensor; 2], rows: usize, width: usize) {
    at_least(inp, rows * width, "layernorm inp");
    at_least(out, rows * width, "layernorm out");
    stats.iter().for_each(|&s| at_least(s, rows, "layernorm mean/rstd"));
    params.iter().for_each(|&p| at_least(p, width, "layernorm weight/bias"));
    disjoint(&[out, stats[0], stats[1]], &[inp, params[0], params[1]]);
}

/// `outputs` are dinp, dweight, dbias; `inputs` dout, inp, weight, mean, rstd.
pub fn layernorm_backward(outputs: [Tensor; 3], inputs: [Tensor; 5], rows: usize, width: usize) {
    at_least(outputs[0], rows * width, "layernorm_backward dinp");
    at_least(inputs[0], rows * width, "layernorm_backward dout");
    at_least(inputs[1], rows * width, "layernorm_backward inp");
    disjoint(&outputs, &inputs);
}

/// `saved_len` is the backend's own (`Backend::attention_saved_len`).
pub fn attention_forward(out: Tensor, saved: Tensor, qkv: Tensor, s: AttentionShape, saved_len: usize) {
    at_least(qkv, s.batch * s.tokens * 3 * s.width(), "attention qkv");
    at_least(out, s.batch * s.tokens * s.width(), "attention out");
    at_least(saved, saved_len, "attention saved");
    disjoint(&[out, saved], &[qkv]);
}

/// `inputs` are dout, qkv, out, saved.
pub fn attention_backward(dqkv: Tensor, inputs: [Tensor; 4], s: AttentionShape) {
    at_least(dqkv, s.batch * s.tokens * 3 * s.width(), "attention dqkv");
    at_least(inputs[0], s.batch * s.tokens * s.width(), "attention dout");
    disjoint(&[dqkv], &inputs);
}

/// The shape of a row gather: `samples` samples of `in_rows` input and `out_rows` output rows
/// of `width`.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    pub samples: usize,
    pub in_rows: usize,
    pub out_rows: usize,
    pub width: usize,
}

pub fn gather_rows(out: Tensor, inp: Tensor, idx: Indices, fill: Tensor, r: Rows) {
    at_least(out, r.samples * r.out_rows * r.width, "gather_rows out");
    at_least(inp, r.samples * r.in_rows * r.width, "gather_rows inp");
    assert!(idx.len >= r.samples * r.out_rows && fill.len >= r.width, "gather_rows idx/fill");
    disjoint(&[out], &[inp, fill]);
}

pub fn gather_rows_backward(dinp: Tensor, dfill: Tensor, dout: Tensor, idx: Indices, r: Rows) {
    at_least(dout, r.samples * r.out_rows * r.width, "gather_rows_backward dout");
    at_least(dinp, r.samples * r.in_rows * r.width, "gather_rows_backward dinp");
    assert!(idx.len >= r.samples * r.out_rows && dfill.len >= r.width, "gather_rows_backward idx/dfill");
    disjoint(&[dinp, dfill], &[dout]);
}

pub fn mean_pool_forward(out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize) {
    at_least(inp, samples * rows * width, "mean_pool inp");
    at_least(out, samples * width, "mean_pool out");
    disjoint(&[out], &[inp]);
}

pub fn mean_pool_backward(dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize) {
    at_least(dinp, samples * rows * width, "mean_pool dinp");
    at_least(dout, samples * width, "mean_pool dout");
    disjoint(&[dinp], &[dout]);
}

/// Patchify (`to_patches`) or unpatchify: both views hold every pixel of the batch.
pub fn patches(patches: Tensor, images: Tensor, s: PatchShape, to_patches: bool) {
    let n = s.batch * s.channels * s.image_size * s.image_size;
    at_least(images, n, "patchify images");
    at_least(patches, n, "patchify patches");
    match to_patches {
        true => disjoint(&[patches], &[images]),
        false => disjoint(&[images], &[patches]),
    }
}

/// `outputs` are losses, dlogits; `inputs` logits, targets, class_mask.
pub fn cross_entropy(outputs: [Tensor; 2], inputs: [Tensor; 3], rows: usize, classes: usize) {
    at_least(outputs[0], rows, "cross_entropy losses");
    for t in [outputs[1], inputs[0], inputs[1]] {
        at_least(t, rows * classes, "cross_entropy");
    }
    at_least(inputs[2], classes, "cross_entropy class_mask");
    disjoint(&outputs, &inputs);
}

/// `outputs` are loss, dpred; `inputs` pred, target, mask.
pub fn mae_loss(outputs: [Tensor; 2], inputs: [Tensor; 3], samples: usize, patches: usize, patch_len: usize) {
    at_least(inputs[0], samples * (patches + 1) * patch_len, "mae_loss pred");
    at_least(outputs[1], samples * (patches + 1) * patch_len, "mae_loss dpred");
    at_least(inputs[1], samples * patches * patch_len, "mae_loss target");
    at_least(inputs[2], samples * patches, "mae_loss mask");
    disjoint(&outputs, &inputs);
}

/// The optimizer state views (params, then the moments) share the gradients' layout.
pub fn optimizer(state: &[Tensor], grads: Tensor, what: &str) {
    assert!(state.iter().all(|s| s.len == grads.len), "{what} layout: {:?} vs gradients of {}", state.iter().map(|s| s.len).collect::<Vec<_>>(), grads.len);
    disjoint(state, &[grads]);
}
