//! `gpu-sim COMMAND [ARGS...]` runs COMMAND with the software GPU as its CUDA driver, cuBLAS
//! and NCCL (through `LD_LIBRARY_PATH`); `gpu-sim --dir` prints the directory of its libraries.

use std::process::{exit, Command};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help") => {
            println!("usage: gpu-sim COMMAND [ARGS...]   run COMMAND on the software GPU");
            println!("       gpu-sim --dir                print the directory of its libcuda.so, libcublas.so, libnccl.so");
            println!("The simulated device is set with REKINDLE_SIM_* variables (see crates/gpu-sim/src/lib.rs).");
        }
        Some("--dir") => println!("{}", rekindle_gpu_sim::library_dir().display()),
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(&args[1..]);
            rekindle_gpu_sim::use_sim(&mut cmd);
            let status = cmd.status().unwrap_or_else(|e| {
                eprintln!("gpu-sim: cannot run {program}: {e}");
                exit(127)
            });
            match status.code() {
                Some(code) => exit(code),
                None => {
                    // Killed by a signal: say which, and exit as a shell would.
                    let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
                    eprintln!("gpu-sim: {program} was killed by signal {signal}");
                    exit(128 + signal)
                }
            }
        }
    }
}
