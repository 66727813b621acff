//! GDumb: a class-balanced memory (with `strategy.buffer_capacity`, every class keeps an equal
//! random share), and at every time step a model retrained from scratch on the memory alone for
//! the whole budget.

use super::{single, StagePlan};
use crate::budget::Mix;
use crate::config::TrainConfig;

pub fn plan(config: &TrainConfig) -> Vec<StagePlan> {
    single(config, "memory", Mix::BUFFER, false)
}
