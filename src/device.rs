//! `--device`: which backend runs the model, and, for GPU ranks, NCCL for the gradients.

use anyhow::Result;
use rekindle_dist::{Comm, Launch, WithDevice};
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
    Ok(Opened::new(device, threads, local_rank)?.backend)
}

/// An opened backend, and what GPU ranks need to join NCCL on its stream.
pub struct Opened {
    pub backend: Box<dyn Backend>,
    pub ranks: DeviceRanks,
}

/// The backend's stream on a GPU (NCCL joins it), nothing on CPU.
pub struct DeviceRanks {
    stream: Option<cuda::Stream>,
}

impl Opened {
    pub fn new(device: &str, threads: usize, local_rank: usize) -> Result<Opened> {
        match cuda_ordinal(device, local_rank)? {
            None => Ok(Opened { backend: Box::new(CpuBackend::new(threads)), ranks: DeviceRanks { stream: None } }),
            Some(ordinal) => {
                let (backend, stream) = cuda::backend(ordinal)?;
                Ok(Opened { backend, ranks: DeviceRanks { stream: Some(stream) } })
            }
        }
    }
}

impl DeviceRanks {
    /// On a GPU with several ranks, an NCCL communicator over `host`'s ranks on the backend's
    /// stream (the id travels over `host`); `None` on CPU or for one rank.
    pub fn nccl(&self, launch: &Launch, host: &dyn Comm, timeout: Duration) -> Result<Option<Box<dyn Comm>>> {
        match &self.stream {
            Some(stream) if host.world() > 1 => {
                let ranks = Launch { rank: host.rank(), world: host.world(), ..launch.clone() };
                Ok(Some(cuda::nccl(&ranks, stream, host, timeout)?))
            }
            _ => Ok(None),
        }
    }
}

/// The backend and the communicator a training rank uses. GPU ranks of a multi-rank job sum
/// their gradients with NCCL on the backend's stream; the launcher's communicator (MPI) still
/// carries the small host values.
pub fn backend_and_comm(device: &str, threads: usize, launch: &Launch, comm: Box<dyn Comm>, timeout: Duration) -> Result<(Box<dyn Backend>, Box<dyn Comm>)> {
    let Opened { backend, ranks } = Opened::new(device, threads, launch.local_rank)?;
    match ranks.nccl(launch, comm.as_ref(), timeout)? {
        Some(nccl) => Ok((backend, Box::new(WithDevice { host: comm, device: nccl }))),
        None => Ok((backend, comm)),
    }
}

#[cfg(feature = "gpu")]
mod cuda {
    use super::*;
    use rekindle_dist::{Bootstrap, Nccl};

    pub type Stream = std::sync::Arc<cudarc::driver::CudaStream>;

    pub fn backend(ordinal: usize) -> Result<(Box<dyn Backend>, Stream)> {
        let be = rekindle_cuda::CudaBackend::new(ordinal)?;
        let stream = be.stream();
        Ok((Box::new(be), stream))
    }

    pub fn nccl(launch: &Launch, stream: &Stream, bootstrap: &dyn Comm, timeout: Duration) -> Result<Box<dyn Comm>> {
        Ok(Box::new(Nccl::init(launch, stream.clone(), Bootstrap::Comm(bootstrap), timeout)?))
    }
}

#[cfg(not(feature = "gpu"))]
mod cuda {
    use super::*;

    /// Never built without the `gpu` feature.
    pub enum Stream {}

    pub fn backend(_ordinal: usize) -> Result<(Box<dyn Backend>, Stream)> {
        anyhow::bail!("--device cuda needs a build with GPU support: cargo build --release --features cuda (or cuda-12)")
    }

    pub fn nccl(_launch: &Launch, stream: &Stream, _bootstrap: &dyn Comm, _timeout: Duration) -> Result<Box<dyn Comm>> {
        match *stream {}
    }
}
