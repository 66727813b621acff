//! A whole stream: for each time step the trainer begins it (head, buffer, re-init), the
//! strategy sets up its round and names its stages, the trainer trains them under the budget,
//! evaluates and checkpoints.

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::inputs::mae_images;
use crate::metrics::Summary;
use crate::progress::Progress;
use crate::strategies;
use crate::strategy::Strategy;
use crate::trainer::{Place, StepData, Trainer};
use rekindle_comm::Comm;
use rekindle_tensor::Backend;

/// Trains the whole stream on `comm`'s ranks. With a run directory, rank 0 checkpoints there at
/// every time step's end (and inside steps, `budget.checkpoint_every`); with `place.resume`,
/// every rank first continues from that directory's last checkpoint, whatever world size wrote
/// it. Every rank returns the same summary.
pub fn train(config: &TrainConfig, be: &mut dyn Backend, comm: &dyn Comm, place: Place, mut report: impl FnMut(Progress)) -> Result<Summary, TrainError> {
    let mut strategy = strategies::build(config);
    let mut trainer = Trainer::open(config, be, comm, place, strategy.buffer_balance(config), &mut report)?;
    for t in trainer.first_step..trainer.stream.steps.len() {
        time_step(&mut trainer, strategy.as_mut(), t)?;
    }
    Ok(trainer.finish())
}

/// Time step `t` of a stream: the trainer begins it, the strategy sets up its round and names
/// its stages, the trainer trains them, evaluates and checkpoints.
pub fn time_step(trainer: &mut Trainer, strategy: &mut dyn Strategy, t: usize) -> Result<(), TrainError> {
    let config = trainer.config;
    let old_classes = trainer.begin_step(t, strategy.restarts())?;
    let labelled = strategy.prepare(trainer, t, old_classes)?;
    let step = &trainer.stream.steps[t];
    let seen = trainer.stream.classes_seen(t);
    let (current_mask, current_spread) = strategy.current_rows(config, &trainer.map, &step.classes, &seen);
    let data = StepData { mae_images: mae_images(step, config.strategy.mae_source), labelled, current_mask, current_spread, seen_mask: trainer.map.mask(&seen) };
    let stages = strategy.plan(config, t);
    trainer.announce(t, &data, &stages);
    let (first_stage, first_iteration) = trainer.resume_position()?;
    for (index, stage) in stages.iter().enumerate().skip(first_stage) {
        let from = if index == first_stage { first_iteration } else { 0 };
        trainer.run_stage(t, index, stage, from, &data, &mut strategy.regularizers())?;
    }
    trainer.end_step(t)
}
