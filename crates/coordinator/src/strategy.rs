//! What a method is, as the training loop sees it: its stages at each time step, how its buffer
//! is sampled, whether it restarts from the stream's start, how it sets up a round, which head
//! rows its losses use, and the extra terms it adds to every step. Each method implements
//! [`Strategy`] in `crate::strategies`.

use crate::config::TrainConfig;
use crate::engine::Regularizers;
use crate::error::TrainError;
use crate::stage::StagePlan;
use crate::targets::{current_rows, ClassMap};
use crate::trainer::Trainer;
use rekindle_data::Balance;

pub trait Strategy {
    /// The stages of time step `t`, in order (a stage of 0 steps is skipped).
    fn stages(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan>;

    /// How the replay buffer is sampled.
    fn buffer_balance(&self, config: &TrainConfig) -> Balance {
        config.strategy.buffer_balance
    }

    /// Whether every time step after the first starts again from the stream's initial model.
    fn restarts(&self) -> bool {
        false
    }

    /// Sets up time step `t` after the trainer began it (a teacher, levers) and returns the
    /// labelled images it trains on; `old_classes` is how many classes the model knew before.
    fn prepare(&mut self, trainer: &mut Trainer, t: usize, _old_classes: usize) -> Result<Vec<u32>, TrainError> {
        Ok(trainer.stream.steps[t].labelled.clone())
    }

    /// The softmax rows of the current-data loss and the rows its label smoothing spreads over
    /// (`targets::current_rows`), for a step of `step_classes` with `seen` classes so far.
    fn current_rows(&self, config: &TrainConfig, map: &ClassMap, step_classes: &[u32], seen: &[u32]) -> (Vec<f32>, Vec<f32>) {
        current_rows(map, config.stream.scenario, false, config.augment.current_smoothing, step_classes, seen)
    }

    /// The extra terms of every step of the current round.
    fn regularizers(&mut self) -> Regularizers<'_> {
        Regularizers::default()
    }

    /// `stages` without the empty ones: what time step `t` trains.
    fn plan(&self, config: &TrainConfig, t: usize) -> Vec<StagePlan> {
        self.stages(config, t).into_iter().filter(|s| s.steps > 0).collect()
    }
}
