//! Joint training, the upper bound: every labelled image seen so far, sampled uniformly (no step
//! or class balancing), continuing from the previous model with the same budget per time step as
//! every other strategy, so all strategies spend the same total compute.

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::stage::StagePlan;
use crate::strategy::Strategy;
use rekindle_data::Balance;

pub struct Joint;

impl Strategy for Joint {
    fn stages(&self, config: &TrainConfig, _t: usize) -> Vec<StagePlan> {
        vec![StagePlan::whole_budget(config, "joint", Mix::BUFFER, false)]
    }

    fn buffer_balance(&self, _config: &TrainConfig) -> Balance {
        Balance::Uniform
    }
}
