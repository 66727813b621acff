//! Model geometry: presets, overrides by key, and validation that names the bad key.

use crate::ModelError;
use rekindle_tensor::PatchShape;
use serde::{Deserialize, Serialize};

/// The shape of a ViT encoder, its MAE decoder and its classification head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Side of the square input image, in pixels.
    pub image_size: usize,
    /// Colour channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Side of a square patch; must divide `image_size`.
    pub patch: usize,
    /// Encoder width.
    pub dim: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// Encoder attention heads; must divide `dim`.
    pub heads: usize,
    /// MLP hidden width as a multiple of the block width.
    pub mlp_ratio: usize,
    /// MAE decoder width.
    pub decoder_dim: usize,
    /// MAE decoder blocks.
    pub decoder_depth: usize,
    /// MAE decoder heads; must divide `decoder_dim`.
    pub decoder_heads: usize,
    /// Classes of the classification head (it grows as classes arrive).
    pub classes: usize,
    /// Fraction of patches removed for MAE reconstruction.
    pub mask_ratio: f32,
}

/// Names of the built-in presets, in the order `rekindle info` lists them.
pub const PRESETS: [&str; 5] = ["vit-base-16", "vit-small-16", "vit-tiny-16", "vit-tiny-4-32", "vit-micro-4-28"];

impl ModelConfig {
    /// A built-in preset (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<ModelConfig, ModelError> {
        #[rustfmt::skip]
        let (image_size, channels, patch, dim, depth, heads, decoder_dim, decoder_depth, decoder_heads, classes) = match name {
            "vit-base-16" =>    (224, 3, 16, 768, 12, 12, 512, 8, 16, 1000),
            "vit-small-16" =>   (224, 3, 16, 384, 12, 6, 256, 8, 8, 1000),
            "vit-tiny-16" =>    (224, 3, 16, 192, 12, 3, 128, 8, 4, 1000),
            "vit-tiny-4-32" =>  (32, 3, 4, 192, 12, 3, 128, 2, 4, 10),
            "vit-micro-4-28" => (28, 1, 4, 64, 4, 4, 64, 2, 4, 10),
            _ => {
                return Err(ModelError::Config {
                    key: "model.preset".into(),
                    reason: format!("unknown preset '{name}'; known presets: {}", PRESETS.join(", ")),
                })
            }
        };
        let config = ModelConfig {
            image_size,
            channels,
            patch,
            dim,
            depth,
            heads,
            mlp_ratio: 4,
            decoder_dim,
            decoder_depth,
            decoder_heads,
            classes,
            mask_ratio: 0.75,
        };
        config.validate()?;
        Ok(config)
    }

    /// Sets one field from its name and a textual value, as `--set key=value` gives them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Config { key: key.to_string(), reason };
        let int = || value.parse::<usize>().map_err(|_| bad(format!("'{value}' is not a non-negative integer")));
        match key {
            "image_size" => self.image_size = int()?,
            "channels" => self.channels = int()?,
            "patch" => self.patch = int()?,
            "dim" => self.dim = int()?,
            "depth" => self.depth = int()?,
            "heads" => self.heads = int()?,
            "mlp_ratio" => self.mlp_ratio = int()?,
            "decoder_dim" => self.decoder_dim = int()?,
            "decoder_depth" => self.decoder_depth = int()?,
            "decoder_heads" => self.decoder_heads = int()?,
            "classes" => self.classes = int()?,
            "mask_ratio" => self.mask_ratio = value.parse().map_err(|_| bad(format!("'{value}' is not a number")))?,
            _ => {
                return Err(bad(
                    "unknown model key; known keys: image_size, channels, patch, dim, depth, heads, mlp_ratio, \
                     decoder_dim, decoder_depth, decoder_heads, classes, mask_ratio"
                        .into(),
                ))
            }
        }
        self.validate()
    }

    /// Rejects impossible geometry with an error naming the offending key.
    pub fn validate(&self) -> Result<(), ModelError> {
        let fail = |key: &str, reason: String| Err(ModelError::Config { key: key.into(), reason });
        for (key, v) in [
            ("image_size", self.image_size),
            ("channels", self.channels),
            ("patch", self.patch),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("mlp_ratio", self.mlp_ratio),
            ("decoder_dim", self.decoder_dim),
            ("decoder_depth", self.decoder_depth),
            ("decoder_heads", self.decoder_heads),
            ("classes", self.classes),
        ] {
            if v == 0 {
                return fail(key, "must be at least 1".into());
            }
        }
        if !self.image_size.is_multiple_of(self.patch) {
            return fail("patch", format!("image size {} is not divisible by patch {}", self.image_size, self.patch));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return fail("heads", format!("{} heads do not divide width {}", self.heads, self.dim));
        }
        if !self.decoder_dim.is_multiple_of(self.decoder_heads) {
            return fail(
                "decoder_heads",
                format!("{} heads do not divide decoder width {}", self.decoder_heads, self.decoder_dim),
            );
        }
        if !self.dim.is_multiple_of(4) || !self.decoder_dim.is_multiple_of(4) {
            return fail("dim", "widths must be multiples of 4 for the 2-D sin-cos position embedding".into());
        }
        if self.patch_len() < 2 {
            return fail("patch", "a patch needs at least 2 values to normalise MAE targets".into());
        }
        if !(self.mask_ratio >= 0.0 && self.mask_ratio < 1.0) || self.kept_patches() == 0 {
            return fail("mask_ratio", format!("{} must be in [0, 1) and keep at least one patch", self.mask_ratio));
        }
        Ok(())
    }

    /// The patch geometry of a batch of `batch` images.
    pub fn patch_shape(&self, batch: usize) -> PatchShape {
        PatchShape { batch, channels: self.channels, image_size: self.image_size, patch: self.patch }
    }
    pub fn grid(&self) -> usize {
        self.patch_shape(1).grid()
    }
    /// Patches per image (L).
    pub fn patches(&self) -> usize {
        self.patch_shape(1).patches()
    }
    /// Values per flattened patch: patch² · channels.
    pub fn patch_len(&self) -> usize {
        self.patch_shape(1).patch_len()
    }
    /// Patches the MAE encoder sees: floor(L · (1 − mask_ratio)).
    pub fn kept_patches(&self) -> usize {
        (self.patches() as f64 * (1.0 - self.mask_ratio as f64)).floor() as usize
    }
}
