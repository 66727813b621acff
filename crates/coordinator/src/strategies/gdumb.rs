//! GDumb: a class-balanced memory (with `strategy.buffer_capacity`, every class keeps an equal
//! random share), and at every time step a model retrained from scratch on the memory alone for
//! the whole budget.

use crate::budget::Mix;
use crate::config::TrainConfig;
use crate::stage::StagePlan;
use crate::strategy::Strategy;
use rekindle_data::Balance;

pub struct GDumb;

impl Strategy for GDumb {
    fn stages(&self, config: &TrainConfig, _t: usize) -> Vec<StagePlan> {
        vec![StagePlan::whole_budget(config, "memory", Mix::BUFFER, false)]
    }

    fn buffer_balance(&self, _config: &TrainConfig) -> Balance {
        Balance::Class
    }

    fn restarts(&self) -> bool {
        true
    }
}
