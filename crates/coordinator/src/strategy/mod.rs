//! Strategies: what each time step trains on, as a list of stages over the shared engine.

mod dietcl;
mod er;
mod finetune;
mod gdumb;
mod joint;
mod mae_then_finetune;
mod rounds;

use crate::budget::Mix;
use crate::config::{MaeSource, StrategyName, TrainConfig};
use rekindle_data::{Balance, Step};
use crate::schedule::{scaled_lr, stages, Cosine};

/// One stage of one time step.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub name: &'static str,
    pub steps: usize,
    pub mix: Mix,
    pub lr: Cosine,
    /// Buffer images come from past steps only.
    pub buffer_past_only: bool,
}

/// The stages of time step `t` under the configured strategy.
pub fn plan(config: &TrainConfig, t: usize) -> Vec<StagePlan> {
    let stages = match config.strategy.name {
        StrategyName::Dietcl => dietcl::plan(config, t),
        StrategyName::Finetune => finetune::plan(config),
        StrategyName::Er => er::plan(config, t),
        StrategyName::MaeThenFinetune => mae_then_finetune::plan(config, t),
        StrategyName::Gdumb => gdumb::plan(config),
        StrategyName::Joint => joint::plan(config),
        StrategyName::Scratch | StrategyName::Warmstart | StrategyName::Ckca | StrategyName::Continuous => rounds::plan(config, t),
    };
    stages.into_iter().filter(|s| s.steps > 0).collect()
}

/// The stage-1 and stage-2 LR schedules for a split of `steps`, stage 2 at `stage2_scale` times
/// the base LR.
fn schedules(config: &TrainConfig, steps: (usize, usize), stage2_scale: f64) -> (Cosine, Cosine) {
    let o = &config.optim;
    stages(scaled_lr(o.lr, config.budget.effective_batch), o.min_lr, stage2_scale, o.warmup_fraction, steps)
}

/// A single stage over the whole budget.
fn single(config: &TrainConfig, name: &'static str, mix: Mix, buffer_past_only: bool) -> Vec<StagePlan> {
    single_of(config, name, config.budget.steps, mix, buffer_past_only)
}

/// A single stage of `steps` optimizer steps.
fn single_of(config: &TrainConfig, name: &'static str, steps: usize, mix: Mix, buffer_past_only: bool) -> Vec<StagePlan> {
    let (lr, _) = schedules(config, (steps, 0), 1.0);
    vec![StagePlan { name, steps, mix, lr, buffer_past_only }]
}

/// How the strategy samples its buffer.
pub fn buffer_balance(config: &TrainConfig) -> Balance {
    match config.strategy.name {
        StrategyName::Gdumb => Balance::Class,
        StrategyName::Joint => Balance::Uniform,
        _ => config.strategy.buffer_balance,
    }
}

/// Whether the model starts from a fresh init at every time step.
pub fn retrains_from_scratch(config: &TrainConfig) -> bool {
    matches!(config.strategy.name, StrategyName::Gdumb | StrategyName::Scratch)
}

pub use rounds::round_pool;

/// The images of `step` that the MAE term reconstructs: the unlabelled complement of its
/// labelled images (the reference), or all of them.
pub fn mae_images(step: &Step, source: MaeSource) -> Vec<u32> {
    match source {
        MaeSource::All => step.images.clone(),
        // Both lists are ascending.
        MaeSource::Unlabelled => step.images.iter().copied().filter(|i| step.labelled.binary_search(i).is_err()).collect(),
    }
}
