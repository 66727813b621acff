//! A stack of transformer blocks followed by a final LayerNorm: the body of both the encoder and
//! the MAE decoder.

use crate::block::{self, BlockActs, BlockScratch, BlockShape, BlockWeights, LN_EPS};
use crate::linear::Affine;
use rekindle_tensor::{Backend, Tensor};

pub struct Stack {
    pub shape: BlockShape,
    blocks: Vec<BlockActs>,
    /// Output: the final LayerNorm of every token, `[rows, width]`.
    pub normed: Tensor,
    norm_mean: Tensor,
    norm_rstd: Tensor,
    scratch: BlockScratch,
    /// The residual-stream gradient; after `backward` it holds ∂L/∂input.
    pub dres: Tensor,
}

impl Stack {
    pub fn new(be: &mut dyn Backend, shape: BlockShape, depth: usize) -> Stack {
        let (r, w) = (shape.rows(), shape.width);
        Stack {
            shape,
            blocks: (0..depth).map(|_| BlockActs::new(be, shape)).collect(),
            normed: be.alloc(r * w),
            norm_mean: be.alloc(r),
            norm_rstd: be.alloc(r),
            scratch: BlockScratch::new(be, shape),
            dres: be.alloc(r * w),
        }
    }

    pub fn free(&self, be: &mut dyn Backend) {
        self.blocks.iter().for_each(|b| b.free(be));
        self.scratch.free(be);
        for t in [self.normed, self.norm_mean, self.norm_rstd, self.dres] {
            be.free(t);
        }
    }

    fn output(&self, input: Tensor) -> Tensor {
        self.blocks.last().map_or(input, |b| b.out)
    }

    pub fn forward(&self, be: &mut dyn Backend, w: &[BlockWeights], norm: Affine, input: Tensor) {
        let mut x = input;
        for (acts, bw) in self.blocks.iter().zip(w) {
            block::forward(be, acts, bw, x, self.shape);
            x = acts.out;
        }
        let (r, d) = (self.shape.rows(), self.shape.width);
        be.layernorm_forward(self.normed, self.norm_mean, self.norm_rstd, x, norm.weight, norm.bias, r, d, LN_EPS);
    }

    /// From ∂L/∂normed to ∂L/∂input (left in `dres`), accumulating parameter gradients.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        be: &mut dyn Backend,
        w: &[BlockWeights],
        g: &[BlockWeights],
        norm: Affine,
        dnorm: Affine,
        input: Tensor,
        dnormed: Tensor,
    ) {
        let (r, d) = (self.shape.rows(), self.shape.width);
        be.fill(self.dres, 0.0);
        let last = self.output(input);
        be.layernorm_backward(self.dres, dnorm.weight, dnorm.bias, dnormed, last, norm.weight, self.norm_mean, self.norm_rstd, r, d);
        for i in (0..self.blocks.len()).rev() {
            let x = if i == 0 { input } else { self.blocks[i - 1].out };
            block::backward(be, &self.blocks[i], &w[i], &g[i], &self.scratch, self.dres, x, self.shape);
        }
    }
}
