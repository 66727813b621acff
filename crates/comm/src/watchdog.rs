//! A collective that never returns is how a dead or stuck rank shows itself to the others: MPI and
//! NCCL wait for it forever. The watchdog's thread looks at the collective in flight once a second
//! and, when one has waited longer than the timeout, prints which rank waited, in which
//! collective and for how long, and exits the process with status 75. `mpirun` and `srun` then
//! stop the remaining ranks.
//!
//! It exits with `_exit`, because the main thread is inside the MPI or NCCL library and nothing
//! it holds can be cleaned up safely.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exit status of a rank whose collective timed out (EX_TEMPFAIL).
pub const TIMED_OUT: i32 = 75;

pub struct Watchdog {
    /// The collective in flight and when it started.
    in_flight: Arc<Mutex<Option<(&'static str, Instant)>>>,
}

/// Marks a collective in flight until dropped.
pub struct Watched<'a>(&'a Watchdog);

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        *self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Watchdog {
    /// Starts the watching thread for rank `rank`.
    pub fn start(rank: usize, timeout: Duration) -> Watchdog {
        let in_flight: Arc<Mutex<Option<(&'static str, Instant)>>> = Arc::new(Mutex::new(None));
        let watched = in_flight.clone();
        std::thread::Builder::new()
            .name("rekindle-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1).min(timeout));
                let Some((op, since)) = *watched.lock().unwrap_or_else(|e| e.into_inner()) else { continue };
                if since.elapsed() > timeout {
                    eprintln!(
                        "error: rank {rank}: {op} has waited {:.0} s for the other ranks (timeout {} s); a rank has died or hangs, see its log. Exiting.",
                        since.elapsed().as_secs_f64(),
                        timeout.as_secs()
                    );
                    // SAFETY: `_exit` ends the process without running any handler; nothing else
                    // touches memory afterwards.
                    unsafe { libc::_exit(TIMED_OUT) };
                }
            })
            .expect("cannot start the watchdog thread");
        Watchdog { in_flight }
    }

    /// Watches the collective `op` until the returned guard is dropped.
    pub fn watch(&self, op: &'static str) -> Watched<'_> {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = Some((op, Instant::now()));
        Watched(self)
    }
}
