//! One pre-norm transformer block (timm `Block`):
//! `x1 = x + proj(attn(norm1(x)))`, `x2 = x1 + fc2(gelu(fc1(norm2(x1))))`.

use crate::linear::{self, Affine};
use crate::ParamTable;
use rekindle_tensor::{AttentionShape, Backend, Tensor};

pub const LN_EPS: f32 = 1e-6;

/// Views of one block's tensors inside a buffer laid out by the parameter table (the parameters
/// themselves, or their gradients).
#[derive(Clone, Copy, Debug)]
pub struct BlockWeights {
    pub norm1: Affine,
    pub qkv: Affine,
    pub proj: Affine,
    pub norm2: Affine,
    pub fc1: Affine,
    pub fc2: Affine,
}

impl BlockWeights {
    pub fn view(table: &ParamTable, buffer: Tensor, prefix: &str) -> BlockWeights {
        let lin = |name: &str| Affine::view(table, buffer, &format!("{prefix}.{name}"));
        BlockWeights {
            norm1: lin("norm1"),
            qkv: lin("attn.qkv"),
            proj: lin("attn.proj"),
            norm2: lin("norm2"),
            fc1: lin("mlp.fc1"),
            fc2: lin("mlp.fc2"),
        }
    }
}

/// The block's geometry: `rows = samples · tokens` token vectors of `width`.
#[derive(Clone, Copy, Debug)]
pub struct BlockShape {
    pub samples: usize,
    pub tokens: usize,
    pub width: usize,
    pub heads: usize,
    pub hidden: usize,
}

impl BlockShape {
    pub fn rows(&self) -> usize {
        self.samples * self.tokens
    }
    fn attention(&self) -> AttentionShape {
        AttentionShape { batch: self.samples, tokens: self.tokens, heads: self.heads, head_dim: self.width / self.heads }
    }
}

/// What the forward keeps for the backward; the block output is `out`. The inputs of GEMMs and
/// attention, and their gradients, are activation buffers (bf16 under mixed precision); the
/// residual stream (`res1`, `out`) and the LayerNorm statistics stay f32, as under PyTorch autocast.
pub struct BlockActs {
    ln1: Tensor,
    ln1_mean: Tensor,
    ln1_rstd: Tensor,
    qkv: Tensor,
    att_saved: Tensor,
    att: Tensor,
    res1: Tensor,
    ln2: Tensor,
    ln2_mean: Tensor,
    ln2_rstd: Tensor,
    fc1: Tensor,
    gelu: Tensor,
    pub out: Tensor,
}

/// Gradient scratch shared by every block of one stack (blocks run backward one at a time).
pub struct BlockScratch {
    dln: Tensor,
    dqkv: Tensor,
    datt: Tensor,
    dgelu: Tensor,
    dfc1: Tensor,
}

impl BlockActs {
    pub fn new(be: &mut dyn Backend, s: BlockShape) -> BlockActs {
        let (r, w, h) = (s.rows(), s.width, s.hidden);
        BlockActs {
            ln1: be.alloc_activations(r * w),
            ln1_mean: be.alloc(r),
            ln1_rstd: be.alloc(r),
            qkv: be.alloc_activations(r * 3 * w),
            att_saved: be.alloc(be.attention_saved_len(s.attention())),
            att: be.alloc_activations(r * w),
            res1: be.alloc(r * w),
            ln2: be.alloc_activations(r * w),
            ln2_mean: be.alloc(r),
            ln2_rstd: be.alloc(r),
            fc1: be.alloc_activations(r * h),
            gelu: be.alloc_activations(r * h),
            out: be.alloc(r * w),
        }
    }

    pub fn free(&self, be: &mut dyn Backend) {
        for t in [self.ln1, self.ln1_mean, self.ln1_rstd, self.qkv, self.att_saved, self.att, self.res1, self.ln2, self.ln2_mean, self.ln2_rstd, self.fc1, self.gelu, self.out] {
            be.free(t);
        }
    }
}

impl BlockScratch {
    pub fn new(be: &mut dyn Backend, s: BlockShape) -> BlockScratch {
        let (r, w, h) = (s.rows(), s.width, s.hidden);
        BlockScratch {
            dln: be.alloc_activations(r * w),
            dqkv: be.alloc_activations(r * 3 * w),
            datt: be.alloc_activations(r * w),
            dgelu: be.alloc_activations(r * h),
            dfc1: be.alloc_activations(r * h),
        }
    }

    pub fn free(&self, be: &mut dyn Backend) {
        for t in [self.dln, self.dqkv, self.datt, self.dgelu, self.dfc1] {
            be.free(t);
        }
    }
}

pub fn forward(be: &mut dyn Backend, a: &BlockActs, w: &BlockWeights, x: Tensor, s: BlockShape) {
    let (r, d, h) = (s.rows(), s.width, s.hidden);
    be.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.norm1.weight, w.norm1.bias, r, d, LN_EPS);
    linear::forward(be, a.qkv, a.ln1, w.qkv, r, d, 3 * d, false);
    be.attention_forward(a.att, a.att_saved, a.qkv, s.attention());
    be.copy(a.res1, x);
    linear::forward(be, a.res1, a.att, w.proj, r, d, d, true);
    be.layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res1, w.norm2.weight, w.norm2.bias, r, d, LN_EPS);
    linear::forward(be, a.fc1, a.ln2, w.fc1, r, d, h, false);
    be.gelu_forward(a.gelu, a.fc1);
    be.copy(a.out, a.res1);
    linear::forward(be, a.out, a.gelu, w.fc2, r, h, d, true);
}

/// On entry `dres` holds ∂L/∂out; on return it holds ∂L/∂x (the residual stream carries it).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    be: &mut dyn Backend,
    a: &BlockActs,
    w: &BlockWeights,
    g: &BlockWeights,
    scratch: &BlockScratch,
    dres: Tensor,
    x: Tensor,
    s: BlockShape,
) {
    let (r, d, h) = (s.rows(), s.width, s.hidden);
    let sc = scratch;
    linear::backward(be, Some(sc.dgelu), g.fc2, dres, a.gelu, w.fc2, r, h, d);
    be.gelu_backward(sc.dfc1, a.fc1, sc.dgelu);
    linear::backward(be, Some(sc.dln), g.fc1, sc.dfc1, a.ln2, w.fc1, r, d, h);
    be.layernorm_backward(dres, g.norm2.weight, g.norm2.bias, sc.dln, a.res1, w.norm2.weight, a.ln2_mean, a.ln2_rstd, r, d);
    linear::backward(be, Some(sc.datt), g.proj, dres, a.att, w.proj, r, d, d);
    be.attention_backward(sc.dqkv, sc.datt, a.qkv, a.att, a.att_saved, s.attention());
    linear::backward(be, Some(sc.dln), g.qkv, sc.dqkv, a.ln1, w.qkv, r, d, 3 * d);
    // The key bias adds the same constant to every score of a query row, which softmax ignores,
    // so its gradient is exactly zero; computed, it is rounding noise that AdamW would turn into
    // full-size random steps, differing between runs that sum micro-batches or ranks in another
    // order. Keeping it zero makes data-parallel runs match single-process ones.
    be.fill(g.qkv.bias.slice(d, d), 0.0);
    be.layernorm_backward(dres, g.norm1.weight, g.norm1.bias, sc.dln, x, w.norm1.weight, a.ln1_mean, a.ln1_rstd, r, d);
}
