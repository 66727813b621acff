//! [`CudaBackend`]: the `Backend` trait on one GPU. Every buffer is a device allocation; a
//! `Tensor` view is the allocation's address plus an offset. Ops are enqueued on one stream and
//! run asynchronously; `download` and the ops returning host values synchronise.
//!
//! Two precisions ([`Precision`]):
//! - **fp32**: fp32 throughout (fp64 for loss and norm reductions), exactly the CPU backend's
//!   arithmetic, so one test body holds both to 1e-5. GEMMs are cuBLAS SGEMM in full fp32 (no
//!   TF32).
//! - **bf16** (mixed precision): buffers from `alloc_activations` hold bf16, parameter buffers
//!   (`alloc_weights`) keep fp32 masters and a bf16 copy, and GEMMs are cuBLAS bf16 × bf16 with
//!   fp32 accumulation, writing bf16 or fp32 as the output buffer holds. Gradients of parameters,
//!   optimizer state, the residual stream, statistics and losses stay fp32. Kernels read and write
//!   either precision (kernels/common.cuh's `Tensor`) and compute in fp32.
//!
//! Why per-buffer precision and not a second set of ops: the model chooses, once, which buffers
//! are activations, and every op keeps its one definition; the CPU backend ignores the choice.

#[macro_use]
mod launch;
mod gemm;
mod memory;
mod ops;

use crate::kernels::{Kernel, MODULES};
use crate::nvrtc;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream};
use cudarc::nvrtc::Ptx;
use rekindle_tensor::{ParamGroup, Precision};
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CudaError {
    #[error("CUDA: {0}")]
    Driver(String),
    #[error(transparent)]
    Nvrtc(#[from] nvrtc::NvrtcError),
}

/// The architecture to compile the kernels for, so that this driver can load them. PTX for the
/// virtual `compute_XY` where the driver is at least as new as NVRTC: the driver compiles it for
/// the GPU. A driver of NVRTC's major version but an older minor cannot read that PTX (its ISA is
/// newer), but CUDA's minor version compatibility lets it load the CUBIN that NVRTC makes for the
/// device's exact architecture `sm_XY`. A driver of an older major version can load neither: the
/// error names both versions and the way out.
fn kernel_arch(driver: i32, nvrtc: (i32, i32), compute: (i32, i32)) -> Result<String, CudaError> {
    let driver = (driver / 1000, driver % 1000 / 10);
    let (major, minor) = compute;
    if driver >= nvrtc {
        Ok(format!("compute_{major}{minor}"))
    } else if driver.0 == nvrtc.0 {
        Ok(format!("sm_{major}{minor}"))
    } else {
        Err(CudaError::Driver(format!(
            "this GPU's driver (CUDA {}.{}) cannot load what NVRTC {}.{} compiles: its PTX is too new, and CUBINs are compatible within one major \
             version only; use an NVRTC of CUDA {} (e.g. pip install nvidia-cuda-nvrtc-cu{} and REKINDLE_NVRTC=/path/to/libnvrtc.so.{}), or update the driver",
            driver.0, driver.1, nvrtc.0, nvrtc.1, driver.0, driver.0, driver.0
        )))
    }
}

fn driver_error(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError::Driver(format!("{what}: {e:?}"))
}

/// Threads per block of the grid-stride kernels.
const THREADS: u32 = 256;
/// Rows per chunk of the deterministic column sums (bias and LayerNorm parameter gradients).
const CHUNK_ROWS: usize = 256;
/// Most blocks of a device sum's partials (fewer where the values fit in fewer).
const SUM_BLOCKS: u32 = 1024;
/// Rows per block of the one-warp-per-row kernels (LayerNorm).
const WARP_ROWS: u32 = THREADS / 32;
/// Rows per block of the SIMT attention kernels (kernels/attention.cu's TILE).
const TILE: u32 = 64;
/// Rows and threads per block of the tensor-core attention kernels (kernels/attention_tc.cu).
const TC_ROWS: u32 = 64;
const TC_THREADS: u32 = 128;

/// One allocation, its device address, and the elements asked for: after a failed allocation
/// the slice is a one-element stand-in, but views are still checked against what was asked.
struct Allocation<T> {
    slice: CudaSlice<T>,
    address: u64,
    len: usize,
}

/// A loaded kernel, and its parameter sizes from the PTX, against which every launch is checked.
struct LoadedKernel {
    function: CudaFunction,
    params: Vec<usize>,
}

/// One buffer of `len` elements stored in `storage` precision. Parameter buffers under bf16 carry the bf16 `copy` the GEMMs
/// read; a write to the buffer marks it stale and the next GEMM that reads it converts it again
/// (AdamW writes both, so in training the copy is never converted twice).
struct Buffer {
    memory: Allocation<u8>,
    storage: Precision,
    len: usize,
    copy: Option<WeightCopy>,
}

struct WeightCopy {
    memory: Allocation<u8>,
    stale: bool,
}

pub struct CudaBackend {
    ordinal: usize,
    device_name: String,
    precision: Precision,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: HashMap<Kernel, LoadedKernel>,
    buffers: Vec<Option<Buffer>>,
    index_buffers: Vec<Option<Allocation<i32>>>,
    /// Reused scratch for partial sums (f32 and f64), grown on demand.
    scratch: Option<Allocation<f32>>,
    scratch_f64: Option<Allocation<f64>>,
    /// bf16 conversions of a GEMM's f32 operands A and B (under bf16).
    gemm_operands: [Option<Allocation<u8>>; 2],
    /// The optimiser's group table on the device, and the groups it was built from.
    group_table: Option<(Vec<ParamGroup>, Allocation<u8>)>,
    /// The first failure, after which no op runs (see `fail`).
    failure: std::cell::OnceCell<String>,
    _context: Arc<CudaContext>,
}

impl CudaBackend {
    /// The backend on GPU `ordinal` computing in `precision`: creates a context and stream, and
    /// compiles (or loads from the cache) every kernel module for the device's architecture, as
    /// PTX or as CUBIN, whichever the driver can load ([`kernel_arch`]).
    pub fn new(ordinal: usize, precision: Precision) -> Result<CudaBackend, CudaError> {
        // SAFETY: only opens the driver library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError::Driver("the CUDA driver library (libcuda.so) cannot be loaded: no NVIDIA driver on this machine".into()));
        }
        let count = CudaContext::device_count().map_err(driver_error("counting devices"))?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::Driver(format!("cuda:{ordinal} does not exist: this machine has {count} GPU(s)")));
        }
        let context = CudaContext::new(ordinal).map_err(driver_error("creating a context"))?;
        // One stream, so no cross-stream events are needed.
        // SAFETY: this backend never shares its buffers with another stream.
        unsafe { context.disable_event_tracking() };
        let stream = context.new_stream().map_err(driver_error("creating a stream"))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::Driver(format!("cuBLAS: {e:?}")))?;
        let (major, minor) = context.compute_capability().map_err(driver_error("reading the compute capability"))?;
        let device_name = context.name().unwrap_or_else(|_| "unknown GPU".into());
        let compute = (10 * major + minor) as u32;
        if precision == Precision::Bf16 && compute < 80 {
            return Err(CudaError::Driver(format!(
                "--precision bf16 needs bf16 tensor cores (compute capability 8.0 or later: A100, H100); cuda:{ordinal} ({device_name}) is {major}.{minor}: use --precision fp32"
            )));
        }
        let mut driver = 0;
        // SAFETY: writes one int.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver) }.result().map_err(driver_error("reading the driver version"))?;
        let arch = kernel_arch(driver, nvrtc::version()?, (major, minor))?;
        let mut kernels = HashMap::new();
        for module in MODULES.iter().filter(|m| compute >= m.min_compute) {
            let code = nvrtc::compiled(module, &arch)?;
            let mut params = crate::params::entry_params(&code.ptx);
            let image = match code.cubin {
                Some(cubin) => Ptx::from_binary(cubin),
                None => Ptx::from_src(code.ptx),
            };
            let loaded = context.load_module(image).map_err(driver_error(module.name))?;
            for &kernel in module.kernels {
                let function = loaded.load_function(kernel.0).map_err(driver_error(kernel.0))?;
                kernels.insert(kernel, LoadedKernel { function, params: params.remove(kernel.0).unwrap_or_default() });
            }
        }
        Ok(CudaBackend {
            ordinal,
            device_name,
            precision,
            stream,
            blas,
            kernels,
            buffers: Vec::new(),
            index_buffers: Vec::new(),
            scratch: None,
            scratch_f64: None,
            gemm_operands: [None, None],
            group_table: None,
            failure: std::cell::OnceCell::new(),
            _context: context,
        })
    }

    /// The stream every op runs on; a collective enqueued on it (NCCL) is ordered with them.
    pub fn stream(&self) -> Arc<CudaStream> {
        self.stream.clone()
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }
}
