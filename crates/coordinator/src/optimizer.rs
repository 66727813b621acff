//! The optimizer state over the flat parameter buffer: AdamW (betas, decay mask, layer-wise LR
//! decay) or SGD (momentum, Nesterov), with optional clipping by global gradient norm.

use crate::config::{OptimName, OptimSection};
use rekindle_model::Vit;
use rekindle_tensor::{AdamW, Backend, ParamGroup, Sgd, Tensor};

pub struct Optimizer {
    settings: OptimSection,
    groups: Vec<ParamGroup>,
    /// AdamW's first and second moments, or SGD's momentum buffer in `first`.
    first: Tensor,
    second: Option<Tensor>,
    step: u32,
}

impl Optimizer {
    pub fn new(be: &mut dyn Backend, vit: &Vit, settings: &OptimSection) -> Optimizer {
        let n = vit.table.total;
        let second = (settings.name == OptimName::Adamw).then(|| be.alloc(n));
        Optimizer { settings: settings.clone(), groups: vit.table.groups(vit.config.depth, settings.layer_decay), first: be.alloc(n), second, step: 0 }
    }

    /// A fresh state (zero moments, step 0), e.g. at each stage; rebuilt if the model grew.
    pub fn reset(&mut self, be: &mut dyn Backend, vit: &Vit) {
        if self.first.len != vit.table.total {
            be.free(self.first);
            if let Some(s) = self.second {
                be.free(s);
            }
            *self = Optimizer::new(be, vit, &self.settings);
            return;
        }
        be.fill(self.first, 0.0);
        if let Some(s) = self.second {
            be.fill(s, 0.0);
        }
        self.step = 0;
    }

    /// The moments and step count, for checkpoints: (first, second, step).
    pub fn save(&self, be: &mut dyn Backend) -> (Vec<f32>, Option<Vec<f32>>, u32) {
        (be.download_vec(self.first), self.second.map(|t| be.download_vec(t)), self.step)
    }

    pub fn step_count(&self) -> u32 {
        self.step
    }

    pub fn restore(&mut self, be: &mut dyn Backend, first: &[f32], second: Option<&[f32]>, step: u32) {
        be.upload(self.first, first);
        if let (Some(t), Some(v)) = (self.second, second) {
            be.upload(t, v);
        }
        self.step = step;
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
