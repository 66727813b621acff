//! Every kernel module compiles with NVRTC for sm_80 (A100) and sm_90 (H100), its PTX defines
//! every kernel the backend launches, and `ptxas` assembles that PTX for sm_80 and sm_90, which is
//! what the driver does at load time: inline PTX (the tensor-core instructions), register and
//! shared-memory limits are only checked there. Runs without a GPU: it needs libnvrtc and ptxas (a
//! CUDA toolkit, or the `nvidia-cuda-nvrtc` and `nvidia-cuda-nvcc` pip wheels that `.ci/run`
//! installs).

use rekindle_cuda::kernels::MODULES;
use rekindle_cuda::nvrtc;
use std::path::PathBuf;
use std::process::Command;

/// ptxas: `$REKINDLE_PTXAS`, a CUDA toolkit, or the `nvidia-cuda-nvcc` wheel in `/opt/rekindle-nvrtc`.
fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REKINDLE_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from("/usr/local/cuda/bin/ptxas")];
    for root in ["/opt/rekindle-nvrtc/lib"] {
        for python in std::fs::read_dir(root).into_iter().flatten().flatten() {
            candidates.push(python.path().join("site-packages/nvidia/cu13/bin/ptxas"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    let loaded = nvrtc::load_nvrtc().unwrap_or_else(|e| panic!("{e}"));
    let (major, minor) = nvrtc::version().unwrap();
    eprintln!("NVRTC {major}.{minor} from {}", loaded.map_or("the loader path".into(), |p| p.display().to_string()));
    let ptxas = ptxas().expect("no ptxas: install a CUDA toolkit or the nvidia-cuda-nvcc wheel into /opt/rekindle-nvrtc, or set REKINDLE_PTXAS");
    let scratch = std::env::temp_dir().join(format!("rekindle-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    for module in MODULES {
        for arch in ["compute_80", "compute_90"] {
            match nvrtc::compile(module, &module.full_source(), arch).map(|code| code.ptx) {
                Ok(ptx) => {
                    for kernel in module.kernels.iter().map(|k| k.0) {
                        if !ptx.contains(&format!(".entry {kernel}(")) {
                            failures.push(format!("kernels/{}.cu for {arch}: no entry point `{kernel}` in the PTX", module.name));
                        }
                    }
                    let (ptx_file, sm) = (scratch.join(format!("{}-{arch}.ptx", module.name)), arch.replace("compute_", "sm_"));
                    std::fs::write(&ptx_file, &ptx).unwrap();
                    let out = Command::new(&ptxas).arg(format!("-arch={sm}")).arg(&ptx_file).arg("-o").arg(ptx_file.with_extension("cubin")).output().unwrap();
                    if !out.status.success() {
                        failures.push(format!("ptxas kernels/{}.cu for {sm}:\n{}", module.name, String::from_utf8_lossy(&out.stderr)));
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_broken_kernel_fails_with_the_compiler_log() {
    let broken = rekindle_cuda::kernels::Module { name: "broken", source: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }", kernels: &[rekindle_cuda::kernels::Kernel("k")], min_compute: 0 };
    let e = nvrtc::compile(&broken, &broken.full_source(), "compute_90").unwrap_err().to_string();
    assert!(e.contains("kernels/broken.cu") && e.contains("undefined_name"), "{e}");
}
