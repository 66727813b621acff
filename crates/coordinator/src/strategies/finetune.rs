//! Fine-tune: cross-entropy on the current step's labelled data only, for the whole budget.

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::stage::StagePlan;
use crate::strategy::Strategy;

pub struct Finetune;

impl Strategy for Finetune {
    fn stages(&self, config: &TrainConfig, _t: usize) -> Vec<StagePlan> {
        vec![StagePlan::whole_budget(config, "finetune", Mix::LABELLED, false)]
    }
}
