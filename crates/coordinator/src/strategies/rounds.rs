//! Rounds of supervised data, the setting of CKCA and of continuous training: every round is one
//! stage of uniform cross-entropy over `strategy.round_data` (the new split, or old and new).
//! - `scratch` re-initialises the model every round;
//! - `warmstart` continues from the last checkpoint;
//! - `ckca` adds FeatReg and AdaKD against the frozen previous checkpoint (`super::ckca`);
//! - `continuous` continues with the levers of `super::continuous`.
//!
//! The first round is the same for all four (nothing to warm-start from), so every method's
//! second round starts from the same old model. This file holds what the four share.

use crate::budget::Mix;
use crate::config::{RoundData, TrainConfig};
use crate::stage::StagePlan;
use crate::strategy::Strategy;
use crate::targets::{current_rows, ClassMap};
use crate::trainer::Trainer;

/// A round's one stage of `steps` optimizer steps.
pub fn round_stages(config: &TrainConfig, steps: usize) -> Vec<StagePlan> {
    vec![StagePlan::single(config, "round", steps, Mix::LABELLED, false)]
}

/// The labelled images of round `t`, new split first: `(new, old)`; `old` is empty when the
/// round sees the new split only.
pub fn round_pool(config: &TrainConfig, trainer: &Trainer, t: usize) -> (Vec<u32>, Vec<u32>) {
    let steps = &trainer.stream.steps;
    let new = steps[t].labelled.clone();
    let old = match config.strategy.round_data {
        RoundData::New => Vec::new(),
        RoundData::All => steps[..t].iter().flat_map(|s| s.labelled.iter().copied()).collect(),
    };
    (new, old)
}

/// A round's losses: softmax and smoothing over every class seen.
pub fn round_rows(config: &TrainConfig, map: &ClassMap, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
    current_rows(map, config.stream.scenario, true, config.augment.current_smoothing, step_classes, seen)
}

/// `scratch` (`from_scratch`) or `warmstart`.
pub struct Rounds {
    pub from_scratch: bool,
}

impl Strategy for Rounds {
    fn stages(&self, config: &TrainConfig, _t: usize) -> Vec<StagePlan> {
        round_stages(config, config.budget.steps)
    }

    fn restarts(&self) -> bool {
        self.from_scratch
    }

    fn prepare(&mut self, trainer: &mut Trainer, t: usize, _old_classes: usize) -> Result<Vec<u32>, crate::error::TrainError> {
        let (new, old) = round_pool(trainer.config, trainer, t);
        Ok(new.into_iter().chain(old).collect())
    }

    fn current_rows(&self, config: &TrainConfig, map: &ClassMap, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
        round_rows(config, map, step_classes, seen)
    }
}
