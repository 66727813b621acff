//! `--device`: which backend runs the model, and, for GPU ranks, NCCL for the gradients.

use anyhow::Result;
use rekindle_dist::{Comm, Launch};
use rekindle_tensor::{Backend, CpuBackend};
use std::time::Duration;

/// The GPU `device` names: `cuda:N`, or `cuda` for the GPU of this process's local rank; `None`
/// for `cpu`.
fn cuda_ordinal(device: &str, local_rank: usize) -> Result<Option<usize>> {
    match device {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(local_rank)),
        d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => Ok(Some(ordinal)),
            _ => anyhow::bail!("--device {d}: expected cpu, cuda or cuda:N (e.g. cuda:0)"),
        },
    }
}

/// The backend `--device` names: `cpu` (with `threads` worker threads, 0 = every core), `cuda:N`,
/// or `cuda` (the GPU of this process's local rank).
pub fn backend(device: &str, threads: usize, local_rank: usize) -> Result<Box<dyn Backend>> {
    match cuda_ordinal(device, local_rank)? {
        None => Ok(Box::new(CpuBackend::new(threads))),
        Some(ordinal) => Ok(cuda::backend(ordinal)?.0),
    }
}

/// The backend and the communicator a training rank uses. GPU ranks of a multi-rank job join an
/// NCCL communicator on the backend's stream, which then sums the gradients on the device; the
/// launcher's communicator (MPI) still carries the small host values.
pub fn backend_and_comm(device: &str, threads: usize, launch: &Launch, comm: Box<dyn Comm>, timeout: Duration) -> Result<(Box<dyn Backend>, Box<dyn Comm>)> {
    match cuda_ordinal(device, launch.local_rank)? {
        None => Ok((Box::new(CpuBackend::new(threads)), comm)),
        Some(ordinal) => {
            let (be, stream) = cuda::backend(ordinal)?;
            if comm.world() == 1 {
                return Ok((be, comm));
            }
            Ok((be, cuda::with_nccl(launch, stream, comm, timeout)?))
        }
    }
}

#[cfg(feature = "gpu")]
mod cuda {
    use super::*;
    use rekindle_dist::{Bootstrap, Nccl, WithNccl};

    pub type Stream = std::sync::Arc<cudarc::driver::CudaStream>;

    pub fn backend(ordinal: usize) -> Result<(Box<dyn Backend>, Stream)> {
        let be = rekindle_cuda::CudaBackend::new(ordinal)?;
        let stream = be.stream();
        Ok((Box::new(be), stream))
    }

    pub fn with_nccl(launch: &Launch, stream: Stream, host: Box<dyn Comm>, timeout: Duration) -> Result<Box<dyn Comm>> {
        let nccl = Nccl::init(launch, stream, Bootstrap::Comm(host.as_ref()), timeout)?;
        Ok(Box::new(WithNccl { host, nccl }))
    }
}

#[cfg(not(feature = "gpu"))]
mod cuda {
    use super::*;

    /// Never built without the `gpu` feature.
    pub enum Stream {}

    const NO_GPU: &str = "--device cuda needs a build with GPU support: cargo build --release --features cuda (or cuda-12)";

    pub fn backend(_ordinal: usize) -> Result<(Box<dyn Backend>, Stream)> {
        anyhow::bail!(NO_GPU)
    }

    pub fn with_nccl(_launch: &Launch, stream: Stream, _host: Box<dyn Comm>, _timeout: Duration) -> Result<Box<dyn Comm>> {
        match stream {}
    }
}
