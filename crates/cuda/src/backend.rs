//! [`CudaBackend`]: the `Backend` trait on one GPU. Every buffer is a device allocation; a
//! `Tensor` view is the allocation's address plus an offset. Ops are enqueued on one stream and
//! run asynchronously; `download` and the ops returning host values synchronise.
//!
//! This first backend computes in fp32 throughout (fp64 for loss and norm reductions), exactly
//! the CPU backend's arithmetic, so one test body can hold both to 1e-5. GEMMs are cuBLAS SGEMM
//! in full fp32 (no TF32). bf16 activations with fp32 master weights build on it.

use crate::kernels::MODULES;
use crate::nvrtc;
use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::driver::{result as driver, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use cudarc::nvrtc::Ptx;
use rekindle_tensor::{AdamW, AttentionShape, Backend, Gemm, Indices, ParamGroup, PatchOrder, PatchShape, Sgd, Tensor};
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
/// Rows per block of the attention kernels (kernels/attention.cu's TILE).
const TILE: u32 = 64;

/// One allocation and its device address.
struct Allocation<T> {
    slice: CudaSlice<T>,
    address: u64,
}

pub struct CudaBackend {
    ordinal: usize,
    device_name: String,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    buffers: Vec<Option<Allocation<f32>>>,
    index_buffers: Vec<Option<Allocation<i32>>>,
    /// Reused scratch for partial sums (f32 and f64), grown on demand.
    scratch: Option<Allocation<f32>>,
    scratch_f64: Option<Allocation<f64>>,
    /// The optimiser's group table on the device, and the groups it was built from.
    group_table: Option<(Vec<ParamGroup>, Allocation<u8>)>,
    _context: Arc<CudaContext>,
}

fn allocate<T: DeviceRepr + ValidAsZeroBits>(stream: &Arc<CudaStream>, ordinal: usize, len: usize) -> Allocation<T> {
    let slice = stream.alloc_zeros::<T>(len.max(1)).unwrap_or_else(|e| panic!("allocating {len} elements on cuda:{ordinal}: {e:?}"));
    let address = slice.device_ptr(stream).0;
    Allocation { slice, address }
}

/// The address of `slot`'s allocation, first grown to at least `len` elements. A replaced
/// allocation is freed in stream order, after the ops that used it.
fn reuse<T: DeviceRepr + ValidAsZeroBits>(stream: &Arc<CudaStream>, ordinal: usize, slot: &mut Option<Allocation<T>>, len: usize) -> u64 {
    if slot.as_ref().is_none_or(|s| s.slice.len() < len) {
        *slot = Some(allocate(stream, ordinal, len));
    }
    slot.as_ref().map(|s| s.address).expect("allocated above")
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
        let function = $be.function($kernel);
        let mut builder = $be.stream.launch_builder(function);
        $( let value = $arg; builder.arg(&value); )+
        // SAFETY: the arguments match the kernel's parameter list in kernels/*.cu, and every
        // address points into a live allocation of this backend (checked by `address`).
        unsafe { builder.launch($cfg) }.unwrap_or_else(|e| panic!("launching {}: {e:?}", $kernel));
    }};
}

impl CudaBackend {
    /// The backend on GPU `ordinal`: creates a context and stream, and compiles (or loads from the
    /// PTX cache) every kernel module for the device's architecture.
    pub fn new(ordinal: usize) -> Result<CudaBackend, CudaError> {
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
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let mut functions = HashMap::new();
        for module in MODULES {
            let ptx = nvrtc::ptx(module, arch)?;
            let loaded = context.load_module(Ptx::from_src(ptx)).map_err(driver_error(module.name))?;
            for &kernel in module.kernels {
                functions.insert(kernel, loaded.load_function(kernel).map_err(driver_error(kernel))?);
            }
        }
        let device_name = context.name().unwrap_or_else(|_| "unknown GPU".into());
        Ok(CudaBackend {
            ordinal,
            device_name,
            stream,
            blas,
            functions,
            buffers: Vec::new(),
            index_buffers: Vec::new(),
            scratch: None,
            scratch_f64: None,
            group_table: None,
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

    fn allocate<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Allocation<T> {
        allocate(&self.stream, self.ordinal, len)
    }

    /// The device address of view `t`.
    fn address(&self, t: Tensor) -> u64 {
        let a = self.buffers[t.buffer as usize].as_ref().expect("use of a freed buffer");
        assert!(t.offset + t.len <= a.slice.len(), "view {t:?} outside its buffer of {}", a.slice.len());
        a.address + 4 * t.offset as u64
    }

    fn index_address(&self, t: Indices) -> u64 {
        let a = self.index_buffers[t.buffer as usize].as_ref().expect("use of freed indices");
        assert!(t.offset + t.len <= a.slice.len(), "indices {t:?} outside their buffer");
        a.address + 4 * t.offset as u64
    }

    /// Scratch of at least `len` f32 (reused across calls).
    fn scratch(&mut self, len: usize) -> u64 {
        reuse(&self.stream, self.ordinal, &mut self.scratch, len)
    }

    fn scratch_f64(&mut self, len: usize) -> u64 {
        reuse(&self.stream, self.ordinal, &mut self.scratch_f64, len)
    }

    /// Copies from `address` into `dst` and waits for the stream, so `dst` is ready to read.
    fn copy_out<T>(&self, dst: &mut [T], address: u64) {
        // SAFETY: the caller checked that `address` holds `dst.len()` elements.
        unsafe { driver::memcpy_dtoh_async(dst, address, self.stream.cu_stream()) }.unwrap_or_else(|e| panic!("download from cuda:{}: {e:?}", self.ordinal));
        self.wait();
    }

    /// Copies `src` to `address`. The call returns once the driver has staged the pageable host
    /// memory, so `src` may change afterwards without waiting for the stream.
    fn copy_in<T>(&self, address: u64, src: &[T]) {
        // SAFETY: the caller checked that `address` holds `src.len()` elements.
        unsafe { driver::memcpy_htod_async(address, src, self.stream.cu_stream()) }.unwrap_or_else(|e| panic!("upload to cuda:{}: {e:?}", self.ordinal));
    }

    fn wait(&self) {
        self.stream.synchronize().unwrap_or_else(|e| panic!("cuda:{}: {e:?}", self.ordinal));
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
        format!("cuda:{} ({})", self.ordinal, self.device_name)
    }

    fn synchronize(&mut self) {
        self.wait();
    }

    fn device_address(&self, t: Tensor) -> Option<u64> {
        Some(self.address(t))
    }

    fn alloc(&mut self, len: usize) -> Tensor {
        let allocation = self.allocate(len);
        self.buffers.push(Some(allocation));
        Tensor { buffer: (self.buffers.len() - 1) as u32, offset: 0, len }
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

    fn upload(&mut self, dst: Tensor, src: &[f32]) {
        assert_eq!(src.len(), dst.len, "upload of {} values into a view of {}", src.len(), dst.len);
        self.copy_in(self.address(dst), src);
    }

    fn upload_indices(&mut self, dst: Indices, src: &[i32]) {
        assert_eq!(src.len(), dst.len, "upload of {} indices into a view of {}", src.len(), dst.len);
        self.copy_in(self.index_address(dst), src);
    }

    fn download(&mut self, src: Tensor, dst: &mut [f32]) {
        assert_eq!(src.len, dst.len(), "download of a view of {} into {} values", src.len, dst.len());
        self.copy_out(dst, self.address(src));
    }

    fn fill(&mut self, dst: Tensor, value: f32) {
        let address = self.address(dst);
        launch!(self, "fill", stride_config(dst.len), address, value, dst.len as u64);
    }

    fn copy(&mut self, dst: Tensor, src: Tensor) {
        assert_eq!(dst.len, src.len, "copy between views of {} and {}", dst.len, src.len);
        let (d, s) = (self.address(dst), self.address(src));
        // SAFETY: both views hold `len` floats.
        unsafe { driver::memcpy_dtod_async(d, s, 4 * dst.len, self.stream.cu_stream()) }.unwrap_or_else(|e| panic!("copy: {e:?}"));
    }

    fn gemm(&mut self, g: &Gemm) {
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
        let (a, b, c) = (self.address(g.a), self.address(g.b), self.address(g.c));
        let op = |t: bool| if t { blas_sys::cublasOperation_t::CUBLAS_OP_T } else { blas_sys::cublasOperation_t::CUBLAS_OP_N };
        let lda = if g.trans_a { g.m } else { g.k };
        let ldb = if g.trans_b { g.k } else { g.n };
        let beta = if g.accumulate { 1.0f32 } else { 0.0 };
        // SAFETY: the views hold the operands (checked by `address`); alpha and beta are host
        // scalars read during the call.
        unsafe {
            cudarc::cublas::result::sgemm_strided_batched(
                *self.blas.handle(),
                op(g.trans_b),
                op(g.trans_a),
                g.n as i32,
                g.m as i32,
                g.k as i32,
                &g.alpha,
                b as *const f32,
                ldb as i32,
                g.stride_b as i64,
                a as *const f32,
                lda as i32,
                g.stride_a as i64,
                &beta,
                c as *mut f32,
                g.n as i32,
                g.stride_c as i64,
                g.batch as i32,
            )
        }
        .unwrap_or_else(|e| panic!("cuBLAS SGEMM {}x{}x{}: {e:?}", g.m, g.n, g.k));
        if let Some(bias) = g.bias {
            assert!(g.batch == 1 || g.stride_c == g.m * g.n, "a bias needs contiguous batches");
            let (bias, n) = (self.address(bias), g.batch * g.m * g.n);
            launch!(self, "add_rows", stride_config(n), c, bias, g.n as u64, n as u64);
        }
    }

    fn bias_backward(&mut self, dbias: Tensor, dout: Tensor, rows: usize, cols: usize) {
        let (d, s) = (self.address(dbias), self.address(dout));
        self.column_sums(d, s, rows, cols);
    }

    fn axpy(&mut self, dst: Tensor, alpha: f32, src: Tensor) {
        let (d, s) = (self.address(dst), self.address(src));
        launch!(self, "axpy", stride_config(dst.len), d, alpha, s, dst.len as u64);
    }

    fn add_rows(&mut self, x: Tensor, table: Tensor, rows: usize, width: usize) {
        let (xa, ta) = (self.address(x), self.address(table));
        launch!(self, "add_rows", stride_config(x.len), xa, ta, (rows * width) as u64, x.len as u64);
    }

    fn gelu_forward(&mut self, out: Tensor, inp: Tensor) {
        let (o, i) = (self.address(out), self.address(inp));
        launch!(self, "gelu_forward", stride_config(out.len), o, i, out.len as u64);
    }

    fn gelu_backward(&mut self, dinp: Tensor, inp: Tensor, dout: Tensor) {
        let (di, i, d) = (self.address(dinp), self.address(inp), self.address(dout));
        launch!(self, "gelu_backward", stride_config(dinp.len), di, i, d, dinp.len as u64);
    }

    fn layernorm_forward(&mut self, out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, rows: usize, width: usize, eps: f32) {
        let args = (self.address(out), self.address(mean), self.address(rstd), self.address(inp), self.address(weight), self.address(bias));
        let blocks = (rows as u32).div_ceil(WARP_ROWS);
        launch!(self, "layernorm_forward", config((blocks, 1), THREADS), args.0, args.1, args.2, args.3, args.4, args.5, rows as i32, width as i32, eps);
    }

    fn layernorm_backward(&mut self, dinp: Tensor, dweight: Tensor, dbias: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, rows: usize, width: usize) {
        let (di, dw, db) = (self.address(dinp), self.address(dweight), self.address(dbias));
        let (d, x, w, m, r) = (self.address(dout), self.address(inp), self.address(weight), self.address(mean), self.address(rstd));
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
        let (o, lse, x) = (self.address(out), self.address(saved), self.address(qkv));
        let grid = ((s.tokens as u32).div_ceil(TILE), (s.batch * s.heads) as u32);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let (b, t, h) = (s.batch as i32, s.tokens as i32, s.heads as i32);
        let [forward, _, _] = attention_kernels(s.head_dim);
        launch!(self, forward, config(grid, TILE), o, lse, x, b, t, h, scale);
    }

    fn attention_backward(&mut self, dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, saved: Tensor, s: AttentionShape) {
        let rows = s.batch * s.heads * s.tokens;
        let (dx, d, x, o) = (self.address(dqkv), self.address(dout), self.address(qkv), self.address(out));
        let lse = self.address(saved);
        let delta = lse + 4 * rows as u64;
        let (b, t, h, hd) = (s.batch as i32, s.tokens as i32, s.heads as i32, s.head_dim as i32);
        launch!(self, "attention_delta", stride_config(rows), delta, d, o, b, t, h, hd);
        let grid = ((s.tokens as u32).div_ceil(TILE), (s.batch * s.heads) as u32);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let [_, dq, dkv] = attention_kernels(s.head_dim);
        launch!(self, dq, config(grid, TILE), dx, d, x, lse, delta, b, t, h, scale);
        launch!(self, dkv, config(grid, TILE), dx, d, x, lse, delta, b, t, h, scale);
    }

    fn gather_rows(&mut self, out: Tensor, inp: Tensor, idx: Indices, fill: Tensor, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        let (o, i, ix, f) = (self.address(out), self.address(inp), self.index_address(idx), self.address(fill));
        let n = samples * out_rows * width;
        launch!(self, "gather_rows", stride_config(n), o, i, ix, f, samples as i32, in_rows as i32, out_rows as i32, width as i32);
    }

    fn gather_rows_backward(&mut self, dinp: Tensor, dfill: Tensor, dout: Tensor, idx: Indices, samples: usize, in_rows: usize, out_rows: usize, width: usize) {
        let (di, df, d, ix) = (self.address(dinp), self.address(dfill), self.address(dout), self.index_address(idx));
        let n = samples * out_rows * width;
        launch!(self, "gather_rows_backward_input", stride_config(n), di, d, ix, samples as i32, in_rows as i32, out_rows as i32, width as i32);
        let cols = (width as u32).div_ceil(THREADS);
        launch!(self, "gather_rows_backward_fill", config((cols, 1), THREADS), df, d, ix, (samples * out_rows) as u64, width as i32);
    }

    fn mean_pool_forward(&mut self, out: Tensor, inp: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        let (o, i) = (self.address(out), self.address(inp));
        launch!(self, "mean_pool_forward", stride_config(samples * width), o, i, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn mean_pool_backward(&mut self, dinp: Tensor, dout: Tensor, samples: usize, rows: usize, width: usize, skip: usize) {
        let (di, d) = (self.address(dinp), self.address(dout));
        launch!(self, "mean_pool_backward", stride_config(samples * rows * width), di, d, samples as i32, rows as i32, width as i32, skip as i32);
    }

    fn patchify(&mut self, patches: Tensor, images: Tensor, s: PatchShape, order: PatchOrder) {
        self.patch_copy(patches, images, s, order, true);
    }

    fn unpatchify(&mut self, images: Tensor, patches: Tensor, s: PatchShape, order: PatchOrder) {
        self.patch_copy(patches, images, s, order, false);
    }

    fn cross_entropy(&mut self, losses: Tensor, dlogits: Tensor, logits: Tensor, targets: Tensor, class_mask: Tensor, rows: usize, classes: usize, grad_scale: f32) {
        let (l, dz, z, t, m) = (self.address(losses), self.address(dlogits), self.address(logits), self.address(targets), self.address(class_mask));
        launch!(self, "cross_entropy", config((rows as u32, 1), 128), l, dz, z, t, m, rows as i32, classes as i32, grad_scale);
    }

    fn mae_loss(&mut self, loss: Tensor, dpred: Tensor, pred: Tensor, target: Tensor, mask: Tensor, samples: usize, patches: usize, patch_len: usize, grad_scale: f32) {
        let (l, dp, p, t, m) = (self.address(loss), self.address(dpred), self.address(pred), self.address(target), self.address(mask));
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
        let g = self.address(grads);
        self.device_sum(out, g, grads.len, true);
        let mut value = [0.0f64];
        self.copy_out(&mut value, out);
        value[0] as f32
    }

    fn adamw(&mut self, params: Tensor, grads: Tensor, m: Tensor, v: Tensor, groups: &[ParamGroup], hp: &AdamW) {
        let (p, g, ma, va) = (self.address(params), self.address(grads), self.address(m), self.address(v));
        let (table, count) = self.groups(groups);
        let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
        let bc2_sqrt = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt();
        let n = params.len;
        launch!(self, "adamw", stride_config(n), p, g, ma, va, table, count, n as u64, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.grad_scale, bc1, bc2_sqrt);
    }

    fn sgd(&mut self, params: Tensor, grads: Tensor, momentum: Tensor, groups: &[ParamGroup], hp: &Sgd) {
        let (p, g, b) = (self.address(params), self.address(grads), self.address(momentum));
        let (table, count) = self.groups(groups);
        let n = params.len;
        launch!(self, "sgd", stride_config(n), p, g, b, table, count, n as u64, hp.lr, hp.momentum, hp.nesterov as i32, hp.weight_decay, hp.grad_scale);
    }
}

/// The attention kernels (forward, dQ, dK/dV) compiled for `head_dim`.
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
        let (p, i) = (self.address(patches), self.address(images));
        let order = match order {
            PatchOrder::ChannelRowCol => 0i32,
            PatchOrder::RowColChannel => 1,
        };
        let n = s.batch * s.channels * s.image_size * s.image_size;
        let (b, c, size, patch) = (s.batch as i32, s.channels as i32, s.image_size as i32, s.patch as i32);
        launch!(self, "patchify", stride_config(n), p, i, b, c, size, patch, order, to_patches as i32);
    }
}
