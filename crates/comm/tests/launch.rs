//! The launch environment of each launcher, and the file rendezvous.

use rekindle_comm::{rendezvous, Comm, Launch, Reduce, Single};
use std::collections::HashMap;
use std::time::Duration;

fn launch(vars: &[(&str, &str)]) -> Result<Launch, String> {
    let table: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Launch::from_vars(|name| table.get(name).cloned()).map_err(|e| e.to_string())
}

#[test]
fn each_launcher_is_read() {
    assert_eq!(launch(&[]).unwrap(), Launch::SINGLE);
    let ompi = launch(&[("OMPI_COMM_WORLD_RANK", "3"), ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "4")]).unwrap();
    assert_eq!((ompi.rank, ompi.world, ompi.local_rank, ompi.local_world), (3, 8, 1, 4));
    let hydra = launch(&[("PMI_RANK", "1"), ("PMI_SIZE", "2"), ("MPI_LOCALRANKID", "1"), ("MPI_LOCALNRANKS", "2")]).unwrap();
    assert_eq!((hydra.rank, hydra.world, hydra.local_rank, hydra.source), (1, 2, 1, "Hydra (MPICH)"));
    // Slurm's per-node counts look like `4(x2)`.
    let srun = launch(&[("SLURM_PROCID", "5"), ("SLURM_STEP_NUM_TASKS", "8"), ("SLURM_LOCALID", "1"), ("SLURM_STEP_TASKS_PER_NODE", "4(x2)")]).unwrap();
    assert_eq!((srun.rank, srun.world, srun.local_rank, srun.local_world), (5, 8, 1, 4));
    // mpirun inside a Slurm allocation: Open MPI's own variables win.
    let both = launch(&[("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "1"), ("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2")]).unwrap();
    assert_eq!((both.rank, both.world, both.local_rank, both.local_world), (1, 2, 0, 1));
}

#[test]
fn a_batch_script_without_srun_is_one_process() {
    // sbatch sets the job's task count, but only srun sets the step's.
    assert_eq!(launch(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "16"), ("SLURM_JOB_ID", "7")]).unwrap(), Launch::SINGLE);
}

#[test]
fn bad_layouts_name_the_variable() {
    let e = launch(&[("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "2")]).unwrap_err();
    assert!(e.contains("rank 2 of world size 2") && e.contains("OMPI_COMM_WORLD_RANK"), "{e}");
    let e = launch(&[("PMI_RANK", "x"), ("PMI_SIZE", "2")]).unwrap_err();
    assert!(e.contains("PMI_RANK=\"x\""), "{e}");
    let e = launch(&[("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_LOCALID", "3"), ("SLURM_STEP_TASKS_PER_NODE", "2")]).unwrap_err();
    assert!(e.contains("local rank 3 of 2"), "{e}");
}

#[test]
fn single_leaves_buffers_alone() {
    let mut data = vec![1.5, -2.0];
    Single.all_reduce(&mut data, Reduce::Average).unwrap();
    assert_eq!(data, [1.5, -2.0]);
    let mut bytes = b"id".to_vec();
    Single.broadcast(&mut bytes, 0).unwrap();
    assert_eq!(bytes, b"id");
}

#[test]
fn rendezvous_hands_over_whole_files_only() {
    let dir = std::env::temp_dir().join(format!("rekindle-rdv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rekindle-1.0.id");
    let e = rendezvous::wait_for(&path, Duration::from_millis(300)).unwrap_err().to_string();
    assert!(e.contains("did not publish") && e.contains("rekindle-1.0.id"), "{e}");
    let reader = {
        let path = path.clone();
        std::thread::spawn(move || rendezvous::wait_for(&path, Duration::from_secs(10)))
    };
    std::thread::sleep(Duration::from_millis(200));
    let id: Vec<u8> = (0..128).collect();
    rendezvous::publish(&path, &id).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), id);
    // Nothing but the final file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
