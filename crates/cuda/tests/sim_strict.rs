//! The software GPU is strict where the hardware is: each rule has a case here that breaks it and
//! checks the message the caller gets (the sim puts its explanation in cuGetErrorString, so it
//! reaches cudarc's error). How the backend copes with a driver older than NVRTC (CUBINs within
//! a major version, a refusal across one) is in tests/cuda_path.rs; a launch whose arguments do
//! not match the PTX is refused by the backend's own check (rekindle_cuda::params), which runs on
//! a real GPU too.
//!
//! On a machine with a real GPU these cases do not apply and return at once.

use cudarc::driver::{CudaContext, CudaFunction, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use rekindle_cuda::kernels::{Kernel, Module, MODULES};
use rekindle_cuda::{nvrtc, params};
use std::sync::Arc;

fn sim() -> Option<Arc<CudaContext>> {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        eprintln!("a CUDA driver is installed: the software GPU's rules are not under test here");
        return None;
    }
    std::env::set_var("REKINDLE_SIM_QUIET", "1");
    Some(CudaContext::new(0).expect("the software GPU's device 0"))
}

fn elementwise() -> &'static Module {
    MODULES.iter().find(|m| m.name == "elementwise").unwrap()
}

/// Kernel `name` of kernels/elementwise.cu, loaded from its NVRTC PTX.
fn elementwise_kernel(ctx: &Arc<CudaContext>, name: &str) -> CudaFunction {
    let module = ctx.load_module(Ptx::from_src(nvrtc::compiled(elementwise(), "compute_90").unwrap().ptx)).unwrap();
    module.load_function(name).unwrap()
}

#[test]
fn a_block_of_2048_threads_is_refused() {
    let Some(ctx) = sim() else { return };
    let stream = ctx.default_stream();
    let fill = elementwise_kernel(&ctx, "fill");
    let mut x = stream.alloc_zeros::<f32>(4096).unwrap();
    let (value, n) = (1.0f32, 4096u64);
    let mut launch = stream.launch_builder(&fill);
    launch.arg(&mut x).arg(&value).arg(&n);
    let cfg = LaunchConfig { grid_dim: (2, 1, 1), block_dim: (2048, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the arguments match fill(Tensor, float, u64); the launch is refused before it runs.
    let e = format!("{:?}", unsafe { launch.launch(cfg) }.unwrap_err());
    assert!(e.contains("CUDA_ERROR_INVALID_VALUE") && e.contains("2048 threads") && e.contains("at most 1024"), "{e}");
}

#[test]
fn a_64_kib_static_shared_array_is_refused_at_load() {
    let Some(ctx) = sim() else { return };
    let big = Module {
        name: "big_shared",
        source: "extern \"C\" __global__ void big_shared(float* x) {\n  __shared__ float tile[16384];\n  tile[threadIdx.x] = x[threadIdx.x];\n  __syncthreads();\n  x[threadIdx.x] = tile[(threadIdx.x + 1) % 16384];\n}\n",
        kernels: &[Kernel("big_shared")],
        min_compute: 0,
    };
    let ptx = nvrtc::compile(&big, &big.full_source(), "compute_90").unwrap().ptx;
    let e = format!("{:?}", ctx.load_module(Ptx::from_src(ptx)).unwrap_err());
    assert!(e.contains("CUDA_ERROR_INVALID_PTX") && e.contains("big_shared") && e.contains("too much shared data (0x10000 bytes, 0xc000 max)"), "{e}");
}

#[test]
fn an_allocation_over_the_cards_memory_is_out_of_memory() {
    let Some(ctx) = sim() else { return };
    let stream = ctx.default_stream();
    // The simulated card has 16 GiB by default (REKINDLE_SIM_MEMORY_MB).
    let e = format!("{:?}", stream.alloc_zeros::<u8>(17 << 30).unwrap_err());
    assert!(e.contains("CUDA_ERROR_OUT_OF_MEMORY") && e.contains("cannot allocate 18253611008 bytes"), "{e}");
    stream.alloc_zeros::<u8>(1 << 20).expect("a small allocation still fits");
}

#[test]
fn a_kernel_reading_a_fresh_allocation_sees_nan() {
    let Some(ctx) = sim() else { return };
    let stream = ctx.default_stream();
    let convert = elementwise_kernel(&ctx, "convert");
    let n = 1000usize;
    // SAFETY: read only through the kernel below, which is the point of the test.
    let fresh = unsafe { stream.alloc::<f32>(n) }.unwrap();
    let mut out = stream.alloc_zeros::<f32>(n).unwrap();
    let count = n as u64;
    let mut launch = stream.launch_builder(&convert);
    launch.arg(&mut out).arg(&fresh).arg(&count);
    // SAFETY: convert(Tensor dst, Tensor src, u64 n) over two f32 buffers of n elements.
    unsafe { launch.launch(LaunchConfig::for_num_elems(n as u32)) }.unwrap();
    let copied = stream.clone_dtoh(&out).unwrap();
    assert!(copied.iter().all(|v| v.is_nan()), "cudaMalloc does not zero: a kernel reading fresh memory must see garbage (NaN), got {:?}", &copied[..4]);
}

#[test]
fn a_freed_or_foreign_address_is_refused_by_name() {
    let Some(ctx) = sim() else { return };
    let stream = ctx.default_stream();
    let mut host = vec![0f32; 16];
    // A copy from an address that was never a device allocation.
    // SAFETY: the sim refuses it before touching memory.
    let e = unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut host, 0x1000) }.unwrap_err();
    assert!(format!("{e:?}").contains("is not in any device allocation"), "{e:?}");
    // Use after free and double free.
    let address = unsafe { cudarc::driver::result::malloc_sync(64) }.unwrap();
    unsafe { cudarc::driver::result::free_sync(address) }.unwrap();
    let e = unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut host, address) }.unwrap_err();
    assert!(format!("{e:?}").contains("use after free"), "{e:?}");
    let e = unsafe { cudarc::driver::result::free_sync(address) }.unwrap_err();
    assert!(format!("{e:?}").contains("double free"), "{e:?}");
    drop(stream);
}

#[test]
fn a_launch_with_a_wrong_argument_list_is_refused_with_the_kernels_name() {
    // The backend reads every kernel's parameter list from its PTX and checks each launch.
    let ptx = nvrtc::compile(elementwise(), &elementwise().full_source(), "compute_90").unwrap().ptx;
    let table = params::entry_params(&ptx);
    assert_eq!(table["fill"], vec![8, 4, 8], "fill(Tensor, float, u64)");
    assert_eq!(table["axpy"], vec![8, 4, 8, 8], "axpy(Tensor, float, Tensor, u64)");
    params::check_arguments("fill", &table["fill"], &[8, 4, 8]).unwrap();
    let e = params::check_arguments("fill", &table["fill"], &[8, 8, 8]).unwrap_err();
    assert!(e.contains("fill") && e.contains("[8, 8, 8]") && e.contains("[8, 4, 8]"), "{e}");
    let e = params::check_arguments("fill", &table["fill"], &[8, 4]).unwrap_err();
    assert!(e.contains("[8, 4]"), "a missing argument: {e}");
}

/// Kernels of kernels/elementwise.cu as the CUBIN NVRTC makes for `arch` (`sm_90`).
fn elementwise_cubin(arch: &str) -> Vec<u8> {
    nvrtc::compile(elementwise(), &elementwise().full_source(), arch).unwrap().cubin.expect("a real architecture gives a CUBIN")
}

#[test]
fn a_cubin_loads_and_runs_with_its_parameters_read_from_the_elf() {
    let Some(ctx) = sim() else { return };
    let stream = ctx.default_stream();
    let module = ctx.load_module(Ptx::from_binary(elementwise_cubin("sm_90"))).expect("the sm_90 CUBIN of kernels/elementwise.cu");
    let fill = module.load_function("fill").unwrap();
    let mut x = stream.alloc_zeros::<f32>(1000).unwrap();
    let (value, n) = (2.5f32, 1000u64);
    let mut launch = stream.launch_builder(&fill);
    launch.arg(&mut x).arg(&value).arg(&n);
    // SAFETY: fill(Tensor, float, u64) over 1000 f32 values.
    unsafe { launch.launch(LaunchConfig::for_num_elems(1000)) }.unwrap();
    assert!(stream.clone_dtoh(&x).unwrap().iter().all(|&v| v == 2.5));
}

#[test]
fn a_cubin_for_another_architecture_or_with_other_parameters_is_refused() {
    let Some(ctx) = sim() else { return };
    // Machine code for sm_80 does not run on the simulated sm_90.
    let e = format!("{:?}", ctx.load_module(Ptx::from_binary(elementwise_cubin("sm_80"))).unwrap_err());
    assert!(e.contains("CUDA_ERROR_NO_BINARY_FOR_GPU") && e.contains("machine code for sm_80") && e.contains("(sm_90) cannot run"), "{e}");
    // A `fill` whose parameters differ from kernels/elementwise.cu's: the sizes come from the
    // CUBIN's .nv.info (here 8 and 8 bytes), not from the PTX.
    let other = Module { name: "other_fill", source: "extern \"C\" __global__ void fill(float* x, double v) { x[threadIdx.x] = (float)v; }\n", kernels: &[Kernel("fill")], min_compute: 0 };
    let cubin = nvrtc::compile(&other, &other.full_source(), "sm_90").unwrap().cubin.unwrap();
    let e = format!("{:?}", ctx.load_module(Ptx::from_binary(cubin)).unwrap_err());
    assert!(e.contains("CUDA_ERROR_INVALID_IMAGE") && e.contains("kernel fill takes parameters of (8, 8) bytes in the CUBIN but (8, 4, 8)"), "{e}");
}

#[test]
fn ptx_newer_than_the_driver_reads_is_refused() {
    let Some(ctx) = sim() else { return };
    // The simulated driver is CUDA 13.5 (REKINDLE_SIM_DRIVER's default), which reads PTX ISA 9.5
    // at most; NVRTC's PTX with its version raised to 9.9 stands for a newer toolkit's.
    let ptx = nvrtc::compile(elementwise(), &elementwise().full_source(), "compute_90").unwrap().ptx;
    let start = ptx.find(".version ").expect("a .version directive");
    let end = start + ptx[start..].find('\n').unwrap();
    let newer = format!("{}.version 9.9{}", &ptx[..start], &ptx[end..]);
    let e = format!("{:?}", ctx.load_module(Ptx::from_src(newer)).unwrap_err());
    assert!(e.contains("CUDA_ERROR_UNSUPPORTED_PTX_VERSION") && e.contains("PTX ISA 9.9 is newer than driver 13.5 reads (PTX ISA 9.5 at most)"), "{e}");
}
