//! `model:`: the preset, its overrides, and the checkpoint a stream starts from.

use super::error::{invalid, ConfigError};
use rekindle_model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A preset from `rekindle info`.
    pub preset: String,
    /// Field overrides, e.g. `{image_size: 32, channels: 3}` (keys as `--set` of `rekindle bench`).
    pub overrides: BTreeMap<String, serde_yaml_ng::Value>,
    /// A safetensors checkpoint to start from (timm/MAE names), e.g. the `mae.safetensors` that
    /// `rekindle pretrain` writes. Every strategy starts its encoder and decoder from it (GDumb's
    /// and scratch's re-initialisations go back to it too); the head is always fresh.
    pub init: Option<PathBuf>,
}

impl Default for ModelSection {
    fn default() -> ModelSection {
        ModelSection { preset: "vit-tiny-4-32".into(), overrides: BTreeMap::new(), init: None }
    }
}

impl ModelSection {
    /// The model geometry: the preset with the overrides applied.
    pub fn geometry(&self) -> Result<ModelConfig, ConfigError> {
        let mut m = ModelConfig::preset(&self.preset).map_err(|e| invalid("model.preset", e.to_string()))?;
        for (key, value) in &self.overrides {
            let text = match value {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
            };
            m.set(key, &text).map_err(|e| invalid(&format!("model.overrides.{key}"), e.to_string()))?;
        }
        Ok(m)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        self.geometry().map(|_| ())
    }
}
