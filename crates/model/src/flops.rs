//! Multiply-add counts of the matrix products, the honest measure of compute per image.
//! Elementwise work (norms, GELU, softmax, losses) is excluded, as fvcore and timm do.

use crate::ModelConfig;
use serde::Serialize;

/// Floating-point operations (2 per multiply-add) per image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Flops {
    /// Classification forward on the full image.
    pub classify_forward: f64,
    /// MAE forward: encoder on the kept patches, decoder on all of them.
    pub mae_forward: f64,
    /// The patch-embedding share of each forward: its backward needs no input gradient.
    patch_embed: f64,
}

/// MACs of one block over `tokens` tokens: qkv, attention scores and mix, projection, MLP.
fn block_macs(tokens: f64, width: f64, hidden: f64) -> f64 {
    tokens * (3.0 * width * width + width * width + 2.0 * width * hidden) + 2.0 * tokens * tokens * width
}

impl Flops {
    pub fn of(c: &ModelConfig) -> Flops {
        let (l, d, dd) = (c.patches() as f64, c.dim as f64, c.decoder_dim as f64);
        let (h, hd) = ((c.dim * c.mlp_ratio) as f64, (c.decoder_dim * c.mlp_ratio) as f64);
        let kept = c.kept_patches() as f64;
        let patch_embed = l * c.patch_len() as f64 * d;
        let classify = patch_embed + c.depth as f64 * block_macs(1.0 + l, d, h) + d * c.classes as f64;
        let mae = patch_embed
            + c.depth as f64 * block_macs(1.0 + kept, d, h)
            + (1.0 + kept) * d * dd
            + c.decoder_depth as f64 * block_macs(1.0 + l, dd, hd)
            + (1.0 + l) * dd * c.patch_len() as f64;
        Flops { classify_forward: 2.0 * classify, mae_forward: 2.0 * mae, patch_embed: 2.0 * patch_embed }
    }

    /// Forward plus backward of one image: the backward costs two products per forward product,
    /// except the patch embedding, which needs only its weight gradient.
    pub fn train(&self, forward: f64) -> f64 {
        3.0 * forward - self.patch_embed
    }
}
