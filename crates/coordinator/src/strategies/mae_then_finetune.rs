//! MAE-then-finetune: stage 1 is MAE on the current unlabelled data alone, stage 2 supervised
//! replay of the buffer, with DietCL's stage split. Stage 2 runs at `strategy.finetune_lr_scale`
//! times the base LR (5, as the reference's baseline does: with DietCL's 0.1 its few supervised
//! steps barely move the head).

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::stage::{schedules, StagePlan};
use crate::strategy::Strategy;

pub struct MaeThenFinetune;

impl Strategy for MaeThenFinetune {
    fn stages(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan> {
        // Even at t = 0 the classifier needs a supervised stage, so the split applies at every step.
        let steps = config.budget.stage_split.stage_steps(config.budget.steps, t.max(1));
        let (lr1, lr2) = schedules(config, steps, config.strategy.finetune_lr_scale);
        vec![
            StagePlan { name: "mae", steps: steps.0, mix: Mix::UNLABELLED, lr: lr1, buffer_past_only: false },
            StagePlan { name: "buffer", steps: steps.1, mix: Mix::BUFFER, lr: lr2, buffer_past_only: false },
        ]
    }
}
