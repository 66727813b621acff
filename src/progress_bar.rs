//! Progress of long work: an indicatif bar on a terminal; without one (a Slurm log, `tee`, a
//! pipe), a plain line every `--progress-every` seconds, so a log shows the stage, iteration,
//! loss, throughput and ETA without carriage returns.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    /// The terminal's bar, or `None` for plain lines.
    bar: Option<ProgressBar>,
    every: Duration,
    prefix: String,
    len: u64,
    /// The position the stage started at (a resume starts inside one) and when.
    first: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Plain lines every `every` when stderr is not a terminal.
    pub fn new(every: Duration) -> Progress {
        let bar = std::io::stderr().is_terminal().then(ProgressBar::hidden);
        Progress { bar, every, prefix: String::new(), len: 0, first: 0, started: Instant::now(), last_line: Instant::now(), }
    }

    /// A new stage of `len` iterations named `prefix`, starting at `first`.
    pub fn stage(&mut self, prefix: String, len: u64, first: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
            bar.set_length(len);
            bar.set_position(first);
            bar.set_style(ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} eta {eta}").expect("valid template"));
            bar.set_prefix(prefix.clone());
        }
        (self.prefix, self.len, self.first, self.started, self.last_line) = (prefix, len, first, Instant::now(), Instant::now());
    }

    /// `position` iterations of the stage are done; `message` says how they went.
    pub fn update(&mut self, position: u64, message: String) {
        let Some(bar) = &self.bar else {
            if self.last_line.elapsed() >= self.every {
                self.last_line = Instant::now();
                let done = position.saturating_sub(self.first).max(1) as f64;
                let eta = self.started.elapsed().as_secs_f64() / done * self.len.saturating_sub(position) as f64;
                let eta = humantime::format_duration(Duration::from_secs(eta.round() as u64));
                say(&format!("{} {position}/{} {message} eta {eta}", self.prefix.trim_end(), self.len));
            }
            return;
        };
        bar.set_position(position);
        bar.set_message(message);
    }

    /// Prints `line` (above the bar on a terminal).
    pub fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| say(&line)),
            None => say(&line),
        }
    }

    /// Removes the bar (a stage ended).
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes `line` to stderr; a closed stderr (`2>&1 | head`) does not stop the work.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
