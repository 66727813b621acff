//! The data a run reads, and the checks that it fits the model and the ranks.

use crate::budget::accumulation;
use crate::config::{ConfigError, TrainConfig};
use crate::error::TrainError;
use rekindle_data::{DataError, Shard, SyntheticSpec};
use rekindle_model::ModelConfig;
use std::path::Path;

/// Loads `spec` (a shard path or `synthetic`) for the train (`test = false`) or test split.
pub fn open_data(spec: &str, config: &TrainConfig, test: bool) -> Result<Shard, DataError> {
    if spec != "synthetic" {
        return Shard::open(Path::new(spec));
    }
    let s = &config.data.synthetic;
    let per_class = if test { s.test_per_class } else { s.train_per_class };
    // Train and test draw different images from the same classes.
    let seed = config.seed.wrapping_mul(2).wrapping_add(test as u64);
    SyntheticSpec { classes: s.classes, per_class, size: s.size, seed, drift: s.drift }.generate(if test { "synthetic test" } else { "synthetic train" })
}

/// Refuses an effective batch that is not a whole number of micro-batches on every rank.
pub fn check_ranks(key: &str, effective: usize, micro: usize, world: usize) -> Result<(), ConfigError> {
    if accumulation(effective, micro, world).is_none() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("the effective batch {effective} is not a whole number of micro-batches of {micro} on each of {world} ranks"),
        });
    }
    Ok(())
}

/// Refuses a shard whose images the model cannot take.
pub fn check_images(shard: &Shard, model: &ModelConfig, preset: &str) -> Result<(), TrainError> {
    let spec = shard.spec();
    if spec.channels as usize != model.channels || spec.height != spec.width {
        return Err(TrainError::Mismatch(format!(
            "{} holds {}x{}x{} images; model {preset} takes {} channels (square images)",
            shard.path(),
            spec.height,
            spec.width,
            spec.channels,
            model.channels
        )));
    }
    Ok(())
}

/// Loader worker threads: one per core, at most 4 (more only contend with the model's threads).
pub fn loader_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).min(4)
}

/// The images of `step` that the MAE term reconstructs: the unlabelled complement of its
/// labelled images (the reference), or all of them.
pub fn mae_images(step: &rekindle_data::Step, source: crate::config::MaeSource) -> Vec<u32> {
    match source {
        crate::config::MaeSource::All => step.images.clone(),
        // Both lists are ascending.
        crate::config::MaeSource::Unlabelled => step.images.iter().copied().filter(|i| step.labelled.binary_search(i).is_err()).collect(),
    }
}
