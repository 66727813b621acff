//! GPU ranks: one communicator (NCCL) sums device buffers in place, another (MPI) carries
//! everything on the host (losses, evaluation counts, broadcasts).

use crate::{Comm, CommError, Reduce};

pub struct WithDevice {
    pub host: Box<dyn Comm>,
    pub device: Box<dyn Comm>,
}

impl Comm for WithDevice {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn world(&self) -> usize {
        self.host.world()
    }
    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }
    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<(), CommError> {
        self.host.all_reduce(data, op)
    }
    fn all_reduce_device(&self, address: u64, len: usize, op: Reduce) -> Result<bool, CommError> {
        self.device.all_reduce_device(address, len, op)
    }
    fn broadcast(&self, data: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        self.host.broadcast(data, root)
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.host.barrier()
    }
    fn describe(&self) -> String {
        format!("{} for host values, {} for gradients", self.host.describe(), self.device.describe())
    }
}
