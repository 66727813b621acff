//! Experience replay: uniform over the buffer (the current step included), or "batchmix": half
//! current labelled data, half buffer of past steps (all current at t = 0, when there is no past).

use crate::budget::Mix;
use crate::config::{ReplayMode, TrainConfig};
use crate::stage::StagePlan;
use crate::strategy::Strategy;

pub struct Er;

impl Strategy for Er {
    fn stages(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan> {
        let stage = match config.strategy.replay {
            ReplayMode::Uniform => StagePlan::whole_budget(config, "replay", Mix::BUFFER, false),
            ReplayMode::Batchmix if t == 0 => StagePlan::whole_budget(config, "batchmix", Mix::LABELLED, false),
            ReplayMode::Batchmix => StagePlan::whole_budget(config, "batchmix", Mix { unlabelled: 0.0, labelled: 0.5, buffer: 0.5 }, true),
        };
        vec![stage]
    }
}
