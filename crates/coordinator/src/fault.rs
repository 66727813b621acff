//! Fault injection for the resume tests: with `REKINDLE_FAULT=POINT` in the environment, the
//! process aborts (as a SIGKILL would end it: no cleanup, no flush) when it reaches the named
//! point, so a test can kill a run at an exact place instead of racing a timer. The points:
//! - `train:T:STAGE:I`: before optimizer step I of stage STAGE of time step T;
//! - `eval:T`: when time step T's closing evaluation starts;
//! - `checkpoint:T`: inside time step T's checkpoint, after the model file, before `state.json`.

use std::sync::OnceLock;

/// Aborts if `REKINDLE_FAULT` names `point()` (built only when a fault is set).
pub fn at(point: impl FnOnce() -> String) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    if let Some(fault) = FAULT.get_or_init(|| std::env::var("REKINDLE_FAULT").ok()) {
        if *fault == point() {
            eprintln!("REKINDLE_FAULT: aborting at {fault}");
            std::process::abort();
        }
    }
}
