//! Every kernel module compiles with NVRTC for sm_80 (A100) and sm_90 (H100), and its PTX defines
//! every kernel the backend launches. Runs without a GPU: it needs only libnvrtc (a CUDA toolkit,
//! or the `nvidia-cuda-nvrtc` pip wheel that `.ci/run` installs).

use rekindle_cuda::kernels::MODULES;
use rekindle_cuda::nvrtc;

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    let loaded = nvrtc::load_nvrtc().unwrap_or_else(|e| panic!("{e}"));
    let (major, minor) = nvrtc::version().unwrap();
    eprintln!("NVRTC {major}.{minor} from {}", loaded.map_or("the loader path".into(), |p| p.display().to_string()));
    let mut failures = Vec::new();
    for module in MODULES {
        for arch in ["compute_80", "compute_90"] {
            match nvrtc::compile(module, &module.full_source(), arch) {
                Ok(ptx) => {
                    for kernel in module.kernels {
                        if !ptx.contains(&format!(".entry {kernel}(")) {
                            failures.push(format!("kernels/{}.cu for {arch}: no entry point `{kernel}` in the PTX", module.name));
                        }
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_broken_kernel_fails_with_the_compiler_log() {
    let broken = rekindle_cuda::kernels::Module { name: "broken", source: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }", kernels: &["k"] };
    let e = nvrtc::compile(&broken, &broken.full_source(), "compute_90").unwrap_err().to_string();
    assert!(e.contains("kernels/broken.cu") && e.contains("undefined_name"), "{e}");
}
