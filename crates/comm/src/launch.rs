//! The rank layout a launcher hands its processes through the environment:
//!
//! | launcher | rank | world | local rank | local world |
//! | --- | --- | --- | --- | --- |
//! | Open MPI `mpirun` | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_LOCAL_RANK` | `OMPI_COMM_WORLD_LOCAL_SIZE` |
//! | MPICH / Intel MPI (Hydra) | `PMI_RANK` | `PMI_SIZE` | `MPI_LOCALRANKID` | `MPI_LOCALNRANKS` |
//! | Slurm `srun` | `SLURM_PROCID` | `SLURM_STEP_NUM_TASKS` | `SLURM_LOCALID` | `SLURM_STEP_TASKS_PER_NODE` |
//!
//! The first launcher whose rank variable is set wins. Slurm is read from the *step* variables,
//! so a batch script that runs rekindle without `srun` is one process, not rank 0 of a job that
//! never starts. No variable at all means one process.

use crate::CommError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    /// Processes on this node (CPU threads are shared among them).
    pub local_world: usize,
    /// The launcher, for messages: `mpirun (Open MPI)`, `Hydra (MPICH)`, `srun`, `none`.
    pub source: &'static str,
}

struct Names {
    source: &'static str,
    rank: &'static str,
    world: &'static str,
    local_rank: &'static str,
    local_world: &'static str,
}

const LAUNCHERS: [Names; 3] = [
    Names { source: "mpirun (Open MPI)", rank: "OMPI_COMM_WORLD_RANK", world: "OMPI_COMM_WORLD_SIZE", local_rank: "OMPI_COMM_WORLD_LOCAL_RANK", local_world: "OMPI_COMM_WORLD_LOCAL_SIZE" },
    Names { source: "Hydra (MPICH)", rank: "PMI_RANK", world: "PMI_SIZE", local_rank: "MPI_LOCALRANKID", local_world: "MPI_LOCALNRANKS" },
    Names { source: "srun", rank: "SLURM_PROCID", world: "SLURM_STEP_NUM_TASKS", local_rank: "SLURM_LOCALID", local_world: "SLURM_STEP_TASKS_PER_NODE" },
];

impl Launch {
    /// One process.
    pub const SINGLE: Launch = Launch { rank: 0, world: 1, local_rank: 0, local_world: 1, source: "none" };

    pub fn from_env() -> Result<Launch, CommError> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// The layout from the variables `get` returns (the environment, or a test's table).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Launch, CommError> {
        let Some(names) = LAUNCHERS.iter().find(|n| get(n.rank).is_some() && get(n.world).is_some()) else { return Ok(Launch::SINGLE) };
        let number = |name: &str, default: Option<usize>| -> Result<usize, CommError> {
            match get(name) {
                // Slurm writes per-node counts as `4(x2),3`; this node's count comes first only on
                // homogeneous jobs, which is what rekindle's launchers ask for.
                Some(text) => text.split(['(', ',']).next().unwrap_or("").trim().parse().map_err(|_| CommError::Launch(format!("{name}={text:?} is not a whole number"))),
                None => default.ok_or_else(|| CommError::Launch(format!("{} set {} but not {name}", names.source, names.rank))),
            }
        };
        let rank = number(names.rank, None)?;
        let world = number(names.world, None)?;
        // Without local variables, assume one process per node.
        let local_rank = number(names.local_rank, Some(0))?;
        let local_world = number(names.local_world, Some(1))?;
        if world == 0 || rank >= world {
            return Err(CommError::Launch(format!("{}: rank {rank} of world size {world} ({} / {})", names.source, names.rank, names.world)));
        }
        if local_world == 0 || local_rank >= local_world {
            return Err(CommError::Launch(format!("{}: local rank {local_rank} of {local_world} on this node ({} / {})", names.source, names.local_rank, names.local_world)));
        }
        Ok(Launch { rank, world, local_rank, local_world, source: names.source })
    }

    /// CPU threads for this process: the node's cores shared evenly among its ranks.
    pub fn threads_per_rank(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / self.local_world).max(1)
    }
}
