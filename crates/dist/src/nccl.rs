//! GPU ranks over NCCL (cudarc, loaded at run time). The NCCL id is made by rank 0 and handed to
//! the others by a bootstrap [`Comm`] (MPI) or a [`rendezvous`](crate::rendezvous) file.
//!
//! Training reduces device buffers with [`Nccl::all_reduce_device`] on the communicator's own
//! stream. The [`Comm`] methods over host buffers stage through the device, for the few small
//! host-side reductions (losses, evaluation counts).

use crate::{Comm, CommError, Launch, Reduce, Watchdog};
use cudarc::driver::{CudaSlice, CudaStream};
use cudarc::nccl::{Comm as NcclComm, Id, ReduceOp};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Where the ranks learn rank 0's NCCL id.
pub enum Bootstrap<'a> {
    /// A broadcast over an existing communicator (MPI).
    Comm(&'a dyn Comm),
    /// A rendezvous file on a shared directory.
    File(&'a Path),
}

pub struct Nccl {
    comm: NcclComm,
    local_rank: usize,
    watchdog: Watchdog,
}

fn failed(op: &'static str, rank: usize, e: impl std::fmt::Debug) -> CommError {
    CommError::Collective { op, rank, reason: format!("{e:?}") }
}

impl Nccl {
    /// Whether the CUDA driver and NCCL libraries can be loaded (cudarc loads them at run time,
    /// and panics on first use when they are missing).
    pub fn available() -> Result<(), CommError> {
        // SAFETY: these only try to open the shared libraries.
        let (driver, nccl) = unsafe { (cudarc::driver::sys::is_culib_present(), cudarc::nccl::sys::is_culib_present()) };
        match (driver, nccl) {
            (true, true) => Ok(()),
            (false, _) => Err(CommError::Launch("the CUDA driver library (libcuda.so) cannot be loaded: no NVIDIA driver on this machine".into())),
            (true, false) => Err(CommError::Launch("libnccl.so cannot be loaded: install NCCL, or add its directory (e.g. the nvidia-nccl wheel's lib/) to LD_LIBRARY_PATH".into())),
        }
    }

    /// Joins the NCCL communicator of `launch`'s ranks on `stream` (its device should be
    /// `launch.local_rank`'s GPU).
    pub fn init(launch: &Launch, stream: Arc<CudaStream>, bootstrap: Bootstrap, timeout: Duration) -> Result<Nccl, CommError> {
        let rank = launch.rank;
        let mut bytes = if rank == 0 { Id::new().map_err(|e| failed("ncclGetUniqueId", rank, e))?.internal().iter().map(|&c| c as u8).collect() } else { Vec::new() };
        match bootstrap {
            Bootstrap::Comm(c) => c.broadcast(&mut bytes, 0)?,
            Bootstrap::File(path) if rank == 0 => crate::rendezvous::publish(path, &bytes)?,
            Bootstrap::File(path) => bytes = crate::rendezvous::wait_for(path, timeout)?,
        }
        let internal: [core::ffi::c_char; 128] = std::array::from_fn(|i| bytes.get(i).copied().unwrap_or(0) as core::ffi::c_char);
        if bytes.len() != 128 {
            return Err(CommError::Launch(format!("the NCCL id from rank 0 has {} bytes, not 128", bytes.len())));
        }
        let watchdog = Watchdog::start(rank, timeout);
        let comm = {
            let _watched = watchdog.watch("NCCL init");
            NcclComm::from_rank(stream, rank, launch.world, Id::uninit(internal)).map_err(|e| failed("ncclCommInitRank", rank, e))?
        };
        if let (Bootstrap::File(path), 0) = (bootstrap, rank) {
            // Every rank has joined, so the id is no longer needed.
            let _ = std::fs::remove_file(path);
        }
        Ok(Nccl { comm, local_rank: launch.local_rank, watchdog })
    }

    /// All-reduces a device buffer in place on the communicator's stream (asynchronous: order
    /// later work on that stream, or synchronise it).
    pub fn all_reduce_device(&self, data: &mut CudaSlice<f32>, op: Reduce) -> Result<(), CommError> {
        let op = match op {
            Reduce::Sum => ReduceOp::Sum,
            Reduce::Average => ReduceOp::Avg,
        };
        self.comm.all_reduce_in_place(data, &op).map(|_| ()).map_err(|e| failed("ncclAllReduce", self.rank(), e))
    }

    /// Waits for the communicator's stream, under the watchdog.
    pub fn synchronize(&self, op: &'static str) -> Result<(), CommError> {
        let _watched = self.watchdog.watch(op);
        self.comm.stream().synchronize().map_err(|e| failed(op, self.rank(), e))
    }

    fn staged<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + cudarc::nccl::NcclType>(&self, op: &'static str, data: &mut [T], f: impl FnOnce(&NcclComm, &mut CudaSlice<T>) -> Result<(), cudarc::nccl::result::NcclError>) -> Result<(), CommError> {
        let stream = self.comm.stream();
        let rank = self.rank();
        let mut device = stream.clone_htod(data).map_err(|e| failed(op, rank, e))?;
        f(&self.comm, &mut device).map_err(|e| failed(op, rank, e))?;
        stream.memcpy_dtoh(&device, data).map_err(|e| failed(op, rank, e))?;
        self.synchronize(op)
    }
}

impl Comm for Nccl {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world(&self) -> usize {
        self.comm.world_size()
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<(), CommError> {
        let op = match op {
            Reduce::Sum => ReduceOp::Sum,
            Reduce::Average => ReduceOp::Avg,
        };
        self.staged("all-reduce", data, |c, d| c.all_reduce_in_place(d, &op).map(|_| ()))
    }

    fn broadcast(&self, data: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        let mut len = [data.len() as u64];
        self.staged("broadcast", &mut len, |c, d| c.broadcast_in_place(d, root as i32).map(|_| ()))?;
        data.resize(len[0] as usize, 0);
        self.staged("broadcast", data, |c, d| c.broadcast_in_place(d, root as i32).map(|_| ()))
    }

    fn barrier(&self) -> Result<(), CommError> {
        self.all_reduce(&mut [0.0], Reduce::Sum)
    }

    fn describe(&self) -> String {
        format!("NCCL, {} ranks", self.world())
    }
}
