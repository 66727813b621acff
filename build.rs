//! Records the git commit the binary is built from (`REKINDLE_GIT_COMMIT`, with `+dirty` when
//! the checkout has uncommitted changes), which every run writes into its `run.json`. Outside a
//! git checkout (a crates.io or tarball build) nothing is set, and runs record no commit. It
//! declares no `rerun-if-changed`, so Cargo runs it again whenever a file of the package changes
//! and the dirty mark stays true.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    if let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) {
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        println!("cargo:rustc-env=REKINDLE_GIT_COMMIT={commit}{}", if dirty { "+dirty" } else { "" });
    }
}
