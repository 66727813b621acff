//! CPU ranks over MPI (rsmpi). All-reduce goes through a bounded scratch buffer in chunks, since
//! rsmpi has no in-place reduction and a single call is limited to `i32::MAX` elements.

use crate::{Comm, CommError, Launch, Reduce, Watchdog};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Elements per all-reduce call (64 MiB of f32 scratch).
const CHUNK: usize = 1 << 24;

pub struct Mpi {
    // Dropped before `universe`, which finalises MPI.
    comm: SimpleCommunicator,
    universe: Rc<Universe>,
    local_rank: usize,
    scratch: RefCell<Vec<f32>>,
    watchdog: Rc<Watchdog>,
}

impl Mpi {
    /// Initialises MPI and checks that it sees the layout the launcher announced.
    pub fn init(launch: &Launch, timeout: Duration) -> Result<Mpi, CommError> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| CommError::Launch("MPI was already initialised in this process".into()))?;
        let comm = universe.world();
        let (rank, world) = (comm.rank() as usize, comm.size() as usize);
        if (rank, world) != (launch.rank, launch.world) {
            return Err(CommError::Launch(format!(
                "{} announced rank {} of {}, but MPI sees rank {rank} of {world}; under Slurm launch with `srun --mpi=pmix` (or `pmi2`), or use mpirun",
                launch.source, launch.rank, launch.world
            )));
        }
        let watchdog = Rc::new(Watchdog::start(rank, timeout));
        Ok(Mpi { comm, universe: Rc::new(universe), local_rank: launch.local_rank, scratch: RefCell::new(Vec::new()), watchdog })
    }

    /// A communicator over ranks `0..ranks` of this one (a collective call on every rank); `None`
    /// on the ranks left out. `rekindle bench scaling` measures each world size this way.
    pub fn first(&self, ranks: usize) -> Option<Mpi> {
        let inside = self.rank() < ranks;
        let color = if inside { Color::with_value(0) } else { Color::undefined() };
        let comm = self.comm.split_by_color(color)?;
        Some(Mpi { comm, universe: self.universe.clone(), local_rank: self.local_rank, scratch: RefCell::new(Vec::new()), watchdog: self.watchdog.clone() })
    }

    /// Waits at a barrier without spinning, so ranks left out of a measurement leave the cores
    /// to the ranks in it.
    pub fn idle_barrier(&self) {
        let mut request = self.comm.immediate_barrier();
        loop {
            match request.test() {
                Ok(_) => return,
                Err(pending) => request = pending,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Comm for Mpi {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }
    fn world(&self) -> usize {
        self.comm.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<(), CommError> {
        let _watched = self.watchdog.watch("all-reduce");
        let mut scratch = self.scratch.borrow_mut();
        for chunk in data.chunks_mut(CHUNK) {
            scratch.clear();
            scratch.extend_from_slice(chunk);
            self.comm.all_reduce_into(&scratch[..], chunk, SystemOperation::sum());
        }
        if op == Reduce::Average {
            let scale = 1.0 / self.world() as f32;
            data.iter_mut().for_each(|v| *v *= scale);
        }
        Ok(())
    }

    fn broadcast(&self, data: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        let _watched = self.watchdog.watch("broadcast");
        let root = self.comm.process_at_rank(root as i32);
        let mut len = data.len() as u64;
        root.broadcast_into(&mut len);
        data.resize(len as usize, 0);
        // Every rank now knows the length; Open MPI rejects a broadcast of no bytes (MPI_ERR_ARG).
        if len > 0 {
            root.broadcast_into(&mut data[..]);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<(), CommError> {
        let _watched = self.watchdog.watch("barrier");
        self.comm.barrier();
        Ok(())
    }

    fn describe(&self) -> String {
        let library = mpi::environment::library_version().unwrap_or_default();
        // Open MPI's version string runs on with packaging details after the first comma.
        let name = library.split([',', '\n']).next().unwrap_or("unknown library").trim().to_string();
        format!("MPI ({name}), {} ranks", self.world())
    }
}
