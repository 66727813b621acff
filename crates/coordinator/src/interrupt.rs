//! A stop request (Ctrl-C): the CLI's signal handler calls [`request`], and the training loops
//! ask [`requested`] once per optimizer step, so a checkpoint being written is always finished
//! first. Every rank learns of a request on any rank in the same step (one tiny all-reduce), so
//! they all stop together instead of leaving the others waiting in a collective.

use rekindle_dist::{Comm, CommError, Reduce};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running loop to stop at its next optimizer step (signal-safe: one atomic store).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether any rank was asked to stop; every rank must call it at the same point.
pub fn requested(comm: &dyn Comm) -> Result<bool, CommError> {
    let mut flag = [STOP.load(Ordering::SeqCst) as u8 as f32];
    if comm.world() > 1 {
        comm.all_reduce(&mut flag, Reduce::Sum)?;
    }
    Ok(flag[0] > 0.0)
}
