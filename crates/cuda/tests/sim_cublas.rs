//! The software GPU's cublasGemmStridedBatchedEx against an independent column-major BLAS
//! (OpenBLAS's cblas_sgemm with CblasColMajor): every transpose pair, odd shapes, padded leading
//! dimensions, alpha and beta (beta = 0 must not read C, which holds NaN here), batches with
//! gaps, in fp32 and in bf16 (inputs rounded to bf16 first, output f32 or bf16). The project's
//! own GEMM is not the oracle. Needs OpenBLAS (libopenblas-dev) to link. On a machine with a
//! real GPU this checks real cuBLAS instead.

use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, DevicePtr, DevicePtrMut};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ffi::c_void;

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(layout: i32, ta: i32, tb: i32, m: i32, n: i32, k: i32, alpha: f32, a: *const f32, lda: i32, b: *const f32, ldb: i32, beta: f32, c: *mut f32, ldc: i32);
}
const COL_MAJOR: i32 = 102;
const fn cblas_trans(t: bool) -> i32 {
    if t {
        112
    } else {
        111
    }
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    pad: usize,
    batch: usize,
    alpha: f32,
    beta: f32,
}

/// Rounds to bf16 (nearest even) and back.
fn bf(v: f32) -> f32 {
    bf16::from_f32(v).to_f32()
}

fn check(blas: &CudaBlas, stream: &std::sync::Arc<cudarc::driver::CudaStream>, rng: &mut ChaCha8Rng, c: &Case, bf16_inputs: bool, bf16_output: bool) {
    let (rows_a, cols_a) = if c.ta { (c.k, c.m) } else { (c.m, c.k) };
    let (rows_b, cols_b) = if c.tb { (c.n, c.k) } else { (c.k, c.n) };
    let (lda, ldb, ldc) = (rows_a + c.pad, rows_b + c.pad, c.m + c.pad);
    let (sa, sb, sc) = (lda * cols_a + 3, ldb * cols_b + 5, ldc * c.n + 7);
    let round = |v: f32| if bf16_inputs { bf(v) } else { v };
    let a: Vec<f32> = (0..c.batch * sa).map(|_| round(rng.random_range(-1.0f32..1.0))).collect();
    let b: Vec<f32> = (0..c.batch * sb).map(|_| round(rng.random_range(-1.0f32..1.0))).collect();
    let c0: Vec<f32> = (0..c.batch * sc).map(|_| if c.beta == 0.0 { f32::NAN } else { rng.random_range(-1.0f32..1.0) }).collect();
    // The reference: OpenBLAS per batch, in f32 on the (rounded) inputs.
    let mut want = c0.clone();
    for p in 0..c.batch {
        if c.beta == 0.0 {
            want[p * sc..p * sc + ldc * c.n].iter_mut().for_each(|v| *v = 0.0);
        }
        // SAFETY: the slices hold the column-major operands with these leading dimensions.
        unsafe {
            cblas_sgemm(COL_MAJOR, cblas_trans(c.ta), cblas_trans(c.tb), c.m as i32, c.n as i32, c.k as i32, c.alpha, a[p * sa..].as_ptr(), lda as i32, b[p * sb..].as_ptr(), ldb as i32, c.beta, want[p * sc..].as_mut_ptr(), ldc as i32)
        };
    }
    let to_device = |v: &[f32], as_bf16: bool| -> cudarc::driver::CudaSlice<u8> {
        let bytes: Vec<u8> = if as_bf16 { v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect() } else { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        stream.clone_htod(&bytes).unwrap()
    };
    let (da, db, mut dc) = (to_device(&a, bf16_inputs), to_device(&b, bf16_inputs), to_device(&c0, bf16_output));
    let (in_type, out_type) = (if bf16_inputs { CUDA_R_16BF } else { CUDA_R_32F }, if bf16_output { CUDA_R_16BF } else { CUDA_R_32F });
    let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
    {
        let (pa, _ra) = da.device_ptr(&stream);
        let (pb, _rb) = db.device_ptr(&stream);
        let (pc, _rc) = dc.device_ptr_mut(&stream);
        // SAFETY: the buffers hold batch x stride elements of the named types.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *blas.handle(),
                op(c.ta),
                op(c.tb),
                c.m as i32,
                c.n as i32,
                c.k as i32,
                (&c.alpha as *const f32).cast(),
                pa as *const c_void,
                in_type,
                lda as i32,
                sa as i64,
                pb as *const c_void,
                in_type,
                ldb as i32,
                sb as i64,
                (&c.beta as *const f32).cast(),
                pc as *mut c_void,
                out_type,
                ldc as i32,
                sc as i64,
                c.batch as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .unwrap();
    }
    let raw = stream.clone_dtoh(&dc).unwrap();
    let got: Vec<f32> = if bf16_output { raw.chunks_exact(2).map(|h| bf16::from_le_bytes([h[0], h[1]]).to_f32()).collect() } else { raw.chunks_exact(4).map(|w| f32::from_le_bytes(w.try_into().unwrap())).collect() };
    let tolerance = if bf16_output { 8e-3 } else { 1e-5 };
    for p in 0..c.batch {
        for j in 0..c.n {
            for i in 0..ldc {
                let at = p * sc + j * ldc + i;
                let (g, w) = (got[at], want[at]);
                if i >= c.m {
                    // Padding rows of C are never written.
                    let kept = if bf16_output { bf(c0[at]) } else { c0[at] };
                    assert_eq!(g.to_bits(), kept.to_bits(), "padding written at {at}");
                    continue;
                }
                let scale = c.k as f32 * c.alpha.abs() + c.beta.abs() + 1.0;
                assert!((g - w).abs() <= tolerance * scale, "m {} n {} k {} ta {} tb {} batch {p} ({i},{j}): {g} vs OpenBLAS {w}", c.m, c.n, c.k, c.ta, c.tb);
            }
        }
    }
}

#[test]
fn the_software_gpus_gemm_agrees_with_openblas() {
    rekindle_gpu_sim::install();
    let ctx = match CudaContext::new(0) {
        Ok(ctx) => ctx,
        Err(e) => return rekindle_gpu_sim::skip(&format!("no CUDA device: {e:?}")),
    };
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 48, 9)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (pad, batch, alpha, beta) in [(0, 1, 1.0, 0.0), (3, 3, 0.75, 0.5), (1, 2, -1.5, 1.0)] {
                let case = Case { m, n, k, ta, tb, pad, batch, alpha, beta };
                check(&blas, &stream, &mut rng, &case, false, false);
                check(&blas, &stream, &mut rng, &case, true, false);
                check(&blas, &stream, &mut rng, &case, true, true);
            }
        }
    }
}

#[test]
fn type_combinations_rekindle_does_not_use_are_refused() {
    if rekindle_gpu_sim::install() == rekindle_gpu_sim::Device::Installed {
        return; // real cuBLAS supports more
    }
    std::env::set_var("REKINDLE_SIM_QUIET", "1");
    let ctx = CudaContext::new(0).unwrap();
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone()).unwrap();
    let (a, mut c) = (stream.alloc_zeros::<f32>(16).unwrap(), stream.alloc_zeros::<f32>(16).unwrap());
    let (one, zero) = (1.0f32, 0.0f32);
    let (pa, _ra) = a.device_ptr(&stream);
    let (pc, _rc) = c.device_ptr_mut(&stream);
    // f32 inputs with a bf16 output: not a combination rekindle uses.
    // SAFETY: refused before any memory is touched.
    let e = unsafe {
        cudarc::cublas::result::gemm_strided_batched_ex(
            *blas.handle(), CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, (&one as *const f32).cast(), pa as *const c_void, CUDA_R_32F, 4, 16, pa as *const c_void, CUDA_R_32F, 4, 16,
            (&zero as *const f32).cast(), pc as *mut c_void, CUDA_R_16BF, 4, 16, 1, cublasComputeType_t::CUBLAS_COMPUTE_32F, cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
        )
    }
    .unwrap_err();
    assert!(format!("{e:?}").contains("NOT_SUPPORTED"), "{e:?}");
}
