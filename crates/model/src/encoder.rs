//! The ViT encoder: patch embedding, fixed position table, CLS token, blocks, final LayerNorm.
//!
//! The same code serves classification (every patch kept) and MAE (a subset kept): the encoder
//! input is always `gather_rows(patch tokens, [CLS, kept patch ids...])`.

use crate::block::{BlockShape, BlockWeights};
use crate::stack::Stack;
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
    /// Blocks and final norm; `stack.normed` is the output `[samples, 1 + kept, dim]`.
    pub stack: Stack,
    dtokens: Tensor,
}

impl Encoder {
    pub fn new(be: &mut dyn Backend, c: &ModelConfig, samples: usize, kept: usize) -> Encoder {
        let shape = BlockShape { samples, tokens: 1 + kept, width: c.dim, heads: c.heads, hidden: c.dim * c.mlp_ratio };
        let patch_shape = c.patch_shape(samples);
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
            stack: Stack::new(be, shape, c.depth),
            dtokens: be.alloc(samples * l * d),
        };
        if kept == l {
            let all: Vec<i32> = (0..samples).flat_map(|_| 0..l as i32).collect();
            enc.set_kept(be, &all);
        }
        enc
    }

    /// Which patches each sample keeps, `[samples, kept]` (MAE's `ids_keep`).
    pub fn free(&self, be: &mut dyn Backend) {
        self.stack.free(be);
        for t in [self.images, self.patch_pixels, self.tokens, self.x0, self.dtokens] {
            be.free(t);
        }
        be.free_indices(self.ids);
    }

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
        self.stack.forward(be, &w.blocks, w.norm, self.x0);
    }

    /// The output: the final LayerNorm of every token, `[samples, 1 + kept, dim]`.
    pub fn normed(&self) -> Tensor {
        self.stack.normed
    }

    /// Accumulates parameter gradients into `g`, given ∂L/∂normed.
    pub fn backward(&self, be: &mut dyn Backend, w: &EncoderWeights, g: &EncoderWeights, dnormed: Tensor) {
        let (s, l, d) = (self.shape.samples, self.patches, self.shape.width);
        self.stack.backward(be, &w.blocks, &g.blocks, w.norm, g.norm, self.x0, dnormed);
        be.fill(self.dtokens, 0.0);
        be.gather_rows_backward(self.dtokens, g.cls_token, self.stack.dres, self.ids, s, l, self.shape.tokens, d);
        linear::backward(be, None, g.patch_embed, self.dtokens, self.patch_pixels, w.patch_embed, s * l, self.patch_in, d);
    }
}
