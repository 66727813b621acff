//! The software GPU: stand-in `libcuda.so`, `libcublas.so` and `libnccl.so` that run rekindle's
//! real CUDA backend, its NVRTC-compiled PTX (checked as the driver would) and host-compiled
//! twins of kernels/*.cu on the CPU, strict where the hardware is strict. It exists so the GPU
//! path executes in tests and CI on machines without a GPU; it says nothing about speed.
//!
//! The library is built by build.rs into [`library_dir`]. A process selects it either with
//! `LD_LIBRARY_PATH` ([`use_sim`] or [`configure`] for a child process, or the `gpu-sim` binary:
//! `gpu-sim rekindle train … --device cuda:0`), or, inside a test, with [`install`], which loads
//! it before cudarc opens the CUDA libraries by name. No production code knows which it runs on.
//!
//! The simulated device is set through the environment (read once per process):
//! `REKINDLE_SIM_DEVICES` (1), `REKINDLE_SIM_NAME`, `REKINDLE_SIM_COMPUTE` (9.0),
//! `REKINDLE_SIM_MEMORY_MB` per device (16384), `REKINDLE_SIM_DRIVER` (13050, i.e. CUDA 13.5),
//! `REKINDLE_SIM_THREADS` (the host's cores), `REKINDLE_SIM_STACK_KB` per simulated thread (64),
//! and `REKINDLE_SIM_QUIET` to keep its explanations off stderr (they stay in
//! `cuGetErrorString`).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the software GPU's libraries.
pub fn library_dir() -> &'static Path {
    Path::new(env!("REKINDLE_GPU_SIM_DIR"))
}

/// What [`install`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A CUDA driver is installed (a real GPU, or the sim already on `LD_LIBRARY_PATH`).
    Installed,
    /// No driver was installed: the software GPU is now loaded in this process.
    Sim,
}

/// Makes CUDA loadable in this process: where no CUDA driver can be opened, loads the software
/// GPU so that cudarc's later opening of `libcuda.so`, `libcublas.so` and `libnccl.so` by name
/// finds it (the dynamic loader matches the names against the loaded libraries' sonames).
/// Idempotent; panics if the software GPU cannot be loaded, naming the file.
pub fn install() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    *DEVICE.get_or_init(|| {
        for name in ["libcuda.so", "libcuda.so.1"] {
            // SAFETY: opening the driver library runs its initialisers only.
            if let Ok(lib) = unsafe { libloading::Library::new(name) } {
                std::mem::forget(lib);
                return Device::Installed;
            }
        }
        for name in ["libcuda.so", "libcublas.so", "libnccl.so"] {
            let path = library_dir().join(name);
            // SAFETY: the software GPU's initialisers only set up its own state.
            let lib = unsafe { libloading::Library::new(&path) }.unwrap_or_else(|e| panic!("cannot load the software GPU {}: {e}", path.display()));
            std::mem::forget(lib);
        }
        Device::Sim
    })
}

/// Makes the process `cmd` starts find CUDA: left alone where a CUDA driver is installed (a real
/// GPU), else given the software GPU ([`use_sim`]).
pub fn configure(cmd: &mut Command) -> &mut Command {
    match install() {
        Device::Installed => cmd,
        Device::Sim => use_sim(cmd),
    }
}

/// Puts the software GPU first on `LD_LIBRARY_PATH` for `cmd`, so the process it starts loads it
/// as its CUDA driver, cuBLAS and NCCL, whatever else is installed.
pub fn use_sim(cmd: &mut Command) -> &mut Command {
    let mut path = library_dir().display().to_string();
    if let Ok(rest) = std::env::var("LD_LIBRARY_PATH") {
        if !rest.is_empty() {
            path = format!("{path}:{rest}");
        }
    }
    cmd.env("LD_LIBRARY_PATH", path)
}

/// Whether GPU tests must run rather than skip (`REKINDLE_REQUIRE_CUDA=1`, which CI sets: there
/// the software GPU is always present, so a skip means something is broken).
pub fn required() -> bool {
    std::env::var("REKINDLE_REQUIRE_CUDA").is_ok_and(|v| v == "1")
}

/// Reports a GPU test that cannot run: a note on stderr, or a panic where [`required`].
pub fn skip(reason: &str) {
    assert!(!required(), "REKINDLE_REQUIRE_CUDA=1, but a GPU test would skip: {reason}");
    eprintln!("skipped: {reason}");
}
