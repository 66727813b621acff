//! Joint training, the upper bound: every labelled image seen so far, sampled uniformly (no step
//! or class balancing), continuing from the previous model with the same budget per time step as
//! every other strategy, so all strategies spend the same total compute.

use super::{single, StagePlan};
use crate::budget::Mix;
use crate::config::TrainConfig;

pub fn plan(config: &TrainConfig) -> Vec<StagePlan> {
    single(config, "joint", Mix::BUFFER, false)
}
