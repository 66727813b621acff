//! Rounds of supervised data, the setting of CKCA and of continuous training: every round is one
//! stage of uniform cross-entropy over `strategy.round_data` (the new split, or old and new).
//! - `scratch` re-initialises the model every round;
//! - `warmstart` continues from the last checkpoint;
//! - `ckca` adds FeatReg and AdaKD against the frozen previous checkpoint (`crate::distill`);
//! - `continuous` continues with the levers of `crate::levers`, and after the first round trains
//!   `round(f · B)` steps (the shortened schedule).
//!
//! The first round is the same for all four (nothing to warm-start from), so every method's
//! second round starts from the same old model.

use super::{single_of, StagePlan};
use crate::budget::Mix;
use crate::config::{RoundData, StrategyName, TrainConfig};
use rekindle_data::Stream;

pub fn plan(config: &TrainConfig, t: usize) -> Vec<StagePlan> {
    let steps = if config.strategy.name == StrategyName::Continuous && t > 0 {
        ((config.continuous.schedule_fraction * config.budget.steps as f64).round() as usize).max(1)
    } else {
        config.budget.steps
    };
    single_of(config, "round", steps, Mix::LABELLED, false)
}

/// The labelled images of round `t`, new split first: `(new, old)`; `old` is empty when the
/// round sees the new split only.
pub fn round_pool(config: &TrainConfig, stream: &Stream, t: usize) -> (Vec<u32>, Vec<u32>) {
    let new = stream.steps[t].labelled.clone();
    let old = match config.strategy.round_data {
        RoundData::New => Vec::new(),
        RoundData::All => stream.steps[..t].iter().flat_map(|s| s.labelled.iter().copied()).collect(),
    };
    (new, old)
}
