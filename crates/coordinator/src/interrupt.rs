//! A stop request (Ctrl-C): the CLI's signal handler calls [`request`]. Every optimizer step
//! packs [`pending`] beside its loss sums, which are summed over the ranks anyway, so every rank
//! learns of a request on any rank in the same step and they all stop together after it (no
//! extra collective), and a checkpoint being written is always finished first.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running loop to stop after its optimizer step in progress (signal-safe: one atomic
/// store).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether this process was asked to stop.
pub fn pending() -> bool {
    STOP.load(Ordering::SeqCst)
}
