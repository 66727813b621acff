//! rekindle's tensor layer: the [`Backend`] trait lists every operation the ViT/MAE model needs, and
//! [`CpuBackend`] implements it in f32 with the `gemm` crate and rayon.
//!
//! Memory is handed out as whole buffers; model code works with [`Tensor`] and [`Indices`] handles,
//! which are (buffer, offset, length) triples. Handles are `Copy` and carry no borrow, so one flat
//! parameter buffer can be cut into named views (llm.c style) and a device backend can implement the
//! same trait with device pointers behind the handles.

mod backend;
pub mod cases;
pub mod checks;
mod compare;
mod cpu;
mod handles;
mod precision;

pub use backend::{AdamW, AttentionShape, Backend, Gemm, ParamGroup, PatchOrder, PatchShape, Sgd};
pub use compare::relative_error;
pub use cpu::{CpuBackend, OpTime};
pub use handles::{Indices, Tensor};
pub use precision::Precision;
