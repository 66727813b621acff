//! A run directory's checkpoints, each a resumable state:
//! - at the end of time step T, `checkpoints/step-T.safetensors`: the model alone (timm/MAE
//!   names). The optimizer restarts at every time step, so nothing else is needed, and these are
//!   kept for good: `eval`, warm starts and a resume inside step T+1 read them;
//! - inside a time step (`budget.checkpoint_every`, or a stop by a signal),
//!   `checkpoints/step-T-iter-K.*`: the model after K of the step's optimizer steps and the
//!   optimizer moments (`.optimizer.safetensors`); MAE pre-training writes `pretrain-N.*` alike.
//!   Only the newest `checkpoint.keep` resumable states keep these files.
//!
//! Each checkpoint's `NAME.state.json` holds what a resume needs besides tensors; `state.json`
//! at the root is a copy of the newest, written last, so a run killed at any point resumes from
//! its last completed checkpoint (an older one: copy its `NAME.state.json` over `state.json`).
//! Every file is written atomically, and a failed step (a NaN loss, say) writes nothing, so no
//! good checkpoint is ever overwritten.

use super::{write_atomically, RunDir};
use crate::config::CheckpointSection;
use crate::error::TrainError;
use rekindle_model::{load_parts, read_metadata, read_tensor, save_parts, write_tensors, Optimizer, OptimizerState, Part, Vit};
use rekindle_tensor::Backend;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// The metadata key of the run id every checkpoint of a run carries.
pub const META_RUN_ID: &str = "rekindle.run_id";

/// One checkpoint: its name (`step-T`, `step-T-iter-K`, `pretrain-N`), the model parts it
/// holds, their metadata, and the optimizer when it is written inside a stage.
pub struct Checkpoint<'c> {
    pub name: &'c str,
    pub parts: &'c [Part],
    pub meta: HashMap<String, String>,
    pub optimizer: Option<&'c Optimizer>,
}

impl RunDir {
    /// The name of the checkpoint at the end of time step `step`.
    pub fn step_name(step: usize) -> String {
        format!("step-{step}")
    }

    /// The name of the checkpoint after `step_iteration` optimizer steps of time step `step`.
    pub fn inside_name(step: usize, step_iteration: usize) -> String {
        format!("step-{step}-iter-{step_iteration}")
    }

    pub fn model_path(&self, name: &str) -> PathBuf {
        self.checkpoint_file(name, "safetensors")
    }

    fn checkpoint_file(&self, name: &str, extension: &str) -> PathBuf {
        self.root.join("checkpoints").join(format!("{name}.{extension}"))
    }

    /// Writes `checkpoint` (model, optimizer moments, `NAME.state.json`), then `state` as the
    /// root `state.json`, each atomically and that last, so a run killed before it resumes from
    /// the previous checkpoint. Then drops the files of resumable states beyond `keep`.
    pub fn save_checkpoint(&self, be: &mut dyn Backend, vit: &Vit, checkpoint: Checkpoint, state: &impl Serialize, keep: &CheckpointSection) -> Result<(), TrainError> {
        let name = checkpoint.name;
        save_parts(be, vit, &self.model_path(name), checkpoint.parts, checkpoint.meta)?;
        if let Some(optimizer) = checkpoint.optimizer {
            let moments = optimizer.save(be);
            let shape = [moments.first.len()];
            let mut tensors: Vec<(&str, &[usize], &[f32])> = vec![("first", &shape, &moments.first)];
            if let Some(s) = &moments.second {
                tensors.push(("second", &shape, s));
            }
            write_tensors(&self.checkpoint_file(name, "optimizer.safetensors"), &tensors, HashMap::new())?;
        }
        let text = serde_json::to_string(state).expect("state serialises");
        write_atomically(&self.checkpoint_file(name, "state.json"), text.as_bytes())?;
        crate::fault::at(|| format!("checkpoint:{}", name.trim_start_matches("step-")));
        write_atomically(&self.state_path(), text.as_bytes())?;
        if !keep.keep_all {
            self.prune(keep.keep);
        }
        Ok(())
    }

    /// Deletes the model and optimizer files of the resumable states inside time steps that are
    /// not among the newest `keep` (time steps' own model files always stay).
    fn prune(&self, keep: usize) {
        let Ok(entries) = std::fs::read_dir(self.root.join("checkpoints")) else { return };
        let mut states: Vec<(Order, String)> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".state.json").map(str::to_string))
            .filter_map(|name| Some((order(&name)?, name)))
            .collect();
        states.sort();
        let older = states.len().saturating_sub(keep);
        for (_, name) in &states[..older] {
            if self.checkpoint_file(name, "optimizer.safetensors").exists() {
                let _ = std::fs::remove_file(self.model_path(name));
                let _ = std::fs::remove_file(self.checkpoint_file(name, "optimizer.safetensors"));
                let _ = std::fs::remove_file(self.checkpoint_file(name, "state.json"));
            }
        }
    }

    /// Loads `parts` of checkpoint `name` into `vit`, after checking that it belongs to run
    /// `run_id` (a file of another run, copied in or left behind, is refused).
    pub fn load_model(&self, be: &mut dyn Backend, vit: &Vit, name: &str, parts: &[Part], run_id: &str) -> Result<(), TrainError> {
        let path = self.model_path(name);
        let owner = read_metadata(&path)?.remove(META_RUN_ID).unwrap_or_default();
        if owner != run_id {
            return Err(TrainError::State { path, reason: format!("it belongs to run '{owner}', not to this directory's run {run_id}") });
        }
        load_parts(be, vit, &path, parts)?;
        Ok(())
    }

    /// Restores the optimizer moments saved with checkpoint `name`.
    pub fn restore_optimizer(&self, be: &mut dyn Backend, optimizer: &mut Optimizer, name: &str, step: u32) -> Result<(), TrainError> {
        let path = self.checkpoint_file(name, "optimizer.safetensors");
        let first = read_tensor(&path, "first")?;
        let second = read_tensor(&path, "second").ok();
        optimizer.restore(be, &OptimizerState { first, second, step });
        Ok(())
    }
}

/// Where a checkpoint falls in its run: (time step, optimizer steps into it); a time step's end
/// comes after every checkpoint inside it.
type Order = (usize, usize);

fn order(name: &str) -> Option<Order> {
    if let Some(n) = name.strip_prefix("pretrain-") {
        return Some((0, n.parse().ok()?));
    }
    let rest = name.strip_prefix("step-")?;
    match rest.split_once("-iter-") {
        Some((t, k)) => Some((t.parse().ok()?, k.parse().ok()?)),
        None => Some((rest.parse().ok()?, usize::MAX)),
    }
}
