//! `strategy:`: which method runs, and its switches.

use super::check::{at_least_one, non_negative, positive};
use super::error::ConfigError;
use rekindle_data::Balance;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    Dietcl,
    Finetune,
    Er,
    MaeThenFinetune,
    Gdumb,
    Joint,
    /// Fresh init every round, trained on the round's data.
    Scratch,
    /// Every round starts from the last checkpoint.
    Warmstart,
    /// Warm start plus FeatReg and AdaKD against the frozen previous checkpoint.
    Ckca,
    /// Warm start with the `continuous` levers.
    Continuous,
}

/// Which labelled data a round of `scratch`, `warmstart`, `ckca` or `continuous` trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundData {
    /// The newly arrived split only (the CKCA setting).
    New,
    /// Every split so far, old and new (the continuous-training setting).
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// Uniform over the buffer, the current step included.
    Uniform,
    /// Half current labelled data, half buffer of past steps.
    Batchmix,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategySection {
    pub name: StrategyName,
    /// Weight of the MAE loss in DietCL's stage 1.
    pub mae_weight: f32,
    /// ER's sampling (`er` only).
    pub replay: ReplayMode,
    /// How the buffer is sampled (`gdumb` is always class-balanced, `joint` always uniform).
    pub buffer_balance: Balance,
    /// Most images the buffer keeps (null: all).
    pub buffer_capacity: Option<usize>,
    /// The data of each round for `scratch`, `warmstart`, `ckca`, `continuous`.
    pub round_data: RoundData,
    /// Which current images the MAE term reconstructs (`dietcl`, `mae-then-finetune`).
    pub mae_source: MaeSource,
    /// `smallest-step`: every step of the buffer is cut to the smallest step's labelled count,
    /// as the DietCL reference's unlimited buffer does (`none`: keep every label).
    pub buffer_cut: BufferCut,
    /// Every this many optimizer steps (and at each stage's first), write the encoder-only
    /// gradient norm of each weighted loss term (MAE, current, buffer) to metrics.jsonl (0:
    /// never). Costs a copy of the gradients per term at those steps.
    pub term_norms_every: usize,
    /// `mae-then-finetune`'s supervised stage runs at this multiple of the base LR (the
    /// reference's MAE-then-finetune baseline fine-tunes at 5×; DietCL's stage 2 keeps
    /// `optim.stage2_lr_scale`).
    pub finetune_lr_scale: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaeSource {
    /// The step's unlabelled images only, the complement of the labelled ones (the reference).
    Unlabelled,
    /// Every image of the step, labelled ones included.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferCut {
    None,
    SmallestStep,
}

impl Default for StrategySection {
    fn default() -> StrategySection {
        StrategySection {
            name: StrategyName::Dietcl,
            mae_weight: 50.0,
            replay: ReplayMode::Uniform,
            buffer_balance: Balance::Task,
            buffer_capacity: None,
            round_data: RoundData::All,
            mae_source: MaeSource::Unlabelled,
            buffer_cut: BufferCut::None,
            term_norms_every: 0,
            finetune_lr_scale: 5.0,
        }
    }
}

impl StrategySection {
    pub fn check(&self) -> Result<(), ConfigError> {
        non_negative("strategy.mae_weight", self.mae_weight as f64)?;
        positive("strategy.finetune_lr_scale", self.finetune_lr_scale)?;
        if let Some(capacity) = self.buffer_capacity {
            at_least_one("strategy.buffer_capacity", capacity, "image (null keeps every label)")?;
        }
        Ok(())
    }
}
