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

use crate::kernels::MODULES;
use crate::nvrtc;
use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::cublas::sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
use cudarc::driver::{result as driver, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use cudarc::nvrtc::Ptx;
use rekindle_tensor::{AdamW, AttentionShape, Backend, Gemm, Indices, ParamGroup, PatchOrder, PatchShape, Precision, Sgd, Tensor};
use half::bf16;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CudaError {
    #[error("CUDA: {0}")]
    Driver(String),
    #[error(transparent)]
    Nvrtc(#[from] nvrtc::NvrtcError),
}

fn driver_error(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError::Driver(format!("{what}: {e:?}"))
}

/// Threads per block of the grid-stride kernels.
const THREADS: u32 = 256;
/// Rows per chunk of the deterministic column sums (bias and LayerNorm parameter gradients).
const CHUNK_ROWS: usize = 256;
/// Blocks of the sum-of-squares partials.
const SUM_BLOCKS: u32 = 1024;
/// Rows per block of the one-warp-per-row kernels (LayerNorm).
const WARP_ROWS: u32 = THREADS / 32;
/// Rows per block of the SIMT attention kernels (kernels/attention.cu's TILE).
const TILE: u32 = 64;
/// Rows and threads per block of the tensor-core attention kernels (kernels/attention_tc.cu).
const TC_ROWS: u32 = 64;
const TC_THREADS: u32 = 128;

/// One allocation and its device address.
struct Allocation<T> {
    slice: CudaSlice<T>,
    address: u64,
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
    functions: HashMap<&'static str, CudaFunction>,
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

fn allocate<T: DeviceRepr + ValidAsZeroBits>(stream: &Arc<CudaStream>, len: usize) -> Result<Allocation<T>, cudarc::driver::DriverError> {
    let slice = stream.alloc_zeros::<T>(len.max(1))?;
    let address = slice.device_ptr(stream).0;
    Ok(Allocation { slice, address })
}

/// A grid-stride launch over `n` elements.
fn stride_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_536) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

fn config(grid: (u32, u32), block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid.0.max(1), grid.1.max(1), 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// Launches `kernel` with the given arguments; each argument is bound to a local first, because
/// the launch reads them through pointers.
macro_rules! launch {
    ($be:expr, $kernel:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        if !$be.failed() {
            let function = $be.function($kernel);
            let mut builder = $be.stream.launch_builder(function);
            $( let value = $arg; builder.arg(&value); )+
            // SAFETY: the arguments match the kernel's parameter list in kernels/*.cu, and every
            // address points into a live allocation of this backend (checked by `address`).
            if let Err(e) = unsafe { builder.launch($cfg) } {
                $be.fail(format!("cuda:{}: launching {}: {e:?}", $be.ordinal, $kernel));
            }
        }
    }};
}

impl CudaBackend {
    /// The backend on GPU `ordinal` computing in `precision`: creates a context and stream, and
    /// compiles (or loads from the PTX cache) every kernel module for the device's architecture.
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
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let mut functions = HashMap::new();
        for module in MODULES.iter().filter(|m| compute >= m.min_compute) {
            let ptx = nvrtc::ptx(module, arch)?;
            let loaded = context.load_module(Ptx::from_src(ptx)).map_err(driver_error(module.name))?;
            for &kernel in module.kernels {
                functions.insert(kernel, loaded.load_function(kernel).map_err(driver_error(kernel))?);
            }
        }
        Ok(CudaBackend {
            ordinal,
            device_name,
            precision,
            stream,
            blas,
            functions,
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

    fn function(&self, name: &'static str) -> &CudaFunction {
        self.functions.get(name).unwrap_or_else(|| panic!("kernel {name} is not in crates/cuda/src/kernels.rs"))
    }

    /// `len` zeroed elements. An allocation that does not fit is the backend's failure (see
    /// [`CudaBackend::fail`]): it gets a one-element stand-in, and no later op runs.
    fn allocate<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Allocation<T> {
        allocate(&self.stream, len).unwrap_or_else(|e| {
            let bytes = len * std::mem::size_of::<T>();
            self.fail(format!("cuda:{} ({}) cannot allocate {bytes} bytes ({} already held): {e:?}; lower budget.micro_batch or data.eval_batch", self.ordinal, self.device_name, self.allocated_bytes()));
            allocate(&self.stream, 1).unwrap_or_else(|e| panic!("cuda:{}: no memory left even for one element: {e:?}", self.ordinal))
        })
    }

    /// The address of `slot`'s allocation, first grown to at least `len` elements. A replaced
    /// allocation is freed in stream order, after the ops that used it.
    fn reuse<T: DeviceRepr + ValidAsZeroBits>(&self, slot: &mut Option<Allocation<T>>, len: usize) -> u64 {
        if slot.as_ref().is_none_or(|s| s.slice.len() < len) {
            *slot = Some(self.allocate(len));
        }
        slot.as_ref().map(|s| s.address).expect("allocated above")
    }

    /// Records the backend's first failure (an allocation that did not fit, a failed launch or
    /// copy). From then on every op is skipped, so the rank reaches the step's all-reduce
    /// quickly and tells the others, and `Backend::error` reports it, instead of a panic that
    /// leaves the other ranks waiting for a collective until the watchdog fires.
    fn fail(&self, what: String) {
        let _ = self.failure.set(what);
    }

    fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn buffer(&self, t: Tensor) -> &Buffer {
        let b = self.buffers.get(t.buffer as usize).and_then(Option::as_ref).expect("use of a freed buffer");
        assert!(t.offset + t.len <= b.len, "view {t:?} outside its buffer of {}", b.len);
        b
    }

    /// The device address of view `t`'s first element.
    fn address(&self, t: Tensor) -> u64 {
        let b = self.buffer(t);
        b.memory.address + (b.storage.bytes() * t.offset) as u64
    }

    /// View `t` as a kernel's `Tensor` operand: its address, tagged in the lowest bit when the
    /// elements are bf16 (kernels/common.cuh).
    fn operand(&self, t: Tensor) -> u64 {
        self.address(t) | (self.buffer(t).storage == Precision::Bf16) as u64
    }

    /// The address of view `t`, for an op whose kernels (or library) take f32 only.
    fn f32_address(&self, t: Tensor, op: &str) -> u64 {
        assert!(self.buffer(t).storage == Precision::Fp32, "{op} takes f32 buffers, and {t:?} holds bf16 activations (allocate it with alloc)");
        self.address(t)
    }

    /// Records a write into `t`'s buffer: a parameter buffer's bf16 copy no longer matches.
    fn written(&mut self, t: Tensor) {
        if let Some(copy) = self.buffers[t.buffer as usize].as_mut().and_then(|b| b.copy.as_mut()) {
            copy.stale = true;
        }
    }

    /// The bf16 copy of parameter buffer `id`, converted again first if a write made it stale.
    fn current_copy(&mut self, id: u32) -> u64 {
        let b = self.buffers[id as usize].as_ref().expect("use of a freed buffer");
        let (source, len) = (b.memory.address, b.len);
        let copy = b.copy.as_ref().expect("a buffer with a bf16 copy");
        let (target, stale) = (copy.memory.address, copy.stale);
        if stale {
            launch!(self, "convert", stride_config(len), target | 1, source, len as u64);
            self.buffers[id as usize].as_mut().and_then(|b| b.copy.as_mut()).expect("checked above").stale = false;
        }
        target
    }

    /// The bf16 form of GEMM operand `t` (under bf16): bf16 activations as they are, a parameter
    /// buffer's bf16 copy, or any other f32 view converted into the scratch of `slot` (0 for A,
    /// 1 for B) — the output gradient of a layer that writes the f32 residual stream, say.
    fn bf16_operand(&mut self, t: Tensor, slot: usize) -> u64 {
        let b = self.buffer(t);
        match (b.storage, b.copy.is_some()) {
            (Precision::Bf16, _) => self.address(t),
            (Precision::Fp32, true) => self.current_copy(t.buffer) + 2 * t.offset as u64,
            (Precision::Fp32, false) => {
                let source = self.address(t);
                let mut operand = self.gemm_operands[slot].take();
                let target = self.reuse(&mut operand, 2 * t.len);
                self.gemm_operands[slot] = operand;
                launch!(self, "convert", stride_config(t.len), target | 1, source, t.len as u64);
                target
            }
        }
    }

    /// A new buffer of `len` elements stored as `storage`, with a bf16 copy when `weights` and the
    /// GEMMs read bf16.
    fn new_buffer(&mut self, len: usize, storage: Precision, weights: bool) -> Tensor {
        let copy = (weights && self.precision == Precision::Bf16).then(|| WeightCopy { memory: self.allocate(2 * len), stale: true });
        let memory = self.allocate(storage.bytes() * len);
        self.buffers.push(Some(Buffer { memory, storage, len, copy }));
        Tensor { buffer: (self.buffers.len() - 1) as u32, offset: 0, len }
    }

    fn index_address(&self, t: Indices) -> u64 {
        let a = self.index_buffers[t.buffer as usize].as_ref().expect("use of freed indices");
        assert!(t.offset + t.len <= a.slice.len(), "indices {t:?} outside their buffer");
        a.address + 4 * t.offset as u64
    }

    /// Scratch of at least `len` f32 (reused across calls).
    fn scratch(&mut self, len: usize) -> u64 {
        let mut scratch = self.scratch.take();
        let address = self.reuse(&mut scratch, len);
        self.scratch = scratch;
        address
    }

    fn scratch_f64(&mut self, len: usize) -> u64 {
        let mut scratch = self.scratch_f64.take();
        let address = self.reuse(&mut scratch, len);
        self.scratch_f64 = scratch;
        address
    }

    /// Copies from `address` into `dst` and waits for the stream, so `dst` is ready to read.
    fn copy_out<T>(&self, dst: &mut [T], address: u64) {
        if self.failed() {
            return;
        }
        // SAFETY: the caller checked that `address` holds `dst.len()` elements.
        if let Err(e) = unsafe { driver::memcpy_dtoh_async(dst, address, self.stream.cu_stream()) } {
            self.fail(format!("download from cuda:{}: {e:?}", self.ordinal));
        }
        self.wait();
    }

    /// Copies `src` to `address`. The call returns once the driver has staged the pageable host
    /// memory, so `src` may change afterwards without waiting for the stream.
    fn copy_in<T>(&self, address: u64, src: &[T]) {
        if self.failed() {
            return;
        }
        // SAFETY: the caller checked that `address` holds `src.len()` elements.
        if let Err(e) = unsafe { driver::memcpy_htod_async(address, src, self.stream.cu_stream()) } {
            self.fail(format!("upload to cuda:{}: {e:?}", self.ordinal));
        }
    }

    fn wait(&self) {
        if let Err(e) = self.stream.synchronize() {
            self.fail(format!("cuda:{}: {e:?}", self.ordinal));
        }
    }

    /// `dst[j] += Σ_rows src[r, j]` through fixed row chunks (deterministic).
    fn column_sums(&mut self, dst: u64, src: u64, rows: usize, width: usize) {
        let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
        let partials = self.scratch(chunks * width);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, "column_partials", config((cols, chunks as u32), THREADS), partials, src, rows as i32, width as i32, CHUNK_ROWS as i32);
        launch!(self, "column_sum_accumulate", config((cols, 1), THREADS), dst, partials, chunks as i32, width as u64, width as i32);
    }

    /// Σ x (or Σ x² with `square`) over `n` values, into `out` (one f64 on the device).
    fn device_sum(&mut self, out: u64, x: u64, n: usize, square: bool) {
        let partials = self.scratch_f64(SUM_BLOCKS as usize + 1) + 8;
        launch!(self, "sum_partials", config((SUM_BLOCKS, 1), THREADS), partials, x, n as u64, square as i32);
        launch!(self, "sum_f64", config((1, 1), THREADS), out, partials, SUM_BLOCKS as i32);
    }

    /// The optimiser's group table, uploaded once and reused while the groups stay the same.
    fn groups(&mut self, groups: &[ParamGroup]) -> (u64, i32) {
        let stale = self.group_table.as_ref().is_none_or(|(g, _)| g != groups);
        if stale {
            let mut sorted = groups.to_vec();
            sorted.sort_by_key(|g| g.offset);
            // kernels/optim.cu's `Group`: u64 offset, u64 len, f32 lr_scale, i32 decay (24 bytes).
            let mut bytes = Vec::with_capacity(24 * sorted.len());
            for g in &sorted {
                bytes.extend((g.offset as u64).to_le_bytes());
                bytes.extend((g.len as u64).to_le_bytes());
                bytes.extend(g.lr_scale.to_le_bytes());
                bytes.extend((g.weight_decay as i32).to_le_bytes());
            }
            let table = self.allocate::<u8>(bytes.len());
            self.copy_in(table.address, &bytes);
            self.group_table = Some((groups.to_vec(), table));
        }
        let (_, table) = self.group_table.as_ref().expect("group table");
        (table.address, groups.len() as i32)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda:{} ({}, {})", self.ordinal, self.device_name, self.precision)
    }

    fn synchronize(&mut self) {
        self.wait();
    }

    fn device_address(&self, t: Tensor) -> Option<u64> {
        Some(self.f32_address(t, "a collective"))
    }

    fn alloc(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, Precision::Fp32, false)
    }

    fn alloc_activations(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, self.precision, false)
    }

    fn alloc_weights(&mut self, len: usize) -> Tensor {
        self.new_buffer(len, Precision::Fp32, true)
    }

    fn alloc_indices(&mut self, len: usize) -> Indices {
        let allocation = self.allocate(len);
        self.index_buffers.push(Some(allocation));
        Indices { buffer: (self.index_buffers.len() - 1) as u32, offset: 0, len }
    }

    /// The allocation is released in stream order, after the ops already enqueued on it.
    fn free(&mut self, whole: Tensor) {
        self.buffers[whole.buffer as usize] = None;
    }

    fn free_indices(&mut self, whole: Indices) {
        self.index_buffers[whole.buffer as usize] = None;
    }

    fn error(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    fn allocated_bytes(&self) -> usize {
        let buffers: usize = self.buffers.iter().flatten().map(|b| b.memory.slice.len() + b.copy.as_ref().map_or(0, |c| c.memory.slice.len())).sum();
        let indices: usize = self.index_buffers.iter().flatten().map(|a| 4 * a.slice.len()).sum();
        buffers + indices
    }

    fn upload(&mut self, dst: Tensor, src: &[f32]) {
        assert_eq!(src.len(), dst.len, "upload of {} values into a view of {}", src.len(), dst.len);
        match self.buffer(dst).storage {
            Precision::Fp32 => self.copy_in(self.address(dst), src),
            Precision::Bf16 => self.copy_in(self.address(dst), &src.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>()),
        }
        self.written(dst);
    }

    fn upload_indices(&mut self, dst: Indices, src: &[i32]) {
        assert_eq!(src.len(), dst.len, "upload of {} indices into a view of {}", src.len(), dst.len);
        self.copy_in(self.index_address(dst), src);
    }

    fn download(&mut self, src: Tensor, dst: &mut [f32]) {
        assert_eq!(src.len, dst.len(), "download of a view of {} into {} values", src.len, dst.len());
        match self.buffer(src).storage {
            Precision::Fp32 => self.copy_out(dst, self.address(src)),
            Precision::Bf16 => {
                let mut staged = vec![bf16::ZERO; src.len];
                self.copy_out(&mut staged, self.address(src));
                dst.iter_mut().zip(&staged).for_each(|(d, s)| *d = s.to_f32());
            }
        }
    }

    fn fill(&mut self, dst: Tensor, value: f32) {
        let operand = self.operand(dst);
        launch!(self, "fill", stride_config(dst.len), operand, value, dst.len as u64);
        self.written(dst);
    }

    fn copy(&mut self, dst: Tensor, src: Tensor) {
        assert_eq!(dst.len, src.len, "copy between views of {} and {}", dst.len, src.len);
        let storage = self.buffer(dst).storage;
        if storage == self.buffer(src).storage {
            let (d, s) = (self.address(dst), self.address(src));
            // SAFETY: both views hold `len` elements of `storage`.
            if !self.failed() {
                if let Err(e) = unsafe { driver::memcpy_dtod_async(d, s, storage.bytes() * dst.len, self.stream.cu_stream()) } {
                    self.fail(format!("cuda:{}: copy: {e:?}", self.ordinal));
                }
            }
        } else {
            let (d, s) = (self.operand(dst), self.operand(src));
            launch!(self, "convert", stride_config(dst.len), d, s, dst.len as u64);
        }
        self.written(dst);
    }

    /// A bias is written into C first (added, when accumulating) and the product adds onto it,
    /// so a bf16 output is rounded once, as a fused epilogue would.
    fn gemm(&mut self, g: &Gemm) {
        assert!(self.buffer(g.c).copy.is_none(), "a GEMM writes into a parameter buffer");
        if let Some(bias) = g.bias {
            assert!(g.batch == 1 || g.stride_c == g.m * g.n, "a bias needs contiguous batches");
            let (c, bias, n) = (self.operand(g.c), self.operand(bias), g.batch * g.m * g.n);
            launch!(self, "broadcast_rows", stride_config(n), c, bias, g.n as u64, n as u64, g.accumulate as i32);
        }
        let beta = if g.accumulate || g.bias.is_some() { 1.0f32 } else { 0.0 };
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
        let op = |t: bool| if t { blas_sys::cublasOperation_t::CUBLAS_OP_T } else { blas_sys::cublasOperation_t::CUBLAS_OP_N };
        let lda = if g.trans_a { g.m } else { g.k };
        let ldb = if g.trans_b { g.k } else { g.n };
        let (a, b, a_type, c_type) = match self.precision {
            Precision::Fp32 => (self.f32_address(g.a, "an fp32 GEMM"), self.f32_address(g.b, "an fp32 GEMM"), CUDA_R_32F, CUDA_R_32F),
            Precision::Bf16 => {
                let c_type = match self.buffer(g.c).storage {
                    Precision::Fp32 => CUDA_R_32F,
                    Precision::Bf16 => CUDA_R_16BF,
                };
                (self.bf16_operand(g.a, 0), self.bf16_operand(g.b, 1), CUDA_R_16BF, c_type)
            }
        };
        let c = self.address(g.c);
        if self.failed() {
            return;
        }
        // SAFETY: the views hold the operands (checked by `address`) in the types named; alpha and
        // beta are host f32 scalars (the compute type is fp32) read during the call.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *self.blas.handle(),
                op(g.trans_b),
                op(g.trans_a),
                g.n as i32,
                g.m as i32,
                g.k as i32,
                (&g.alpha as *const f32).cast(),
                b as *const c_void,
                a_type,
                ldb as i32,
                g.stride_b as i64,
                a as *const c_void,
                a_type,
                lda as i32,
                g.stride_a as i64,
                (&beta as *const f32).cast(),
                c as *mut c_void,
                c_type,
                g.n as i32,
                g.stride_c as i64,
                g.batch as i32,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .unwrap_or_else(|e| self.fail(format!("cuda:{}: cuBLAS GEMM {}x{}x{} ({:?}): {e:?}", self.ordinal, g.m, g.n, g.k, self.precision)));
    }

    fn bias_backward(&mut self, dbias: Tensor, dout: Tensor, rows: usize, cols: usize) {
        let (d, s) = (self.f32_address(dbias, "bias_backward"), self.operand(dout));
        self.column_sums(d, s, rows, cols);
    }

    fn axpy(&mut self, dst: Tensor, alpha: f32, src: Tensor) {
        let (d, s) = (self.operand(dst), self.operand(src));
        launch!(self, "axpy", stride_config(dst.len), d, alpha, s, dst.len as u64);
        self.written(dst);
    }

    fn add_rows(&mut self, x: Tensor, table: Tensor, rows: usize, width: usize) {
        let (xa, ta) = (self.operand(x), self.operand(table));
        launch!(self, "broadcast_rows", stride_config(x.len), xa, ta, (rows * width) as u64, x.len as u64, 1i32);
        self.written(x);
    }

    fn gelu_forward(&mut self, out: Tensor, inp: Tensor) {
        let (o, i) = (self.operand(out), self.operand(inp));
        launch!(self, "gelu_forward", stride_config(out.len), o, i, out.len as u64);
    }

    fn gelu_backward(&mut self, dinp: Tensor, inp: Tensor, dout: Tensor) {
        let (di, i, d) = (self.operand(dinp), self.operand(inp), self.operand(dout));
        launch!(self, "gelu_backward", stride_config(dinp.len), di, i, d, dinp.len as u64);
    }

    fn layernorm_forward(&mut self, out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, rows: usize, width: usize, eps: f32) {
        let op = "layernorm_forward";
        let args = (self.operand(out), self.f32_address(mean, op), self.f32_address(rstd, op), self.operand(inp), self.f32_address(weight, op), self.f32_address(bias, op));
        let blocks = (rows as u32).div_ceil(WARP_ROWS);
        launch!(self, "layernorm_forward", config((blocks, 1), THREADS), args.0, args.1, args.2, args.3, args.4, args.5, rows as i32, width as i32, eps);
    }

    fn layernorm_backward(&mut self, dinp: Tensor, dweight: Tensor, dbias: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, rows: usize, width: usize) {
        let op = "layernorm_backward";
        let (di, dw, db) = (self.operand(dinp), self.f32_address(dweight, op), self.f32_address(dbias, op));
        let (d, x, w, m, r) = (self.operand(dout), self.operand(inp), self.f32_address(weight, op), self.f32_address(mean, op), self.f32_address(rstd, op));
        let blocks = (rows as u32).div_ceil(WARP_ROWS);
        launch!(self, "layernorm_backward_input", config((blocks, 1), THREADS), di, d, x, w, m, r, rows as i32, width as i32);
        let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
        let partials = self.scratch(chunks * 2 * width);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, "layernorm_param_partials", config((cols, chunks as u32), THREADS), partials, d, x, m, r, rows as i32, width as i32, CHUNK_ROWS as i32);
        let stride = (2 * width) as u64;
        launch!(self, "column_sum_accumulate", config((cols, 1), THREADS), dw, partials, chunks as i32, stride, width as i32);
        launch!(self, "column_sum_accumulate", config((cols, 1), THREADS), db, partials + 4 * width as u64, chunks as i32, stride, width as i32);
    }

    /// The log-sum-exp of every (batch, head, query) row, then the backward's row sums.
    fn attention_saved_len(&self, s: AttentionShape) -> usize {
        2 * s.batch * s.heads * s.tokens
    }

    fn attention_forward(&mut self, out: Tensor, saved: Tensor, qkv: Tensor, s: AttentionShape) {
        let (o, lse, x) = (self.operand(out), self.f32_address(saved, "attention_forward"), self.operand(qkv));
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let (b, t, h) = (s.batch as i32, s.tokens as i32, s.heads as i32);
        match self.tensor_core_attention(s) {
            Some([forward, _, _]) => launch!(self, forward, attention_grid(s, TC_ROWS, TC_THREADS), o, lse, x, t, h, scale),
            None => {
                let [forward, _, _] = attention_kernels(s.head_dim);
                launch!(self, forward, attention_grid(s, TILE, TILE), o, lse, x, b, t, h, scale);
            }
        }
    }

    fn attention_backward(&mut self, dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, saved: Tensor, s: AttentionShape) {
        let rows = s.batch * s.heads * s.tokens;
        let (dx, d, x, o) = (self.operand(dqkv), self.operand(dout), self.operand(qkv), self.operand(out));
        let lse = self.f32_address(saved, "attention_backward");
        let delta = lse + 4 * rows as u64;
        let (b, t, h, hd) = (s.batch as i32, s.tokens as i32, s.heads as i32, s.head_dim as i32);
        launch!(self, "attention_delta", stride_config(rows), delta, d, o, b, t, h, hd);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        match self.tensor_core_attention(s) {
            Some([_, dq, dkv]) => {
                let grid = attention_grid(s, TC_ROWS, TC_THREADS);
                launch!(self, dq, grid, dx, d, x, lse, delta, t, h, scale);
                launch!(self, dkv, grid, dx, d, x, lse, delta, t, h, scale);
            }
            None => {
                let [_, dq, dkv] = attention_kernels(s.head_dim);
                let grid = attention_grid(s, TILE, TILE);
                launch!(self, dq, grid, dx, d, x, lse, delta, b, t, h, scale);
                launch!(self, dkv, grid, dx, d, x, lse, delta, b, t, h, scale);
            }
        }
    }

    fn gather_rows(&mut self, out: Tensor, inp: Tensor, idx: Indices, fill: Tensor, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        let (o, i, ix, f) = (self.operand(out), self.operand(inp), self.index_address(idx), self.operand(fill));
        let n = samples * out_rows * width;
        launch!(self, "gather_rows", stride_config(n), o, i, ix, f, samples as i32, in_rows as i32, out_rows as i32, width as i32);
    }

    fn gather_rows_backward(&mut self, dinp: Tensor, dfill: Tensor, dout: Tensor, idx: Indices, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        let (di, df, d, ix) = (self.operand(dinp), self.operand(dfill), self.operand(dout), self.index_address(idx));
        let n = samples * out_rows * width;
        launch!(self, "gather_rows_backward_input", stride_config(n), di, d, ix, samples as i32, in_rows as i32, out_rows as i32, width as i32);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, "gather_rows_backward_fill", config((cols, 1), THREADS), df, d, ix, (samples * out_rows) as u64, width as i32);
    }

    fn mean_pool_forward(&mut self, out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        let (o, i) = (self.operand(out), self.operand(inp));
        launch!(self, "mean_pool_forward", stride_config(samples * width), o, i, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn mean_pool_backward(&mut self, dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        let (di, d) = (self.operand(dinp), self.operand(dout));
        launch!(self, "mean_pool_backward", stride_config(samples * rows * width), di, d, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn patchify(&mut self, patches: Tensor, images: Tensor, s: PatchShape, order: PatchOrder) {
        self.patch_copy(patches, images, s, order, true);
    }

    fn unpatchify(&mut self, images: Tensor, patches: Tensor, s: PatchShape, order: PatchOrder) {
        self.patch_copy(patches, images, s, order, false);
    }

    fn cross_entropy(&mut self, losses: Tensor, dlogits: Tensor, logits: Tensor, targets: Tensor, class_mask: Tensor, rows: usize, classes: usize, grad_scale: f32) {
        let a = |t| self.f32_address(t, "cross_entropy");
        let (l, dz, z, t, m) = (a(losses), a(dlogits), a(logits), a(targets), a(class_mask));
        launch!(self, "cross_entropy", config((rows as u32, 1), 128), l, dz, z, t, m, rows as i32, classes as i32, grad_scale);
    }

    fn mae_loss(&mut self, loss: Tensor, dpred: Tensor, pred: Tensor, target: Tensor, mask: Tensor, samples: usize, patches: usize, patch_len: usize, grad_scale: f32) {
        let a = |t| self.f32_address(t, "mae_loss");
        let (l, dp, p, t, m) = (a(loss), a(dpred), a(pred), a(target), a(mask));
        // f64 scratch: [masked count | sum partials (SUM_BLOCKS) | per-patch losses].
        let base = self.scratch_f64(1 + SUM_BLOCKS as usize + samples * patches);
        self.device_sum(base, m, samples * patches, false);
        let partial = base + 8 * (1 + SUM_BLOCKS as u64);
        let blocks = (samples * patches) as u32;
        let (s, n, len) = (samples as i32, patches as i32, patch_len as i32);
        launch!(self, "mae_patch_loss", config((blocks, 1), 128), partial, dp, p, t, m, base, s, n, len, grad_scale);
        launch!(self, "mae_total", config((1, 1), THREADS), l, partial, base, blocks as i32);
    }

    fn sum_squares(&mut self, grads: Tensor) -> f32 {
        let out = self.scratch_f64(1 + SUM_BLOCKS as usize);
        let g = self.f32_address(grads, "sum_squares");
        self.device_sum(out, g, grads.len, true);
        let mut value = [0.0f64];
        self.copy_out(&mut value, out);
        value[0] as f32
    }

    fn adamw(&mut self, params: Tensor, grads: Tensor, m: Tensor, v: Tensor, groups: &[ParamGroup], hp: &AdamW) {
        let a = |t| self.f32_address(t, "adamw");
        let (p, g, ma, va) = (a(params), a(grads), a(m), a(v));
        // The bf16 copy (if any) is brought up to date first, then kept so by the update itself.
        let copy = match self.buffer(params).copy.is_some() {
            true => (self.current_copy(params.buffer) + 2 * params.offset as u64) | 1,
            false => 0u64,
        };
        let (table, count) = self.groups(groups);
        let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
        let bc2_sqrt = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt();
        let n = params.len;
        launch!(self, "adamw", stride_config(n), p, copy, g, ma, va, table, count, n as u64, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.grad_scale, bc1, bc2_sqrt);
    }

    fn sgd(&mut self, params: Tensor, grads: Tensor, momentum: Tensor, groups: &[ParamGroup], hp: &Sgd) {
        let a = |t| self.f32_address(t, "sgd");
        let (p, g, b) = (a(params), a(grads), a(momentum));
        let (table, count) = self.groups(groups);
        let n = params.len;
        launch!(self, "sgd", stride_config(n), p, g, b, table, count, n as u64, hp.lr, hp.momentum, hp.nesterov as i32, hp.weight_decay, hp.grad_scale);
        self.written(params);
    }
}

impl CudaBackend {
    /// Under bf16, the tensor-core attention kernels (forward, dQ, dK/dV) for this head dim, where
    /// kernels/attention_tc.cu has them.
    fn tensor_core_attention(&self, s: AttentionShape) -> Option<[&'static str; 3]> {
        if self.precision != Precision::Bf16 {
            return None;
        }
        match s.head_dim {
            16 => Some(["attention_tc_forward_d16", "attention_tc_backward_dq_d16", "attention_tc_backward_dkv_d16"]),
            32 => Some(["attention_tc_forward_d32", "attention_tc_backward_dq_d32", "attention_tc_backward_dkv_d32"]),
            64 => Some(["attention_tc_forward_d64", "attention_tc_backward_dq_d64", "attention_tc_backward_dkv_d64"]),
            _ => None,
        }
    }
}

/// One block per `rows` tokens of each (batch, head), of `threads` threads.
fn attention_grid(s: AttentionShape, rows: u32, threads: u32) -> LaunchConfig {
    config(((s.tokens as u32).div_ceil(rows), (s.batch * s.heads) as u32), threads)
}

/// The SIMT attention kernels (forward, dQ, dK/dV) compiled for `head_dim`.
fn attention_kernels(head_dim: usize) -> [&'static str; 3] {
    match head_dim {
        8 => ["attention_forward_d8", "attention_backward_dq_d8", "attention_backward_dkv_d8"],
        16 => ["attention_forward_d16", "attention_backward_dq_d16", "attention_backward_dkv_d16"],
        32 => ["attention_forward_d32", "attention_backward_dq_d32", "attention_backward_dkv_d32"],
        64 => ["attention_forward_d64", "attention_backward_dq_d64", "attention_backward_dkv_d64"],
        d => panic!("the CUDA attention kernels take head dim 8, 16, 32 or 64, not {d} (add an instantiation in kernels/attention.cu)"),
    }
}

impl CudaBackend {
    fn patch_copy(&mut self, patches: Tensor, images: Tensor, s: PatchShape, order: PatchOrder, to_patches: bool) {
        let (p, i) = (self.f32_address(patches, "patchify"), self.f32_address(images, "patchify"));
        let order = match order {
            PatchOrder::ChannelRowCol => 0i32,
            PatchOrder::RowColChannel => 1,
        };
        let n = s.batch * s.channels * s.image_size * s.image_size;
        let (b, c, size, patch) = (s.batch as i32, s.channels as i32, s.image_size as i32, s.patch as i32);
        launch!(self, "patchify", stride_config(n), p, i, b, c, size, patch, order, to_patches as i32);
    }
}
