//! rekindle's coordinator: the training loop over a stream's time steps ([`train`], driving a
//! [`Trainer`] with a [`Strategy`]), the one training-step engine every method shares, the
//! DietCL budget split and LR schedules, CKCA's distillation, continuous training's data
//! selection, evaluation and metrics, MAE pre-training, the run directory, and the
//! compute-to-target (`speedup`) analysis.

pub mod budget;
pub mod config;
pub mod distill;
mod engine;
mod error;
pub mod fault;
mod init;
mod inputs;
pub mod interrupt;
pub mod metrics;
pub mod mixing;
pub mod pretrain;
mod predict;
mod progress;
mod reduce;
mod run;
mod run_dir;
pub mod schedule;
pub mod selection;
pub mod speedup;
mod stage;
mod strategies;
mod strategy;
pub mod targets;
mod trainer;

pub use config::{ConfigError, TrainConfig};
pub use engine::{draw, gather_parts, Drawn, Engine, EngineSettings, Pools, Regularizers, Sources, StepLosses, StepSpec};
pub use error::TrainError;
pub use init::{initial_model, restart};
pub use inputs::{mae_images, open_data};
pub use metrics::{CurvePoint, Evaluation, Summary};
pub use predict::{logits, EvalPasses};
pub use progress::Progress;
pub use reduce::GradientSum;
pub use run::{time_step, train};
pub use run_dir::{Checkpoint, KeptLines, MetricsLog, RunDir, RunRecord, Start, Status, META_RUN_ID, META_CLASSES, META_PRETRAIN_HOLDOUT, META_PRETRAIN_SOURCE, META_TIME_STEP};
pub use stage::StagePlan;
pub use strategies::{build as build_strategy, plan};
pub use strategy::Strategy;
pub use trainer::{InsideStep, Place, RunState, StepData, Trainer};
