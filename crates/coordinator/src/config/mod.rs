//! The experiment config (`rekindle train CONFIG.yaml`). Every field has a default; unknown keys
//! and impossible values are rejected with a message naming the key.
//!
//! Layout: this file is the schema's root and the parse (YAML, then `--set` overrides from
//! [`overrides`], then validation); each section's struct sits in its own file with its default
//! and its checks (`check`), and [`check`] holds the checks they share.

mod augment;
mod budget;
mod changes;
mod check;
mod checkpoint;
mod ckca;
mod continuous;
mod data;
mod error;
mod logging;
mod model;
mod optim;
mod overrides;
mod pretrain;
mod strategy;
mod stream;

pub use augment::{AugmentSection, CurrentSmoothing};
pub use budget::BudgetSection;
pub use changes::{changes, flat_keys, Changes};
pub use checkpoint::CheckpointSection;
pub use ckca::{CkcaSection, KdWeighting};
pub use continuous::{ContinuousSection, InitLever, L2Reference};
pub use data::{DataSection, SyntheticSection};
pub use error::ConfigError;
pub use logging::LoggingSection;
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
    /// TensorBoard and CSV logs beside `metrics.jsonl`.
    pub logging: LoggingSection,
}

impl TrainConfig {
    /// Parses YAML text, applies `key.path=value` overrides, and validates. An error of the file
    /// names `source`, the key path and the line; one that an override brings names the override.
    pub fn from_yaml(source: &str, text: &str, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        // The YAML first, so that a syntax error is told as one rather than as the wrong type
        // the parser saw first; then the schema, from the text, so that its errors have a line.
        let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| error::in_file(source, &e))?;
        let mut config: TrainConfig = serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e| error::in_file_at(source, &e))?;
        if !overrides.is_empty() {
            if doc.is_null() {
                doc = serde_yaml_ng::Value::Mapping(Default::default());
            }
            // Each override on the document the ones before it left, which parses: what goes
            // wrong is that override's.
            doc.apply_merge().map_err(|e| error::in_file(source, &e))?;
            serde_path_to_error::deserialize::<_, TrainConfig>(doc.clone()).map_err(|e| error::in_file_at(source, &e))?;
            for set in overrides {
                overrides::apply(&mut doc, set).map_err(|reason| ConfigError::Override { set: set.clone(), reason })?;
                config = serde_path_to_error::deserialize(doc.clone()).map_err(|e| error::in_override(set, &e))?;
            }
        }
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
        self.logging.check()?;
        self.pretrain.check()
    }
}
