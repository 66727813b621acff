//! Every method as a [`Strategy`]: the DietCL paper's (DietCL, fine-tune, ER, MAE-then-finetune,
//! GDumb, joint) and the rounds of CKCA and continuous training (scratch, warm start, CKCA,
//! continuous).

mod ckca;
mod continuous;
mod dietcl;
mod er;
mod finetune;
mod gdumb;
mod joint;
mod mae_then_finetune;
mod rounds;

use crate::config::{StrategyName, TrainConfig};
use crate::stage::StagePlan;
use crate::strategy::Strategy;

/// The strategy `strategy.name` names.
pub fn build(config: &TrainConfig) -> Box<dyn Strategy> {
    match config.strategy.name {
        StrategyName::Dietcl => Box::new(dietcl::DietCl),
        StrategyName::Finetune => Box::new(finetune::Finetune),
        StrategyName::Er => Box::new(er::Er),
        StrategyName::MaeThenFinetune => Box::new(mae_then_finetune::MaeThenFinetune),
        StrategyName::Gdumb => Box::new(gdumb::GDumb),
        StrategyName::Joint => Box::new(joint::Joint),
        StrategyName::Scratch => Box::new(rounds::Rounds { from_scratch: true }),
        StrategyName::Warmstart => Box::new(rounds::Rounds { from_scratch: false }),
        StrategyName::Ckca => Box::new(ckca::Ckca::default()),
        StrategyName::Continuous => Box::new(continuous::Continuous::default()),
    }
}

/// The stages of time step `t` under the configured strategy.
pub fn plan(config: &TrainConfig, t: usize) -> Vec<StagePlan> {
    build(config).plan(config, t)
}
