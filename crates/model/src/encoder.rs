//! The ViT encoder: patch embedding, fixed position table, CLS token, blocks, final LayerNorm.
//!
//! The same code serves classification (every patch kept) and MAE (a subset kept): the encoder
//! input is always `gather_rows(patch tokens, [CLS, kept patch ids...])`.

use crate::block::{self, BlockActs, BlockScratch, BlockShape, BlockWeights, LN_EPS};
use crate::linear::{self, Affine};
use crate::{ModelConfig, ParamTable};
use rekindle_tensor::{Backend, Indices, PatchOrder, PatchShape, Tensor};

pub struct EncoderWeights {
    pub cls_token: Tensor,
    pub patch_embed: Affine,
    pub blocks: Vec<BlockWeights>,
    pub norm: Affine,
}

impl EncoderWeights {
    pub fn view(table: &ParamTable, buffer: Tensor, depth: usize) -> EncoderWeights {
        let affine = |prefix: &str| Affine::view(table, buffer, prefix);
        EncoderWeights {
            cls_token: table.view(buffer, "cls_token"),
            patch_embed: affine("patch_embed.proj"),
            blocks: (0..depth).map(|i| BlockWeights::view(table, buffer, &format!("blocks.{i}"))).collect(),
            norm: affine("norm"),
        }
    }
}

/// Encoder activations for `samples` images of which `kept` patches each reach the blocks.
pub struct Encoder {
    pub shape: BlockShape,
    patch_shape: PatchShape,
    patches: usize,
    patch_in: usize,
    /// Input images `[samples, C, H, W]`, filled by the caller.
    pub images: Tensor,
    patch_pixels: Tensor,
    tokens: Tensor,
    ids: Indices,
    x0: Tensor,
    blocks: Vec<BlockActs>,
    /// Output: the final LayerNorm of every token, `[samples, 1 + kept, dim]`.
    pub normed: Tensor,
    norm_mean: Tensor,
    norm_rstd: Tensor,
    scratch: BlockScratch,
    dres: Tensor,
    dtokens: Tensor,
}

impl Encoder {
    pub fn new(be: &mut dyn Backend, c: &ModelConfig, samples: usize, kept: usize) -> Encoder {
        let shape = BlockShape { samples, tokens: 1 + kept, width: c.dim, heads: c.heads, hidden: c.dim * c.mlp_ratio };
        let patch_shape = PatchShape { batch: samples, channels: c.channels, image_size: c.image_size, patch: c.patch };
        let (l, r, d) = (c.patches(), shape.rows(), c.dim);
        let pixels = samples * c.channels * c.image_size * c.image_size;
        let enc = Encoder {
            shape,
            patch_shape,
            patches: l,
            patch_in: c.patch_len(),
            images: be.alloc(pixels),
            patch_pixels: be.alloc(pixels),
            tokens: be.alloc(samples * l * d),
            ids: be.alloc_indices(r),
            x0: be.alloc(r * d),
            blocks: (0..c.depth).map(|_| BlockActs::new(be, shape)).collect(),
            normed: be.alloc(r * d),
            norm_mean: be.alloc(r),
            norm_rstd: be.alloc(r),
            scratch: BlockScratch::new(be, shape),
            dres: be.alloc(r * d),
            dtokens: be.alloc(samples * l * d),
        };
        if kept == l {
            let all: Vec<i32> = (0..samples).flat_map(|_| 0..l as i32).collect();
            enc.set_kept(be, &all);
        }
        enc
    }

    /// Which patches each sample keeps, `[samples, kept]` (MAE's `ids_keep`).
    pub fn set_kept(&self, be: &mut dyn Backend, keep: &[i32]) {
        let kept = self.shape.tokens - 1;
        assert_eq!(keep.len(), self.shape.samples * kept, "kept-patch ids");
        let ids: Vec<i32> = keep.chunks_exact(kept).flat_map(|k| std::iter::once(-1).chain(k.iter().copied())).collect();
        be.upload_indices(self.ids, &ids);
    }

    /// `pos` is the fixed `[1 + patches, dim]` table; its CLS row is zero, so CLS enters as is.
    pub fn forward(&self, be: &mut dyn Backend, w: &EncoderWeights, pos: Tensor) {
        let (s, l, d) = (self.shape.samples, self.patches, self.shape.width);
        be.patchify(self.patch_pixels, self.images, self.patch_shape, PatchOrder::ChannelRowCol);
        linear::forward(be, self.tokens, self.patch_pixels, w.patch_embed, s * l, self.patch_in, d, false);
        be.add_rows(self.tokens, pos.slice(d, l * d), l, d);
        be.gather_rows(self.x0, self.tokens, self.ids, w.cls_token, s, l, self.shape.tokens, d);
        let mut x = self.x0;
        for (acts, bw) in self.blocks.iter().zip(&w.blocks) {
            block::forward(be, acts, bw, x, self.shape);
            x = acts.out;
        }
        let r = self.shape.rows();
        be.layernorm_forward(self.normed, self.norm_mean, self.norm_rstd, x, w.norm.weight, w.norm.bias, r, d, LN_EPS);
    }

    /// Accumulates parameter gradients into `g`, given ∂L/∂normed.
    pub fn backward(&self, be: &mut dyn Backend, w: &EncoderWeights, g: &EncoderWeights, dnormed: Tensor) {
        let (s, l, d, r) = (self.shape.samples, self.patches, self.shape.width, self.shape.rows());
        let last = self.blocks.last().map_or(self.x0, |b| b.out);
        be.fill(self.dres, 0.0);
        be.layernorm_backward(self.dres, g.norm.weight, g.norm.bias, dnormed, last, w.norm.weight, self.norm_mean, self.norm_rstd, r, d);
        for i in (0..self.blocks.len()).rev() {
            let input = if i == 0 { self.x0 } else { self.blocks[i - 1].out };
            block::backward(be, &self.blocks[i], &w.blocks[i], &g.blocks[i], &self.scratch, self.dres, input, self.shape);
        }
        be.fill(self.dtokens, 0.0);
        be.gather_rows_backward(self.dtokens, g.cls_token, self.dres, self.ids, s, l, self.shape.tokens, d);
        linear::backward(be, None, g.patch_embed, self.dtokens, self.patch_pixels, w.patch_embed, s * l, self.patch_in, d);
    }
}
