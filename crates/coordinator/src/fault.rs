//! Fault injection for the resume tests: with `REKINDLE_FAULT=POINT` in the environment, the
//! process aborts (as a SIGKILL would end it: no cleanup, no flush) when it reaches the named
//! point, so a test can kill a run at an exact place instead of racing a timer. The points:
//! - `train:T:STAGE:I`: before optimizer step I of stage STAGE of time step T;
//! - `eval:T`: when time step T's closing evaluation starts;
//! - `checkpoint:T`: inside time step T's checkpoint, after the model file, before `state.json`.
//!
//! One point does not abort: `device:N` makes the backend look failed (as a GPU allocation that
//! did not fit does, `Backend::error`) at global optimizer step N, for the test that a failed
//! device stops every rank. `REKINDLE_FAULT_RANK=R` confines any fault to rank R of a launch.

use std::sync::OnceLock;

/// The fault this process injects: `REKINDLE_FAULT`, unless `REKINDLE_FAULT_RANK` names another
/// rank.
fn fault() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let rank = rekindle_comm::Launch::from_env().map_or(0, |l| l.rank);
            let ours = std::env::var("REKINDLE_FAULT_RANK").ok().and_then(|r| r.parse::<usize>().ok()).is_none_or(|r| r == rank);
            std::env::var("REKINDLE_FAULT").ok().filter(|_| ours)
        })
        .as_deref()
}

/// Aborts if `REKINDLE_FAULT` names `point()` (built only when a fault is set).
pub fn at(point: impl FnOnce() -> String) {
    if let Some(fault) = fault() {
        if fault == point() {
            eprintln!("REKINDLE_FAULT: aborting at {fault}");
            std::process::abort();
        }
    }
}

/// The injected device failure of optimizer step `iteration`, if `REKINDLE_FAULT` asks for one.
pub fn device(iteration: u64) -> Option<String> {
    fault().filter(|f| *f == format!("device:{iteration}")).map(|f| format!("injected device failure (REKINDLE_FAULT={f})"))
}
