//! The experiment config (`rekindle train CONFIG.yaml`). Every field has a default; unknown keys
//! and impossible values are rejected with a message naming the key.
//!
//! Layout: this file is the schema's root and the parse (YAML, then `--set` overrides from
//! [`overrides`], then validation); each section's struct sits in its own file with its default
//! and its checks (`check`), and [`check`] holds the checks they share.

mod augment;
mod budget;
mod check;
mod checkpoint;
mod ckca;
mod continuous;
mod data;
mod error;
mod model;
mod optim;
mod overrides;
mod pretrain;
mod strategy;
mod stream;

pub use augment::{AugmentSection, CurrentSmoothing};
pub use budget::BudgetSection;
pub use checkpoint::CheckpointSection;
pub use ckca::{CkcaSection, KdWeighting};
pub use continuous::{ContinuousSection, InitLever, L2Reference};
pub use data::{DataSection, SyntheticSection};
pub use error::ConfigError;
pub use model::ModelSection;
pub use optim::OptimSection;
pub use pretrain::PretrainSection;
pub use rekindle_model::OptimName;
pub use strategy::{BufferCut, MaeSource, ReplayMode, RoundData, StrategyName, StrategySection};
pub use stream::StreamSection;

use rekindle_model::ModelConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds model init, streams, label splits, buffer draws, masks and augmentation.
    pub seed: u64,
    pub model: ModelSection,
    pub data: DataSection,
    pub stream: StreamSection,
    pub budget: BudgetSection,
    pub strategy: StrategySection,
    pub optim: OptimSection,
    pub augment: AugmentSection,
    /// CKCA's distillation from the previous checkpoint (`strategy.name: ckca`).
    pub ckca: CkcaSection,
    /// The levers of continuous training (`strategy.name: continuous`).
    pub continuous: ContinuousSection,
    /// MAE pre-training (`rekindle pretrain`) on the held-out part of `data.train`.
    pub pretrain: PretrainSection,
    /// Which checkpoints a run keeps on disk.
    pub checkpoint: CheckpointSection,
    /// CPU worker threads for the model (0: one per core).
    pub threads: usize,
}

impl TrainConfig {
    /// Parses YAML text, applies `key.path=value` overrides, and validates.
    pub fn from_yaml(source: &str, text: &str, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let parse = |reason: String| ConfigError::Parse { path: source.into(), reason };
        let mut doc: serde_yaml_ng::Value = if text.trim().is_empty() {
            serde_yaml_ng::Value::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| parse(e.to_string()))?
        };
        overrides::apply(&mut doc, overrides)?;
        let config: TrainConfig = serde_yaml_ng::from_value(doc).map_err(|e| parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The model geometry: the preset with the overrides applied.
    pub fn model_config(&self) -> Result<ModelConfig, ConfigError> {
        self.model.geometry()
    }

    /// Every section's checks; the first refusal names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.check()?;
        self.data.check()?;
        self.stream.check()?;
        self.budget.check()?;
        self.strategy.check()?;
        self.optim.check(self.budget.effective_batch)?;
        self.augment.check()?;
        self.ckca.check()?;
        self.continuous.check()?;
        self.checkpoint.check()?;
        self.pretrain.check()
    }
}
