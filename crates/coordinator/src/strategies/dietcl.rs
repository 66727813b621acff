//! DietCL: stage 1 trains MAE on the current unlabelled data jointly with masked cross-entropy on
//! the current labels and replay of the balanced buffer (40/30/30; 40/60/0 at t = 0); stage 2
//! fine-tunes on the buffer alone at a tenth of the LR.

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::stage::{schedules, StagePlan};
use crate::strategy::Strategy;

pub struct DietCl;

impl Strategy for DietCl {
    fn stages(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan> {
        let steps = config.budget.stage_split.stage_steps(config.budget.steps, t);
        let (lr1, lr2) = schedules(config, steps, config.optim.stage2_lr_scale);
        let mix = if t == 0 { Mix::DIETCL_FIRST } else { Mix::DIETCL };
        vec![
            StagePlan { name: "joint", steps: steps.0, mix, lr: lr1, buffer_past_only: false },
            StagePlan { name: "buffer", steps: steps.1, mix: Mix::BUFFER, lr: lr2, buffer_past_only: false },
        ]
    }
}
