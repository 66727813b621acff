//! rekindle's coordinator: the DietCL budget split, strategies over one training-step engine,
//! LR schedules, evaluation and metrics, and the loop over a stream's time steps.

pub mod budget;
pub mod config;
mod engine;
pub mod metrics;
pub mod mixing;
mod optimizer;
mod run;
pub mod schedule;
mod state;
mod strategy;
pub mod targets;

pub use config::{ConfigError, TrainConfig};
pub use engine::{logits, StepLosses};
pub use metrics::{Evaluation, Summary};
pub use run::{train, Progress, TrainError};
pub use strategy::{plan, StagePlan};
