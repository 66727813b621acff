//! A run directory's checkpoints. After every time step a stream writes the model
//! (`checkpoints/step-T.safetensors`, timm/MAE names), the optimizer moments
//! (`checkpoints/step-T.optimizer.safetensors`) and then `state.json` (class order, buffer,
//! iteration, metrics so far); MAE pre-training does the same every `pretrain.checkpoint_every`
//! steps under `checkpoints/pretrain-N`. Each file is written atomically, and `state.json` last, so a run
//! killed at any point resumes from its last completed time step; a failed step (a NaN loss,
//! say) writes nothing, so no good checkpoint is ever overwritten.

use crate::metrics::Summary;
use crate::optimizer::Optimizer;
use crate::run::TrainError;
use crate::targets::ClassMap;
use rekindle_data::ReplayBuffer;
use rekindle_model::{read_tensor, save_parts, write_tensors, ModelError, Part, Vit, ALL_PARTS};
use rekindle_tensor::Backend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything besides tensors that a resumed run needs to continue exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Time steps finished (trained and evaluated).
    pub completed_steps: usize,
    /// Global optimizer iteration (it seeds draws, masks and augmentation).
    pub iteration: usize,
    pub classes: ClassMap,
    pub buffer: ReplayBuffer,
    pub summary: Summary,
    pub optimizer_step: u32,
}

pub struct RunDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Model(ModelError::Io { path: path.display().to_string(), source })
}

impl RunDir {
    pub fn new(root: &Path) -> Result<RunDir, TrainError> {
        let dir = root.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(RunDir { root: root.to_path_buf() })
    }

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

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Writes the checkpoint of completed time step `state.completed_steps − 1`.
    pub fn save(&self, be: &mut dyn Backend, vit: &Vit, optimizer: &Optimizer, state: &RunState) -> Result<(), TrainError> {
        let step = state.completed_steps - 1;
        // The head's row order, so `rekindle eval` can map predictions back to class ids.
        let classes = serde_json::to_string(&state.classes).expect("class map serialises");
        let meta = HashMap::from([("rekindle.time_step".to_string(), step.to_string()), ("rekindle.classes".to_string(), classes)]);
        let name = RunDir::step_name(step);
        self.save_model(be, vit, &name, &ALL_PARTS, meta)?;
        self.save_resume(be, optimizer, &name, state)
    }

    /// Writes checkpoint `name`'s model file: the model's `parts` with `meta`, atomically.
    pub fn save_model(&self, be: &mut dyn Backend, vit: &Vit, name: &str, parts: &[Part], meta: HashMap<String, String>) -> Result<(), TrainError> {
        Ok(save_parts(be, vit, &self.model_path(name), parts, meta)?)
    }

    /// Completes checkpoint `name` after its model file: the optimizer moments, then `state` as
    /// `state.json`, each atomically and `state.json` last, so a run killed before it resumes
    /// from the previous checkpoint.
    pub fn save_resume(&self, be: &mut dyn Backend, optimizer: &Optimizer, name: &str, state: &impl Serialize) -> Result<(), TrainError> {
        let (first, second, _) = optimizer.save(be);
        let mut tensors: Vec<(&str, &[usize], &[f32])> = Vec::new();
        let shape = [first.len()];
        tensors.push(("first", &shape, &first));
        if let Some(s) = &second {
            tensors.push(("second", &shape, s));
        }
        write_tensors(&self.optimizer_path(name), &tensors, HashMap::new())?;
        crate::fault::at(|| format!("checkpoint:{}", name.trim_start_matches("step-")));
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(state).expect("state serialises");
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(text.as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// The last saved state, or `None` for a run that saved none yet.
    pub fn load_state<S: DeserializeOwned>(&self) -> Result<Option<S>, TrainError> {
        let path = self.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map(Some).map_err(|e| TrainError::Mismatch(format!("{}: {e}", path.display())))
    }

    /// Removes checkpoint `name` (an older one that a newer checkpoint replaced).
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.model_path(name));
        let _ = std::fs::remove_file(self.optimizer_path(name));
    }

    /// Restores the optimizer moments saved with checkpoint `name`.
    pub fn restore_optimizer(&self, be: &mut dyn Backend, optimizer: &mut Optimizer, name: &str, optimizer_step: u32) -> Result<(), TrainError> {
        let path = self.optimizer_path(name);
        let first = read_tensor(&path, "first")?;
        let second = read_tensor(&path, "second").ok();
        optimizer.restore(be, &first, second.as_deref(), optimizer_step);
        Ok(())
    }
}
