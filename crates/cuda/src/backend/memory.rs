//! Device memory: allocations (an allocation that does not fit is the backend's failure, not a
//! panic), views and their addresses, the bf16 copies of parameter buffers and their
//! staleness, reused scratch, and host copies in and out.

use super::launch::stride_config;
use super::{Allocation, Buffer, CudaBackend, WeightCopy};
use crate::kernels as k;
use cudarc::driver::{result as driver, CudaStream, DevicePtr, DeviceRepr, PushKernelArg, ValidAsZeroBits};
use rekindle_tensor::{Backend, Indices, Precision, Tensor};
use std::sync::Arc;

fn allocate<T: DeviceRepr + ValidAsZeroBits>(stream: &Arc<CudaStream>, len: usize) -> Result<Allocation<T>, cudarc::driver::DriverError> {
    let slice = stream.alloc_zeros::<T>(len.max(1))?;
    let address = slice.device_ptr(stream).0;
    Ok(Allocation { slice, address, len })
}

impl CudaBackend {
    /// `len` zeroed elements. An allocation that does not fit is the backend's failure (see
    /// [`CudaBackend::fail`]): it gets a one-element stand-in, and no later op runs.
    pub(super) fn allocate<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Allocation<T> {
        allocate(&self.stream, len).unwrap_or_else(|e| {
            let bytes = len * std::mem::size_of::<T>();
            self.fail(format!("cuda:{} ({}) cannot allocate {bytes} bytes ({} already held): {e:?}; lower budget.micro_batch or data.eval_batch", self.ordinal, self.device_name, self.allocated_bytes()));
            let stand_in = allocate(&self.stream, 1).unwrap_or_else(|e| panic!("cuda:{}: no memory left even for one element: {e:?}", self.ordinal));
            Allocation { len, ..stand_in }
        })
    }

    /// The address of `slot`'s allocation, first grown to at least `len` elements. A replaced
    /// allocation is freed in stream order, after the ops that used it.
    pub(super) fn reuse<T: DeviceRepr + ValidAsZeroBits>(&self, slot: &mut Option<Allocation<T>>, len: usize) -> u64 {
        if slot.as_ref().is_none_or(|s| s.len < len) {
            *slot = Some(self.allocate(len));
        }
        slot.as_ref().map(|s| s.address).expect("allocated above")
    }

    pub(super) fn buffer(&self, t: Tensor) -> &Buffer {
        let b = self.buffers.get(t.buffer as usize).and_then(Option::as_ref).expect("use of a freed buffer");
        assert!(t.offset + t.len <= b.len, "view {t:?} outside its buffer of {}", b.len);
        b
    }

    /// The device address of view `t`'s first element.
    pub(super) fn address(&self, t: Tensor) -> u64 {
        let b = self.buffer(t);
        b.memory.address + (b.storage.bytes() * t.offset) as u64
    }

    /// View `t` as a kernel's `Tensor` operand: its address, tagged in the lowest bit when the
    /// elements are bf16 (kernels/common.cuh).
    pub(super) fn operand(&self, t: Tensor) -> u64 {
        self.address(t) | (self.buffer(t).storage == Precision::Bf16) as u64
    }

    /// The address of view `t`, for an op whose kernels (or library) take f32 only.
    pub(super) fn f32_address(&self, t: Tensor, op: &str) -> u64 {
        assert!(self.buffer(t).storage == Precision::Fp32, "{op} takes f32 buffers, and {t:?} holds bf16 activations (allocate it with alloc)");
        self.address(t)
    }

    /// Records a write into `t`'s buffer: a parameter buffer's bf16 copy no longer matches.
    pub(super) fn written(&mut self, t: Tensor) {
        if let Some(copy) = self.buffers[t.buffer as usize].as_mut().and_then(|b| b.copy.as_mut()) {
            copy.stale = true;
        }
    }

    /// The bf16 copy of parameter buffer `id`, converted again first if a write made it stale.
    pub(super) fn current_copy(&mut self, id: u32) -> u64 {
        let b = self.buffers[id as usize].as_ref().expect("use of a freed buffer");
        let (source, len) = (b.memory.address, b.len);
        let copy = b.copy.as_ref().expect("a buffer with a bf16 copy");
        let (target, stale) = (copy.memory.address, copy.stale);
        if stale {
            launch!(self, k::convert, stride_config(len), target | 1, source, len as u64);
            self.buffers[id as usize].as_mut().and_then(|b| b.copy.as_mut()).expect("checked above").stale = false;
        }
        target
    }

    /// The bf16 form of GEMM operand `t` (under bf16): bf16 activations as they are, a parameter
    /// buffer's bf16 copy, or any other f32 view converted into the scratch of `slot` (0 for A,
    /// 1 for B) — the output gradient of a layer that writes the f32 residual stream, say.
    pub(super) fn bf16_operand(&mut self, t: Tensor, slot: usize) -> u64 {
        let b = self.buffer(t);
        match (b.storage, b.copy.is_some()) {
            (Precision::Bf16, _) => self.address(t),
            (Precision::Fp32, true) => self.current_copy(t.buffer) + 2 * t.offset as u64,
            (Precision::Fp32, false) => {
                let source = self.address(t);
                let mut operand = self.gemm_operands[slot].take();
                let target = self.reuse(&mut operand, 2 * t.len);
                self.gemm_operands[slot] = operand;
                launch!(self, k::convert, stride_config(t.len), target | 1, source, t.len as u64);
                target
            }
        }
    }

    /// A new buffer of `len` elements stored as `storage`, with a bf16 copy when `weights` and the
    /// GEMMs read bf16.
    pub(super) fn new_buffer(&mut self, len: usize, storage: Precision, weights: bool) -> Tensor {
        let copy = (weights && self.precision == Precision::Bf16).then(|| WeightCopy { memory: self.allocate(2 * len), stale: true });
        let memory = self.allocate(storage.bytes() * len);
        self.buffers.push(Some(Buffer { memory, storage, len, copy }));
        Tensor { buffer: (self.buffers.len() - 1) as u32, offset: 0, len }
    }

    pub(super) fn index_address(&self, t: Indices) -> u64 {
        let a = self.index_buffers[t.buffer as usize].as_ref().expect("use of freed indices");
        assert!(t.offset + t.len <= a.len, "indices {t:?} outside their buffer");
        a.address + 4 * t.offset as u64
    }

    /// Scratch of at least `len` f32 (reused across calls).
    pub(super) fn scratch(&mut self, len: usize) -> u64 {
        let mut scratch = self.scratch.take();
        let address = self.reuse(&mut scratch, len);
        self.scratch = scratch;
        address
    }

    pub(super) fn scratch_f64(&mut self, len: usize) -> u64 {
        let mut scratch = self.scratch_f64.take();
        let address = self.reuse(&mut scratch, len);
        self.scratch_f64 = scratch;
        address
    }

    /// Copies from `address` into `dst` and waits for the stream, so `dst` is ready to read.
    pub(super) fn copy_out<T>(&self, dst: &mut [T], address: u64) {
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
    pub(super) fn copy_in<T>(&self, address: u64, src: &[T]) {
        if self.failed() {
            return;
        }
        // SAFETY: the caller checked that `address` holds `src.len()` elements.
        if let Err(e) = unsafe { driver::memcpy_htod_async(address, src, self.stream.cu_stream()) } {
            self.fail(format!("upload to cuda:{}: {e:?}", self.ordinal));
        }
    }

    pub(super) fn wait(&self) {
        if let Err(e) = self.stream.synchronize() {
            self.fail(format!("cuda:{}: {e:?}", self.ordinal));
        }
    }
}
