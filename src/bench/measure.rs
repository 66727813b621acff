//! How the benches take their numbers: medians over timed runs, and runs at each world size up
//! to the launcher's.

use anyhow::Result;
use rekindle_comm::{Comm, Launch};

/// The median of `times` (sorted in place).
pub fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// World sizes to measure: powers of two below `world`, then `world`.
#[cfg(feature = "mpi")]
fn world_sizes(world: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |w| Some(w * 2)).take_while(|&w| w < world).collect();
    sizes.push(world);
    sizes
}

/// Runs `measure` on the first `w` ranks for each world size `w`; the other ranks wait.
#[cfg(feature = "mpi")]
pub fn each_world_size<T>(launch: &Launch, measure: &mut dyn FnMut(&dyn Comm) -> Result<T>) -> Result<Vec<T>> {
    if launch.world == 1 {
        return Ok(vec![measure(&rekindle_comm::Single)?]);
    }
    let mpi = rekindle_comm::Mpi::init(launch, std::time::Duration::from_secs(600))?;
    let mut out = Vec::new();
    for w in world_sizes(launch.world) {
        if let Some(sub) = mpi.first(w) {
            out.push(measure(&sub)?);
        }
        mpi.idle_barrier();
    }
    Ok(out)
}

/// Without MPI only one process can run; `connect` explains a launch with more.
#[cfg(not(feature = "mpi"))]
pub fn each_world_size<T>(launch: &Launch, measure: &mut dyn FnMut(&dyn Comm) -> Result<T>) -> Result<Vec<T>> {
    let comm = rekindle_comm::connect(launch, std::time::Duration::from_secs(600))?;
    Ok(vec![measure(comm.as_ref())?])
}
