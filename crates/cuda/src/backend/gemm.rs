//! GEMMs through cuBLAS: fp32 SGEMM, or bf16 × bf16 with fp32 accumulation under mixed
//! precision, row-major by swapping the operands of cuBLAS's column-major call.

use super::launch::stride_config;
use super::CudaBackend;
use crate::kernels as k;
use cudarc::driver::PushKernelArg;
use cudarc::cublas::sys as blas_sys;
use cudarc::cublas::sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
use rekindle_tensor::{Gemm, Precision, Tensor};
use std::ffi::c_void;

impl CudaBackend {
    /// A bias is written into C first (added, when accumulating) and the product adds onto it,
    /// so a bf16 output is rounded once, as a fused epilogue would.
    pub(super) fn cublas_gemm(&mut self, g: &Gemm) {
        assert!(self.buffer(g.c).copy.is_none(), "a GEMM writes into a parameter buffer");
        if let Some(bias) = g.bias {
            // Contiguous batches take one launch; batches with gaps between them one each, so the
            // gaps are left alone.
            let contiguous = g.batch == 1 || g.stride_c == g.m * g.n;
            let (launches, n) = if contiguous { (1, g.batch * g.m * g.n) } else { (g.batch, g.m * g.n) };
            let bias = self.operand(bias);
            for b in 0..launches {
                let c = self.operand(Tensor { offset: g.c.offset + b * g.stride_c, len: n, ..g.c });
                launch!(self, k::broadcast_rows, stride_config(n), c, bias, g.n as u64, n as u64, g.accumulate as i32);
            }
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
}
