//! What the CPU ops share to split work across rayon tasks.

/// Rows of work below which splitting across threads costs more than it saves.
pub const MIN_ROWS_PER_TASK: usize = 16;

/// A raw output pointer shared by parallel tasks that each write a disjoint part of it.
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);
// SAFETY: the tasks that share one write disjoint elements (each use site says which).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
