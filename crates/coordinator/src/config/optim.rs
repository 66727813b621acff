//! `optim:`: the optimizer of training and its LR schedule.

use super::check::{betas, fraction, non_negative, positive, schedule};
use super::error::{invalid, ConfigError};
use rekindle_model::{OptimName, OptimizerSettings};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    pub name: OptimName,
    /// Base LR before scaling by `effective_batch / 256`.
    pub lr: f64,
    /// The half-cosine's floor.
    pub min_lr: f64,
    /// Stage 2 runs at this multiple of the base LR.
    pub stage2_lr_scale: f64,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    /// Layer-wise LR decay; 1 turns it off.
    pub layer_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    pub nesterov: bool,
    /// Clip the global gradient norm to this (null: no clipping).
    pub clip_grad: Option<f32>,
    /// Start every stage of every time step with a fresh optimizer state.
    pub fresh_per_stage: bool,
    /// Linear warm-up over this fraction of every stage before the cosine (0: none, DietCL).
    pub warmup_fraction: f64,
}

impl Default for OptimSection {
    fn default() -> OptimSection {
        OptimSection {
            name: OptimName::Adamw,
            lr: 1e-4,
            min_lr: 5e-5,
            stage2_lr_scale: 0.1,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: 0.05,
            layer_decay: 0.65,
            momentum: 0.9,
            nesterov: false,
            clip_grad: None,
            fresh_per_stage: true,
            warmup_fraction: 0.0,
        }
    }
}

impl OptimSection {
    /// The update's settings (the LR follows the stage schedules).
    pub fn optimizer(&self) -> OptimizerSettings {
        OptimizerSettings {
            name: self.name,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            layer_decay: self.layer_decay,
            momentum: self.momentum,
            nesterov: self.nesterov,
            clip_grad: self.clip_grad,
        }
    }

    pub fn check(&self, effective_batch: usize) -> Result<(), ConfigError> {
        schedule("optim", self.lr, self.min_lr, effective_batch)?;
        positive("optim.stage2_lr_scale", self.stage2_lr_scale)?;
        betas("optim.betas", self.betas)?;
        positive("optim.eps", self.eps as f64)?;
        non_negative("optim.weight_decay", self.weight_decay as f64)?;
        if !(self.layer_decay > 0.0 && self.layer_decay <= 1.0) {
            return Err(invalid("optim.layer_decay", format!("{} is outside (0, 1] (1 turns it off)", self.layer_decay)));
        }
        fraction("optim.momentum", self.momentum as f64)?;
        if let Some(clip) = self.clip_grad {
            positive("optim.clip_grad", clip as f64)?;
        }
        fraction("optim.warmup_fraction", self.warmup_fraction)
    }
}
