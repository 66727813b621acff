//! `pretrain:`: MAE pre-training (`rekindle pretrain`).

use super::check::{at_least_one, betas, fraction, non_negative, schedule};
use super::error::{invalid, ConfigError};
use super::optim::OptimSection;
use crate::budget::accumulation;
use serde::{Deserialize, Serialize};

/// MAE pre-training of encoder and decoder on the images `data.holdout` keeps out of the stream,
/// with the MAE recipe (AdamW 0.9/0.95, weight decay 0.05, base LR 1.5e-4 × effective/256,
/// linear warm-up then half-cosine), the unlabelled augmentation when `augment.enabled`, and the
/// model's `mask_ratio`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainSection {
    /// Pre-train on this shard (or `synthetic`), all of it, instead of the part of `data.train`
    /// that `data.holdout` keeps out of the stream (e.g. an out-of-domain start).
    pub data: Option<String>,
    /// Optimizer steps, each at `effective_batch`.
    pub steps: usize,
    pub effective_batch: usize,
    /// Images per forward/backward on one rank.
    pub micro_batch: usize,
    /// Base LR before scaling by `effective_batch / 256`.
    pub lr: f64,
    /// The half-cosine's floor.
    pub min_lr: f64,
    /// Linear warm-up over this fraction of the steps.
    pub warmup_fraction: f64,
    pub betas: (f32, f32),
    pub weight_decay: f32,
    /// Write a resumable checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

impl Default for PretrainSection {
    fn default() -> PretrainSection {
        PretrainSection {
            data: None,
            steps: 1000,
            effective_batch: 1024,
            micro_batch: 256,
            lr: 1.5e-4,
            min_lr: 0.0,
            warmup_fraction: 0.05,
            betas: (0.9, 0.95),
            weight_decay: 0.05,
            checkpoint_every: 100,
        }
    }
}

impl PretrainSection {
    pub fn check(&self) -> Result<(), ConfigError> {
        at_least_one("pretrain.steps", self.steps, "optimizer step")?;
        if self.micro_batch == 0 || accumulation(self.effective_batch, self.micro_batch, 1).is_none() {
            return Err(invalid("pretrain.micro_batch", format!("{} must divide the effective batch {}", self.micro_batch, self.effective_batch)));
        }
        schedule("pretrain", self.lr, self.min_lr, self.effective_batch)?;
        fraction("pretrain.warmup_fraction", self.warmup_fraction)?;
        betas("pretrain.betas", self.betas)?;
        non_negative("pretrain.weight_decay", self.weight_decay as f64)
    }

    /// The AdamW settings of pre-training: no layer-wise decay, no clipping.
    pub fn optim(&self) -> OptimSection {
        OptimSection { lr: self.lr, min_lr: self.min_lr, betas: self.betas, weight_decay: self.weight_decay, layer_decay: 1.0, warmup_fraction: self.warmup_fraction, ..OptimSection::default() }
    }
}
