//! rekindle's CUDA backend. Kernels are CUDA C in `kernels/*.cu`, embedded in the binary and
//! compiled by NVRTC at first use for the device's architecture ([`nvrtc`]); GEMMs go through
//! cuBLAS. CUDA is loaded at run time (cudarc's dynamic loading), so this crate builds, and its
//! compile checks run, on machines without a GPU.

pub mod kernels;
pub mod nvrtc;
pub mod params;
mod backend;

pub use backend::{CudaBackend, CudaError};
