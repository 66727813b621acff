//! `--device` and `--precision`: which backend runs the model in what arithmetic, and, for GPU
//! ranks, NCCL for the gradients.

use anyhow::Result;
use rekindle_comm::{Comm, Launch, WithDevice};
use rekindle_tensor::{Backend, CpuBackend, Precision};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the model runs and in what arithmetic: the flags every command that runs the model takes.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where the model runs: `cpu`, `cuda:N`, or `cuda` (under a launcher, each rank's local
    /// rank picks its GPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// GPU arithmetic, `bf16` or `fp32`. `bf16` (the default on a GPU): bf16 activations and
    /// weight copies and tensor-core GEMMs accumulating in fp32, with fp32 master weights,
    /// gradients and optimizer state. `fp32`: the CPU backend's arithmetic, for exact comparisons.
    /// The CPU computes in fp32.
    #[arg(long, value_name = "fp32|bf16")]
    pub precision: Option<Precision>,
}

impl DeviceArgs {
    /// The backend these flags name (`threads` CPU workers, 0 = every core).
    pub fn backend(&self, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(Opened::new(self, threads, 0)?.backend)
    }

    /// The arithmetic the backend will use: `--precision`, else bf16 on a GPU and fp32 on the CPU.
    pub fn precision(&self) -> Precision {
        match (self.precision, self.device.as_str()) {
            (Some(p), _) => p,
            (None, "cpu") => Precision::Fp32,
            (None, _) => Precision::Bf16,
        }
    }
}

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
    /// The backend `args` names: the CPU with `threads` worker threads (0 = every core), or a GPU
    /// (`cuda` is the GPU of `local_rank`).
    pub fn new(args: &DeviceArgs, threads: usize, local_rank: usize) -> Result<Opened> {
        match cuda_ordinal(&args.device, local_rank)? {
            None if args.precision == Some(Precision::Bf16) => {
                anyhow::bail!("--precision bf16 is a GPU arithmetic; the CPU backend computes in fp32 (use --device cuda, or drop --precision)")
            }
            None => Ok(Opened { backend: Box::new(CpuBackend::new(threads)), ranks: DeviceRanks { stream: None } }),
            Some(ordinal) => {
                let (backend, stream) = cuda::backend(ordinal, args.precision())?;
                Ok(Opened { backend, ranks: DeviceRanks { stream: Some(stream) } })
            }
        }
    }
}

/// Where GPU ranks learn rank 0's NCCL id.
pub enum IdFrom<'a> {
    /// A broadcast over the launcher's communicator (MPI).
    Host(&'a dyn Comm),
    /// A rendezvous file (`--rendezvous file:DIR`).
    File(PathBuf),
}

impl DeviceRanks {
    /// On a GPU with several ranks, an NCCL communicator over `launch`'s ranks on the backend's
    /// stream; `None` on CPU or for one rank.
    pub fn nccl(&self, launch: &Launch, id: IdFrom, timeout: Duration) -> Result<Option<Box<dyn Comm>>> {
        match &self.stream {
            Some(stream) if launch.world > 1 => Ok(Some(cuda::nccl(launch, stream, id, timeout)?)),
            _ => Ok(None),
        }
    }
}

/// The backend and the communicator a training rank uses. GPU ranks of a multi-rank job sum
/// their gradients with NCCL on the backend's stream. Under MPI, MPI hands out NCCL's id and
/// still carries the small host values; with a `rendezvous` directory (ranks started without
/// MPI, so `comm` is [`Unjoined`](rekindle_comm::Unjoined)) NCCL carries everything.
pub fn backend_and_comm(args: &DeviceArgs, threads: usize, launch: &Launch, comm: Box<dyn Comm>, timeout: Duration, rendezvous: Option<&Path>) -> Result<(Box<dyn Backend>, Box<dyn Comm>)> {
    let Opened { backend, ranks } = Opened::new(args, threads, launch.local_rank)?;
    let ranks_of = Launch { rank: comm.rank(), world: comm.world(), ..launch.clone() };
    match rendezvous {
        Some(dir) if comm.world() > 1 => match ranks.nccl(&ranks_of, IdFrom::File(rekindle_comm::rendezvous::file_in(dir)), timeout)? {
            Some(nccl) => Ok((backend, nccl)),
            None => anyhow::bail!(
                "--rendezvous joins GPU ranks over NCCL, and this rank runs on {}; CPU ranks need MPI (mpirun, or srun --mpi=pmix)",
                backend.name()
            ),
        },
        _ => match ranks.nccl(&ranks_of, IdFrom::Host(comm.as_ref()), timeout)? {
            Some(nccl) => Ok((backend, Box::new(WithDevice { host: comm, device: nccl }))),
            None => Ok((backend, comm)),
        },
    }
}

#[cfg(feature = "gpu")]
mod cuda {
    use super::*;
    use rekindle_comm::{Bootstrap, Nccl};

    pub type Stream = std::sync::Arc<cudarc::driver::CudaStream>;

    pub fn backend(ordinal: usize, precision: Precision) -> Result<(Box<dyn Backend>, Stream)> {
        let be = rekindle_cuda::CudaBackend::new(ordinal, precision)?;
        let stream = be.stream();
        Ok((Box::new(be), stream))
    }

    pub fn nccl(launch: &Launch, stream: &Stream, id: IdFrom, timeout: Duration) -> Result<Box<dyn Comm>> {
        let bootstrap = match &id {
            IdFrom::Host(host) => Bootstrap::Comm(*host),
            IdFrom::File(path) => Bootstrap::File(path),
        };
        Ok(Box::new(Nccl::init(launch, stream.clone(), bootstrap, timeout)?))
    }
}

#[cfg(not(feature = "gpu"))]
mod cuda {
    use super::*;

    /// Never built without the `gpu` feature.
    pub enum Stream {}

    pub fn backend(_ordinal: usize, _precision: Precision) -> Result<(Box<dyn Backend>, Stream)> {
        anyhow::bail!("--device cuda needs a build with GPU support: cargo build --release --features cuda (or cuda-12)")
    }

    pub fn nccl(_launch: &Launch, stream: &Stream, _id: IdFrom, _timeout: Duration) -> Result<Box<dyn Comm>> {
        match *stream {}
    }
}
