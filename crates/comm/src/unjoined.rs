//! A rank whose communicator is joined later, once its GPU is open: GPU ranks started without MPI
//! (`srun --mpi=none`) meet in NCCL through a [`rendezvous`](crate::rendezvous) file, and NCCL
//! needs the backend's stream. Until then the rank knows its place from the launcher and carries
//! no collective; calling one is a bug in the caller, and says so.

use crate::{Comm, CommError, Launch, Reduce};

pub struct Unjoined(pub Launch);

impl Unjoined {
    fn refuse(&self, op: &str) -> CommError {
        CommError::Launch(format!("rank {}: {op} before the ranks have joined NCCL through the rendezvous file", self.0.rank))
    }
}

impl Comm for Unjoined {
    fn rank(&self) -> usize {
        self.0.rank
    }
    fn world(&self) -> usize {
        self.0.world
    }
    fn local_rank(&self) -> usize {
        self.0.local_rank
    }
    fn all_reduce(&self, _data: &mut [f32], _op: Reduce) -> Result<(), CommError> {
        Err(self.refuse("an all-reduce"))
    }
    fn broadcast(&self, _data: &mut Vec<u8>, _root: usize) -> Result<(), CommError> {
        Err(self.refuse("a broadcast"))
    }
    fn barrier(&self) -> Result<(), CommError> {
        Err(self.refuse("a barrier"))
    }
    fn describe(&self) -> String {
        format!("{} ranks, not yet joined", self.0.world)
    }
}
