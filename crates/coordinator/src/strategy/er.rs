//! Experience replay: uniform over the buffer (the current step included), or "batchmix": half
//! current labelled data, half buffer of past steps (all current at t = 0, when there is no past).

use super::{single, StagePlan};
use crate::budget::Mix;
use crate::config::{ReplayMode, TrainConfig};

pub fn plan(config: &TrainConfig, t: usize) -> Vec<StagePlan> {
    match config.strategy.replay {
        ReplayMode::Uniform => single(config, "replay", Mix::BUFFER, false),
        ReplayMode::Batchmix if t == 0 => single(config, "batchmix", Mix::LABELLED, false),
        ReplayMode::Batchmix => single(config, "batchmix", Mix { unlabelled: 0.0, labelled: 0.5, buffer: 0.5 }, true),
    }
}
