//! rekindle's coordinator: the DietCL budget split, strategies over one training-step engine,
//! LR schedules, evaluation and metrics, and the loop over a stream's time steps; CKCA's
//! distillation, the levers of continuous training, and the compute-to-target (`speedup`) analysis.

pub mod budget;
pub mod config;
pub mod distill;
mod engine;
pub mod fault;
pub mod interrupt;
pub mod levers;
pub mod metrics;
pub mod mixing;
mod optimizer;
pub mod pretrain;
mod run;
pub mod schedule;
pub mod speedup;
mod state;
mod strategy;
pub mod targets;

pub use config::{ConfigError, TrainConfig};
pub use engine::{draw, logits, Drawn, Regularizers, Sources, StepLosses};
pub use metrics::{CurvePoint, Evaluation, Summary};
pub use run::{initial_model, open_data, restart, train, Progress, TrainError};
pub use state::RunDir;
pub use strategy::{mae_images, plan, StagePlan};
