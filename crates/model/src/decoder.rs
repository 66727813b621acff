//! The MAE decoder: embed encoder tokens to the decoder width, put the mask token where patches
//! were removed and restore patch order, add the fixed position table, blocks, LayerNorm, and a
//! linear prediction of every patch's pixels.

use crate::block::{BlockShape, BlockWeights};
use crate::stack::Stack;
use crate::linear::{self, Affine};
use crate::{ModelConfig, ParamTable};
use rekindle_tensor::{Backend, Indices, Tensor};

pub struct DecoderWeights {
    pub embed: Affine,
    pub mask_token: Tensor,
    pub blocks: Vec<BlockWeights>,
    pub norm: Affine,
    pub pred: Affine,
}

impl DecoderWeights {
    pub fn view(table: &ParamTable, buffer: Tensor, depth: usize) -> DecoderWeights {
        let affine = |prefix: &str| Affine::view(table, buffer, prefix);
        DecoderWeights {
            embed: affine("decoder_embed"),
            mask_token: table.view(buffer, "mask_token"),
            blocks: (0..depth).map(|i| BlockWeights::view(table, buffer, &format!("decoder_blocks.{i}"))).collect(),
            norm: affine("decoder_norm"),
            pred: affine("decoder_pred"),
        }
    }
}

pub struct Decoder {
    shape: BlockShape,
    /// Encoder tokens per sample (1 + kept).
    enc_tokens: usize,
    enc_dim: usize,
    patch_len: usize,
    embedded: Tensor,
    ids: Indices,
    y0: Tensor,
    stack: Stack,
    /// Output: `[samples, 1 + patches, patch_len]`; row 0 of each sample belongs to CLS.
    pub pred: Tensor,
    /// Gradient of the loss w.r.t. `pred`, filled by the loss.
    pub dpred: Tensor,
    dnormed: Tensor,
    dembedded: Tensor,
    /// Gradient w.r.t. the encoder output, produced by `backward`.
    pub denc: Tensor,
}

impl Decoder {
    pub fn new(be: &mut dyn Backend, c: &ModelConfig, samples: usize, kept: usize) -> Decoder {
        let l = c.patches();
        let shape = BlockShape {
            samples,
            tokens: 1 + l,
            width: c.decoder_dim,
            heads: c.decoder_heads,
            hidden: c.decoder_dim * c.mlp_ratio,
        };
        let (r, dd, p) = (shape.rows(), c.decoder_dim, c.patch_len());
        let enc_rows = samples * (1 + kept);
        Decoder {
            shape,
            enc_tokens: 1 + kept,
            enc_dim: c.dim,
            patch_len: p,
            embedded: be.alloc(enc_rows * dd),
            ids: be.alloc_indices(r),
            y0: be.alloc(r * dd),
            stack: Stack::new(be, shape, c.decoder_depth),
            pred: be.alloc(r * p),
            dpred: be.alloc(r * p),
            dnormed: be.alloc(r * dd),
            dembedded: be.alloc(enc_rows * dd),
            denc: be.alloc(enc_rows * c.dim),
        }
    }

    /// MAE's `ids_restore [samples, patches]`: patch `j` sits at shuffled position `restore[j]`;
    /// positions `< kept` were encoded, the rest are filled with the mask token.
    pub fn free(&self, be: &mut dyn Backend) {
        self.stack.free(be);
        for t in [self.embedded, self.y0, self.pred, self.dpred, self.dnormed, self.dembedded, self.denc] {
            be.free(t);
        }
        be.free_indices(self.ids);
    }

    pub fn set_restore(&self, be: &mut dyn Backend, restore: &[i32]) {
        let (l, kept) = (self.shape.tokens - 1, self.enc_tokens as i32 - 1);
        assert_eq!(restore.len(), self.shape.samples * l, "restore ids");
        let ids: Vec<i32> = restore
            .chunks_exact(l)
            .flat_map(|r| std::iter::once(0).chain(r.iter().map(move |&p| if p < kept { 1 + p } else { -1 })))
            .collect();
        be.upload_indices(self.ids, &ids);
    }

    /// `enc` is the encoder output `[samples, 1 + kept, dim]`; `pos` the decoder position table.
    pub fn forward(&self, be: &mut dyn Backend, w: &DecoderWeights, enc: Tensor, pos: Tensor) {
        let (s, t, dd, r) = (self.shape.samples, self.shape.tokens, self.shape.width, self.shape.rows());
        linear::forward(be, self.embedded, enc, w.embed, s * self.enc_tokens, self.enc_dim, dd, false);
        be.gather_rows(self.y0, self.embedded, self.ids, w.mask_token, s, self.enc_tokens, t, dd);
        be.add_rows(self.y0, pos, t, dd);
        self.stack.forward(be, &w.blocks, w.norm, self.y0);
        linear::forward(be, self.pred, self.stack.normed, w.pred, r, dd, self.patch_len, false);
    }

    /// From `dpred` (filled by the loss) to `denc`, accumulating parameter gradients into `g`.
    pub fn backward(&self, be: &mut dyn Backend, w: &DecoderWeights, g: &DecoderWeights, enc: Tensor) {
        let (s, t, dd, r) = (self.shape.samples, self.shape.tokens, self.shape.width, self.shape.rows());
        linear::backward(be, Some(self.dnormed), g.pred, self.dpred, self.stack.normed, w.pred, r, dd, self.patch_len);
        self.stack.backward(be, &w.blocks, &g.blocks, w.norm, g.norm, self.y0, self.dnormed);
        be.fill(self.dembedded, 0.0);
        be.gather_rows_backward(self.dembedded, g.mask_token, self.stack.dres, self.ids, s, self.enc_tokens, t, dd);
        linear::backward(be, Some(self.denc), g.embed, self.dembedded, enc, w.embed, s * self.enc_tokens, self.enc_dim, dd);
    }
}
