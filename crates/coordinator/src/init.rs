//! The model a stream starts from, and where GDumb's and scratch's re-initialisations return to.

use crate::config::{ConfigError, TrainConfig};
use crate::error::TrainError;
use crate::run_dir::{META_PRETRAIN_HOLDOUT, META_PRETRAIN_SOURCE};
use rekindle_model::{load_parts, read_metadata, ModelConfig, Vit, BODY};
use rekindle_tensor::Backend;
use std::path::Path;

/// The model a stream starts from: a fresh init from `seed`, with the encoder and decoder of
/// `model.init` when it is set; the head is always fresh, whatever the file holds.
pub fn initial_model(be: &mut dyn Backend, config: &TrainConfig, model_config: &ModelConfig, seed: u64) -> Result<Vit, TrainError> {
    let vit = Vit::new(be, model_config, seed)?;
    if let Some(path) = &config.model.init {
        check_init(config, path)?;
    }
    load_init_body(be, &vit, config)?;
    Ok(vit)
}

/// Sends `vit` back to the start of the stream, as GDumb's and scratch's retraining "from
/// scratch" does: every parameter drawn afresh from `seed`, then the encoder and decoder of
/// `model.init` when it is set, so a pretrained comparison retrains from the pretrained weights.
pub fn restart(be: &mut dyn Backend, vit: &Vit, config: &TrainConfig, seed: u64) -> Result<(), TrainError> {
    vit.reinitialize(be, seed);
    load_init_body(be, vit, config)
}

/// Loads the encoder and decoder of `model.init`, when set, over `vit`.
fn load_init_body(be: &mut dyn Backend, vit: &Vit, config: &TrainConfig) -> Result<(), TrainError> {
    if let Some(path) = &config.model.init {
        load_parts(be, vit, path, &BODY)?;
    }
    Ok(())
}

/// Whether two shard paths name one file (`data/x.shard` and `./data/x.shard` do), comparing
/// the paths as written where either cannot be resolved.
fn same_file(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Refuses a `model.init` that `rekindle pretrain` trained on images this stream would see: the
/// same `data.train` shard with another (or no) holdout.
fn check_init(config: &TrainConfig, path: &Path) -> Result<(), TrainError> {
    let meta = read_metadata(path)?;
    let Some(source) = meta.get(META_PRETRAIN_SOURCE) else { return Ok(()) };
    if source == "synthetic" || !same_file(source, &config.data.train) {
        return Ok(());
    }
    let held = meta.get(META_PRETRAIN_HOLDOUT).and_then(|h| h.parse::<f32>().ok());
    if held != Some(config.data.holdout) {
        return Err(ConfigError::Invalid {
            key: "data.holdout".into(),
            reason: format!(
                "model.init {} was pre-trained on {} of {source}, but this stream holds out {}: it would train on images the pretrained start has seen; set data.holdout to the pre-training value",
                path.display(),
                held.map_or("all".to_string(), |h| format!("the {h} held out")),
                config.data.holdout
            ),
        }
        .into());
    }
    Ok(())
}
