//! The model flags every command that builds a model shares.

use anyhow::Result;
use rekindle_model::{load_checkpoint, ModelConfig, Vit};
use rekindle_tensor::Backend;
use std::path::PathBuf;

/// A preset plus `--set key=value` overrides, shared by every command that builds a model.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model preset (see `rekindle info`).
    #[arg(long, default_value = "vit-tiny-4-32")]
    pub preset: String,
    /// Override one model field, e.g. `--set depth=6 --set classes=100` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Start from a safetensors checkpoint with timm/MAE tensor names (see
    /// scripts/convert_checkpoint.py); parts absent from the file keep their fresh init.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
}

impl ModelArgs {
    pub fn config(&self) -> Result<ModelConfig> {
        let mut config = ModelConfig::preset(&self.preset)?;
        for o in &self.overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set {o}: expected KEY=VALUE, e.g. --set depth=6"))?;
            config.set(key.trim(), value.trim())?;
        }
        Ok(config)
    }

    /// A fresh model from the preset and overrides, then loaded from `--init` when given.
    pub fn build(&self, be: &mut dyn Backend, seed: u64) -> Result<Vit> {
        let vit = Vit::new(be, &self.config()?, seed)?;
        if let Some(path) = &self.init {
            let report = load_checkpoint(be, &vit, path)?;
            eprintln!("loaded {}: {:?}; kept fresh: {:?}", path.display(), report.loaded, report.kept);
            if !report.unused.is_empty() {
                eprintln!("warning: {} tensors in {} are not used: {}", report.unused.len(), path.display(), report.unused.join(", "));
            }
        }
        Ok(vit)
    }
}
