//! Launching kernels: grid shapes, the `launch!` macro (which skips every launch once the backend
//! has failed), the backend's failure record, and the choice of attention kernel per head dim.

use super::{CudaBackend, LoadedKernel, THREADS};
use crate::kernels::{self as k, Kernel};
use cudarc::driver::LaunchConfig;
use rekindle_tensor::{AttentionShape, Precision};

/// A grid-stride launch over `n` elements.
pub(super) fn stride_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_536) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

pub(super) fn config(grid: (u32, u32), block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid.0.max(1), grid.1.max(1), 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// Launches `kernel` with the given arguments; each argument is bound to a local first, because
/// the launch reads them through pointers.
macro_rules! launch {
    ($be:expr, $kernel:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        if !$be.failed() {
            let loaded = $be.loaded($kernel);
            let mut builder = $be.stream.launch_builder(&loaded.function);
            let (mut sizes, mut count) = ([0usize; crate::params::MAX_ARGUMENTS], 0);
            $( let value = $arg; sizes[count] = std::mem::size_of_val(&value); count += 1; builder.arg(&value); )+
            match crate::params::check_arguments($kernel.0, &loaded.params, &sizes[..count]) {
                Err(e) => $be.fail(format!("cuda:{}: {e}", $be.ordinal)),
                // SAFETY: the argument sizes match the kernel's PTX parameter list (checked
                // above), and every address points into a live allocation of this backend
                // (checked by `address`).
                Ok(()) => {
                    if let Err(e) = unsafe { builder.launch($cfg) } {
                        $be.fail(format!("cuda:{}: launching {}: {e:?}", $be.ordinal, $kernel.0));
                    }
                }
            }
        }
    }};
}

impl CudaBackend {
    pub(super) fn loaded(&self, kernel: Kernel) -> &LoadedKernel {
        // Every `Kernel` is in `MODULES`, and `new` loads every module this device can run.
        self.kernels.get(&kernel).unwrap_or_else(|| panic!("kernel {} needs a newer GPU (its module's min_compute)", kernel.0))
    }

    /// Records the backend's first failure (an allocation that did not fit, a failed launch or
    /// copy). From then on every op is skipped, so the rank reaches the step's all-reduce
    /// quickly and tells the others, and `Backend::error` reports it, instead of a panic that
    /// leaves the other ranks waiting for a collective until the watchdog fires.
    pub(super) fn fail(&self, what: String) {
        let _ = self.failure.set(what);
    }

    pub(super) fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Under bf16, the tensor-core attention kernels (forward, dQ, dK/dV) for this head dim, where
    /// kernels/attention_tc.cu has them.
    pub(super) fn tensor_core_attention(&self, s: AttentionShape) -> Option<[Kernel; 3]> {
        if self.precision != Precision::Bf16 {
            return None;
        }
        match s.head_dim {
            16 => Some([k::attention_tc_forward_d16, k::attention_tc_backward_dq_d16, k::attention_tc_backward_dkv_d16]),
            32 => Some([k::attention_tc_forward_d32, k::attention_tc_backward_dq_d32, k::attention_tc_backward_dkv_d32]),
            64 => Some([k::attention_tc_forward_d64, k::attention_tc_backward_dq_d64, k::attention_tc_backward_dkv_d64]),
            _ => None,
        }
    }
}

/// One block per `rows` tokens of each (batch, head), of `threads` threads.
pub(super) fn attention_grid(s: AttentionShape, rows: u32, threads: u32) -> LaunchConfig {
    config(((s.tokens as u32).div_ceil(rows), (s.batch * s.heads) as u32), threads)
}

/// The SIMT attention kernels (forward, dQ, dK/dV) compiled for `head_dim`.
pub(super) fn attention_kernels(head_dim: usize) -> [Kernel; 3] {
    match head_dim {
        8 => [k::attention_forward_d8, k::attention_backward_dq_d8, k::attention_backward_dkv_d8],
        16 => [k::attention_forward_d16, k::attention_backward_dq_d16, k::attention_backward_dkv_d16],
        32 => [k::attention_forward_d32, k::attention_backward_dq_d32, k::attention_backward_dkv_d32],
        64 => [k::attention_forward_d64, k::attention_backward_dq_d64, k::attention_backward_dkv_d64],
        d => panic!("the CUDA attention kernels take head dim 8, 16, 32 or 64, not {d} (add an instantiation in kernels/attention.cu)"),
    }
}
