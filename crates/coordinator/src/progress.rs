//! What a training run reports as it goes (the CLI draws progress bars and writes
//! `metrics.jsonl` from it).

use crate::engine::StepLosses;
use crate::metrics::{CurvePoint, Evaluation};
use crate::stage::StagePlan;

pub enum Progress<'a> {
    /// A time step begins: what it revealed, the buffer, and the stages it will train.
    Step { step: usize, steps: usize, revealed: usize, labelled: usize, mae_images: usize, buffer: usize, stages: &'a [StagePlan] },
    Stage { step: usize, steps: usize, stage: &'a str, iterations: usize },
    /// One optimizer step: `iteration` counts within the stage, `optimizer_step` over the whole
    /// run (from 1), and `flops` is the run's training compute so far.
    Iteration { step: usize, stage: &'a str, iteration: usize, optimizer_step: usize, flops: f64, losses: &'a StepLosses, lr: f64, images_per_sec: f64 },
    /// An evaluation inside a time step (`budget.eval_every`), or at its end.
    Curve(&'a CurvePoint),
    Evaluated(&'a Evaluation),
    /// The data-selection lever kept `kept` of `old` old samples.
    Selected { step: usize, kept: usize, old: usize },
}
