//! GPU ranks over NCCL (cudarc's bindings, loaded at run time). Rank 0 makes the NCCL id, and a
//! bootstrap [`Comm`] (MPI) or a [`rendezvous`](crate::rendezvous) file hands it to the others.
//!
//! The communicator enqueues its collectives on the stream it was given. Training gives it the
//! model backend's own stream, so the gradient all-reduce runs after the backward pass and before
//! the optimizer without any host synchronisation. The [`Comm`] methods over host buffers stage
//! through the device, for the few small host-side reductions; [`WithDevice`](crate::WithDevice)
//! pairs NCCL for gradients with MPI for those.

use crate::{Comm, CommError, Launch, Reduce, Watchdog};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut};
use cudarc::nccl::{result as nccl, sys};
use std::ffi::c_void;
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
    comm: sys::ncclComm_t,
    stream: Arc<CudaStream>,
    rank: usize,
    world: usize,
    local_rank: usize,
    watchdog: Watchdog,
}

fn failed(op: &'static str, rank: usize, e: impl std::fmt::Debug) -> CommError {
    CommError::Collective { op, rank, reason: format!("{e:?}") }
}

fn reduce_op(op: Reduce) -> sys::ncclRedOp_t {
    match op {
        Reduce::Sum => sys::ncclRedOp_t::ncclSum,
        Reduce::Average => sys::ncclRedOp_t::ncclAvg,
    }
}

impl Nccl {
    /// Whether the CUDA driver and NCCL libraries can be loaded (cudarc loads them at run time,
    /// and panics on first use when they are missing).
    pub fn available() -> Result<(), CommError> {
        // SAFETY: these only try to open the shared libraries.
        let (driver, nccl) = unsafe { (cudarc::driver::sys::is_culib_present(), sys::is_culib_present()) };
        match (driver, nccl) {
            (true, true) => Ok(()),
            (false, _) => Err(CommError::Launch("the CUDA driver library (libcuda.so) cannot be loaded: no NVIDIA driver on this machine".into())),
            (true, false) => Err(CommError::Launch(
                "NCCL cannot be loaded: cudarc opens it as libnccl.so, which NCCL's dev package provides; with only libnccl.so.2 \
                 (pip wheels, runtime packages), link it as libnccl.so in a directory on LD_LIBRARY_PATH"
                    .into(),
            )),
        }
    }

    /// Joins the NCCL communicator of `launch`'s ranks; collectives go on `stream`, whose device
    /// should be `launch.local_rank`'s GPU.
    pub fn init(launch: &Launch, stream: Arc<CudaStream>, bootstrap: Bootstrap, timeout: Duration) -> Result<Nccl, CommError> {
        Nccl::available()?;
        let rank = launch.rank;
        let mut bytes = if rank == 0 { nccl::get_uniqueid().map_err(|e| failed("ncclGetUniqueId", rank, e))?.internal.iter().map(|&c| c as u8).collect() } else { Vec::new() };
        match bootstrap {
            Bootstrap::Comm(c) => c.broadcast(&mut bytes, 0)?,
            Bootstrap::File(path) if rank == 0 => crate::rendezvous::publish(path, &bytes)?,
            Bootstrap::File(path) => bytes = crate::rendezvous::wait_for(path, timeout)?,
        }
        if bytes.len() != 128 {
            return Err(CommError::Launch(format!("the NCCL id from rank 0 has {} bytes, not 128", bytes.len())));
        }
        let id = sys::ncclUniqueId { internal: std::array::from_fn(|i| bytes[i] as core::ffi::c_char) };
        let watchdog = Watchdog::start(rank, timeout);
        let mut comm = std::mem::MaybeUninit::uninit();
        {
            let _watched = watchdog.watch("NCCL init");
            stream.context().bind_to_thread().map_err(|e| failed("binding the CUDA context", rank, e))?;
            // SAFETY: `comm` is written by a successful ncclCommInitRank; every rank passes the
            // same id and world size.
            unsafe { nccl::comm_init_rank(comm.as_mut_ptr(), launch.world as i32, id, rank as i32) }.map_err(|e| failed("ncclCommInitRank", rank, e))?;
        }
        if let (Bootstrap::File(path), 0) = (bootstrap, rank) {
            // Every rank has joined, so the id is no longer needed.
            let _ = std::fs::remove_file(path);
        }
        // SAFETY: initialised by the successful call above.
        let comm = unsafe { comm.assume_init() };
        Ok(Nccl { comm, stream, rank, world: launch.world, local_rank: launch.local_rank, watchdog })
    }

    /// Enqueues an in-place all-reduce of `len` f32 at device address `address` on the
    /// communicator's stream.
    pub fn all_reduce_address(&self, address: u64, len: usize, op: Reduce) -> Result<(), CommError> {
        self.all_reduce_into(address, address, len, op)
    }

    /// Enqueues an all-reduce of `len` f32 from device address `from` into `to` (the same
    /// address: in place) on the communicator's stream.
    pub fn all_reduce_into(&self, from: u64, to: u64, len: usize, op: Reduce) -> Result<(), CommError> {
        // Watched: an enqueue may itself wait for the other ranks (NCCL's own flow control, or a
        // software GPU, whose collectives run when enqueued).
        let _watched = self.watchdog.watch("ncclAllReduce");
        // SAFETY: the caller passes the addresses of `len` f32 on this communicator's device.
        unsafe { nccl::all_reduce(from as *const c_void, to as *mut c_void, len, sys::ncclDataType_t::ncclFloat32, reduce_op(op), self.comm, self.stream.cu_stream() as _) }
            .map(|_| ())
            .map_err(|e| self.failed("ncclAllReduce", e))
    }

    /// A failed NCCL call, with NCCL's own explanation of it (`ncclGetLastError`).
    fn failed(&self, op: &'static str, e: impl std::fmt::Debug) -> CommError {
        // SAFETY: NCCL returns a NUL-terminated string it owns, or null.
        let last = unsafe { sys::ncclGetLastError(self.comm) };
        let detail = if last.is_null() { String::new() } else { unsafe { std::ffi::CStr::from_ptr(last) }.to_string_lossy().into_owned() };
        let reason = if detail.is_empty() { format!("{e:?}") } else { format!("{e:?}: {detail}") };
        CommError::Collective { op, rank: self.rank, reason }
    }

    /// All-reduces a device buffer in place on the communicator's stream (asynchronous).
    pub fn all_reduce_slice(&self, data: &mut CudaSlice<f32>, op: Reduce) -> Result<(), CommError> {
        let len = data.len();
        let (address, _record) = data.device_ptr_mut(&self.stream);
        self.all_reduce_address(address, len, op)
    }

    /// Waits for the communicator's stream, under the watchdog.
    pub fn synchronize(&self, op: &'static str) -> Result<(), CommError> {
        let _watched = self.watchdog.watch(op);
        self.stream.synchronize().map_err(|e| failed(op, self.rank, e))
    }

    /// `data` through device buffers: upload into one, `collective(from, to)` into a second,
    /// zeroed one, download that. Out of place, so the host sees only what the collective wrote:
    /// at one rank a sum is the identity, and an in-place collective that never ran would look
    /// the same as one that did.
    fn staged<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, op: &'static str, data: &mut [T], collective: impl FnOnce(u64, u64) -> Result<(), CommError>) -> Result<(), CommError> {
        let mut from = self.stream.clone_htod(data).map_err(|e| failed(op, self.rank, e))?;
        let mut to = self.stream.alloc_zeros::<T>(data.len()).map_err(|e| failed(op, self.rank, e))?;
        let from_address = from.device_ptr_mut(&self.stream).0;
        let to_address = to.device_ptr_mut(&self.stream).0;
        collective(from_address, to_address)?;
        self.stream.memcpy_dtoh(&to, data).map_err(|e| failed(op, self.rank, e))?;
        self.synchronize(op)
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        // SAFETY: the communicator was initialised and is destroyed once.
        let _ = unsafe { nccl::comm_destroy(self.comm) };
    }
}

impl Comm for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.world
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<(), CommError> {
        let len = data.len();
        self.staged("all-reduce", data, |from, to| self.all_reduce_into(from, to, len, op))
    }

    fn all_reduce_device(&self, address: u64, len: usize, op: Reduce) -> Result<bool, CommError> {
        self.all_reduce_address(address, len, op).map(|_| true)
    }

    fn broadcast(&self, data: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        let bcast = |from: u64, to: u64, count: usize| {
            let _watched = self.watchdog.watch("ncclBroadcast");
            // SAFETY: `from` and `to` hold `count` bytes on this communicator's device.
            unsafe { nccl::broadcast(from as *const c_void, to as *mut c_void, count, sys::ncclDataType_t::ncclUint8, root as i32, self.comm, self.stream.cu_stream() as _) }
                .map(|_| ())
                .map_err(|e| self.failed("ncclBroadcast", e))
        };
        let mut len = (data.len() as u64).to_le_bytes();
        self.staged("broadcast", &mut len, |from, to| bcast(from, to, 8))?;
        data.resize(u64::from_le_bytes(len) as usize, 0);
        if data.is_empty() {
            return Ok(());
        }
        let count = data.len();
        self.staged("broadcast", data, |from, to| bcast(from, to, count))
    }

    fn barrier(&self) -> Result<(), CommError> {
        self.all_reduce(&mut [0.0], Reduce::Sum)
    }

    fn describe(&self) -> String {
        format!("NCCL, {} ranks", self.world)
    }
}
