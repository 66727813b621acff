//! rekindle's communicator. The coordinator sees one [`Comm`] trait: rank, world size, local
//! rank, in-place all-reduce over f32 buffers, broadcast of bytes and a barrier. Behind it:
//!
//! - [`Single`]: one process, every collective is the identity;
//! - `Mpi` (feature `mpi`): CPU ranks over rsmpi, launched by `mpirun` or `srun`;
//! - `Nccl` (feature `cuda`): GPU buffers over NCCL, its id handed out by an MPI broadcast or a
//!   [`rendezvous`] file on a shared directory; with the file, NCCL alone carries every
//!   collective (host values staged through the device), and until it is joined the rank is
//!   [`Unjoined`].
//!
//! [`Launch`] reads the rank layout from the launcher's environment, and [`connect`] picks the
//! implementation. Every collective runs under a [`Watchdog`], so a rank that died or hangs makes
//! the others exit with an error instead of waiting forever.

mod launch;
#[cfg(feature = "mpi")]
mod mpi_comm;
#[cfg(feature = "cuda")]
mod nccl;
pub mod rendezvous;
mod single;
mod unjoined;
mod watchdog;
mod with_device;

pub use launch::Launch;
#[cfg(feature = "mpi")]
pub use mpi_comm::Mpi;
#[cfg(feature = "cuda")]
pub use nccl::{Bootstrap, Nccl};
pub use single::Single;
pub use unjoined::Unjoined;
pub use with_device::WithDevice;
pub use watchdog::{Watchdog, TIMED_OUT};

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CommError {
    #[error("{0}")]
    Launch(String),
    #[error("{op} failed on rank {rank}: {reason}")]
    Collective { op: &'static str, rank: usize, reason: String },
    #[error("rendezvous at {path}: {reason}")]
    Rendezvous { path: String, reason: String },
}

/// How an all-reduce combines the ranks' buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    /// The sum divided by the world size.
    Average,
}

/// The collectives rekindle needs. Every rank must call the same collectives in the same order.
pub trait Comm {
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// The rank among the processes on this node (it picks the GPU).
    fn local_rank(&self) -> usize;
    /// `data ← reduce over ranks of data`, in place, on every rank.
    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<(), CommError>;
    /// `len` f32 at device address `address` ← their reduction over ranks, in place, enqueued on
    /// the stream of the backend that owns them. Returns `false`, doing nothing, where this
    /// communicator cannot read device memory; the caller then reduces a host copy.
    fn all_reduce_device(&self, _address: u64, _len: usize, _op: Reduce) -> Result<bool, CommError> {
        Ok(false)
    }
    /// `data ← root's data` on every rank (its length may change).
    fn broadcast(&self, data: &mut Vec<u8>, root: usize) -> Result<(), CommError>;
    fn barrier(&self) -> Result<(), CommError>;
    /// What carries the collectives, e.g. `single process`, `MPI (Open MPI v4.1.4), 2 ranks`.
    fn describe(&self) -> String;
}

/// The communicator for the processes `launch` describes: [`Single`] for one process, `Mpi`
/// for several when the binary has the `mpi` feature, and a clear error when it has not. A
/// collective that waits longer than `timeout` exits the process (see [`Watchdog`]).
pub fn connect(launch: &Launch, timeout: Duration) -> Result<Box<dyn Comm>, CommError> {
    if launch.world == 1 {
        return Ok(Box::new(Single));
    }
    connect_many(launch, timeout)
}

#[cfg(feature = "mpi")]
fn connect_many(launch: &Launch, timeout: Duration) -> Result<Box<dyn Comm>, CommError> {
    Ok(Box::new(Mpi::init(launch, timeout)?))
}

#[cfg(not(feature = "mpi"))]
fn connect_many(launch: &Launch, _timeout: Duration) -> Result<Box<dyn Comm>, CommError> {
    Err(CommError::Launch(format!(
        "{} started {} ranks, but this rekindle was built without MPI; rebuild with `cargo build --release --features mpi`",
        launch.source, launch.world
    )))
}
