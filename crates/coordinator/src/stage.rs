//! A stage of a time step: how many optimizer steps, drawn from which sources, at which LR.

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::schedule::{scaled_lr, stages, Cosine};

/// One stage of one time step.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub name: &'static str,
    pub steps: usize,
    pub mix: Mix,
    pub lr: Cosine,
    /// Buffer images come from past steps only.
    pub buffer_past_only: bool,
}

impl StagePlan {
    /// A stage of `steps` optimizer steps on its own half-cosine at the base LR.
    pub fn single(config: &TrainConfig, name: &'static str, steps: usize, mix: Mix, buffer_past_only: bool) -> StagePlan {
        let (lr, _) = schedules(config, (steps, 0), 1.0);
        StagePlan { name, steps, mix, lr, buffer_past_only }
    }

    /// A stage over the whole budget.
    pub fn whole_budget(config: &TrainConfig, name: &'static str, mix: Mix, buffer_past_only: bool) -> StagePlan {
        StagePlan::single(config, name, config.budget.steps, mix, buffer_past_only)
    }
}

/// The stage-1 and stage-2 LR schedules for a split of `steps`, stage 2 at `stage2_scale` times
/// the base LR.
pub fn schedules(config: &TrainConfig, steps: (usize, usize), stage2_scale: f64) -> (Cosine, Cosine) {
    let o = &config.optim;
    stages(scaled_lr(o.lr, config.budget.effective_batch), o.min_lr, stage2_scale, o.warmup_fraction, steps)
}
