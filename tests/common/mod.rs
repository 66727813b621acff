//! Helpers shared by the multi-process tests (`distributed.rs` under mpirun, `slurm.rs` under
//! Slurm): comparing the checkpoints that runs at different world sizes write.
#![allow(dead_code)] // each test binary uses its own subset

use rekindle_tensor::relative_error;
use safetensors::SafeTensors;
use std::path::Path;

/// Every tensor of a checkpoint, concatenated in name order.
pub fn params(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    names.iter().flat_map(|n| st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>()).collect()
}

/// The two checkpoints hold the same parameters to a relative error of 1e-5 (what data-parallel
/// ranks reach against one process), and training moved them from time step 0's.
pub fn assert_same_params(a: &Path, b: &Path, what: &str) {
    let (pa, pb) = (params(a), params(b));
    let e = relative_error(&pa, &pb);
    eprintln!("{what}: relative parameter error {e:.3e} over {} values", pa.len());
    assert!(e <= 1e-5, "{what}: relative error {e:.3e} > 1e-5");
    assert!(pa != params(&a.with_file_name("step-0.safetensors")) || a.ends_with("step-0.safetensors"), "{what}: training changed the model");
}
