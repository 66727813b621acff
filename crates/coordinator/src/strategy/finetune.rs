//! Fine-tune: cross-entropy on the current step's labelled data only, for the whole budget.

use super::{single, StagePlan};
use crate::budget::Mix;
use crate::config::TrainConfig;

pub fn plan(config: &TrainConfig) -> Vec<StagePlan> {
    single(config, "finetune", Mix::LABELLED, false)
}
