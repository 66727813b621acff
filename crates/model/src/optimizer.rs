//! The optimizer over a model's flat parameter buffer: AdamW (betas, decay mask, layer-wise LR
//! decay) or SGD (momentum, Nesterov), with optional clipping by the global gradient norm. It
//! lives beside the model because it is parameter-space maths over the same table: the trainer,
//! pre-training and `rekindle bench` all update through this one type.

use crate::Vit;
use rekindle_tensor::{AdamW, Backend, ParamGroup, Sgd, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimName {
    Adamw,
    Sgd,
}

/// Everything an update needs besides the learning rate (which follows a schedule).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSettings {
    pub name: OptimName,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    /// Layer-wise LR decay; 1 turns it off.
    pub layer_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    pub nesterov: bool,
    /// Clip the global gradient norm to this.
    pub clip_grad: Option<f32>,
}

/// The moments and step count of a checkpoint.
pub struct OptimizerState {
    pub first: Vec<f32>,
    /// AdamW's second moments (SGD has none).
    pub second: Option<Vec<f32>>,
    pub step: u32,
}

pub struct Optimizer {
    settings: OptimizerSettings,
    groups: Vec<ParamGroup>,
    /// AdamW's first and second moments, or SGD's momentum buffer in `first`.
    first: Tensor,
    second: Option<Tensor>,
    step: u32,
}

impl Optimizer {
    pub fn new(be: &mut dyn Backend, vit: &Vit, settings: &OptimizerSettings) -> Optimizer {
        let n = vit.table.total;
        let second = (settings.name == OptimName::Adamw).then(|| be.alloc(n));
        Optimizer { settings: settings.clone(), groups: vit.table.groups(vit.config.depth, settings.layer_decay), first: be.alloc(n), second, step: 0 }
    }

    /// A fresh state (zero moments, step 0), e.g. at each stage; rebuilt if the model grew.
    pub fn reset(&mut self, be: &mut dyn Backend, vit: &Vit) {
        if self.first.len != vit.table.total {
            self.free(be);
            *self = Optimizer::new(be, vit, &self.settings);
            return;
        }
        be.fill(self.first, 0.0);
        if let Some(s) = self.second {
            be.fill(s, 0.0);
        }
        self.step = 0;
    }

    /// Returns the moments' device memory.
    pub fn free(&self, be: &mut dyn Backend) {
        be.free(self.first);
        if let Some(s) = self.second {
            be.free(s);
        }
    }

    /// The moments and step count, for checkpoints.
    pub fn save(&self, be: &mut dyn Backend) -> OptimizerState {
        OptimizerState { first: be.download_vec(self.first), second: self.second.map(|t| be.download_vec(t)), step: self.step }
    }

    pub fn step_count(&self) -> u32 {
        self.step
    }

    pub fn restore(&mut self, be: &mut dyn Backend, state: &OptimizerState) {
        be.upload(self.first, &state.first);
        if let (Some(t), Some(v)) = (self.second, &state.second) {
            be.upload(t, v);
        }
        self.step = state.step;
    }

    /// One update at learning rate `lr`; returns the global gradient norm before clipping.
    pub fn update(&mut self, be: &mut dyn Backend, vit: &Vit, lr: f64) -> f32 {
        let norm = be.sum_squares(vit.grads).sqrt();
        let grad_scale = match self.settings.clip_grad {
            Some(max) if norm > max => max / norm,
            _ => 1.0,
        };
        self.step += 1;
        let s = &self.settings;
        match self.second {
            Some(v) => {
                let hp = AdamW { lr: lr as f32, beta1: s.betas.0, beta2: s.betas.1, eps: s.eps, weight_decay: s.weight_decay, step: self.step, grad_scale };
                be.adamw(vit.params, vit.grads, self.first, v, &self.groups, &hp);
            }
            None => {
                let hp = Sgd { lr: lr as f32, momentum: s.momentum, nesterov: s.nesterov, weight_decay: s.weight_decay, grad_scale };
                be.sgd(vit.params, vit.grads, self.first, &self.groups, &hp);
            }
        }
        norm
    }
}
