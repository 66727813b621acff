//! The ViT encoder, MAE decoder and growing classification head, written by hand over the
//! [`rekindle_tensor::Backend`] trait: flat parameters with named offsets, a plain `forward` and a
//! mirror `backward` per layer, and activations allocated once per (model, micro-batch).

mod anchor;
mod block;
mod checkpoint;
mod classify;
mod config;
mod decoder;
mod encoder;
mod error;
mod flops;
mod grad_stash;
mod init;
mod linear;
mod loss_sums;
mod mae;
mod masking;
mod optimizer;
mod params;
mod pos_embed;
mod shrink_perturb;
mod stack;
mod teacher;
mod vit;

pub use anchor::L2Anchor;
pub use checkpoint::{load_checkpoint, load_parts, read_metadata, read_tensor, save_checkpoint, save_parts, write_tensors, LoadReport, ALL_PARTS, BODY, META_MODEL};
pub use classify::ClassifyPass;
pub use config::{ModelConfig, PRESETS};
pub use error::ModelError;
pub use flops::Flops;
pub use grad_stash::GradStash;
pub use loss_sums::LossSums;
pub use mae::MaePass;
pub use masking::MaskIds;
pub use optimizer::{OptimName, Optimizer, OptimizerSettings, OptimizerState};
pub use params::{ParamEntry, ParamTable, Part};
pub use pos_embed::sincos_2d;
pub use teacher::{PairOutputs, Teacher};
pub use vit::Vit;
