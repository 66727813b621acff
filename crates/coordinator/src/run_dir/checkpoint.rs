//! A run directory's checkpoints. After every time step a stream writes the model
//! (`checkpoints/step-T.safetensors`, timm/MAE names), the optimizer moments
//! (`checkpoints/step-T.optimizer.safetensors`) and then `state.json` (class order, buffer,
//! iteration, metrics so far); MAE pre-training does the same every `pretrain.checkpoint_every`
//! steps under `checkpoints/pretrain-N`. Each file is written atomically, and `state.json` last,
//! so a run killed at any point resumes from its last completed checkpoint; a failed step (a NaN
//! loss, say) writes nothing, so no good checkpoint is ever overwritten.

use super::RunDir;
use crate::error::TrainError;
use rekindle_model::{read_tensor, save_parts, write_tensors, Optimizer, OptimizerState, Part, Vit};
use rekindle_tensor::Backend;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// One checkpoint's model file: its name (`step-T`, `pretrain-N`), the parts it holds and its
/// metadata.
pub struct Checkpoint<'c> {
    pub name: &'c str,
    pub parts: &'c [Part],
    pub meta: HashMap<String, String>,
}

impl RunDir {
    /// The name of time step `step`'s checkpoint.
    pub fn step_name(step: usize) -> String {
        format!("step-{step}")
    }

    pub fn model_path(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(format!("{name}.safetensors"))
    }

    fn optimizer_path(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(format!("{name}.optimizer.safetensors"))
    }

    /// Writes `checkpoint`: the model's parts with their metadata, the optimizer moments, then
    /// `state` as `state.json`, each atomically and `state.json` last, so a run killed before it
    /// resumes from the previous checkpoint.
    pub fn save_checkpoint(&self, be: &mut dyn Backend, vit: &Vit, optimizer: &Optimizer, checkpoint: Checkpoint, state: &impl Serialize) -> Result<(), TrainError> {
        let name = checkpoint.name;
        save_parts(be, vit, &self.model_path(name), checkpoint.parts, checkpoint.meta)?;
        let moments = optimizer.save(be);
        let shape = [moments.first.len()];
        let mut tensors: Vec<(&str, &[usize], &[f32])> = vec![("first", &shape, &moments.first)];
        if let Some(s) = &moments.second {
            tensors.push(("second", &shape, s));
        }
        write_tensors(&self.optimizer_path(name), &tensors, HashMap::new())?;
        crate::fault::at(|| format!("checkpoint:{}", name.trim_start_matches("step-")));
        self.save_state(state)
    }

    /// Removes checkpoint `name` (an older one that a newer checkpoint replaced).
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.model_path(name));
        let _ = std::fs::remove_file(self.optimizer_path(name));
    }

    /// Restores the optimizer moments saved with checkpoint `name`.
    pub fn restore_optimizer(&self, be: &mut dyn Backend, optimizer: &mut Optimizer, name: &str, step: u32) -> Result<(), TrainError> {
        let path = self.optimizer_path(name);
        let first = read_tensor(&path, "first")?;
        let second = read_tensor(&path, "second").ok();
        optimizer.restore(be, &OptimizerState { first, second, step });
        Ok(())
    }
}
