// Fused multi-head attention on the tensor cores (bf16 products, fp32 accumulation and softmax),
// forward and backward, for head dim D = 16, 32 or 64: the kernels of `--precision bf16`. Same
// layout, saved log-sum-exp and backward split as attention.cu (whose SIMT kernels serve fp32):
// scores never reach global memory.
//
// A block is 4 warps and owns 64 rows (queries, or keys in the dK/dV kernel), 16 per warp; it
// streams the other side through shared memory in tiles of 64 rows. Products are warp-wide
// 16x16x16 tensor-core MMAs (PTX `wmma`, so no headers are needed and fragment layouts stay
// opaque). Each product is written to the warp's fp32 scratch in shared memory; there two lanes
// own a row, one half of its columns each, for the softmax and the elementwise steps, and write
// the bf16 operand of the next product. Rows past T are zero in the tiles and never written.
//
// Grid: (ceil(T / 64), B * H); block: 128 threads.

#define TC_ROWS 64
#define TC_WARPS 4
// Row strides of the shared tiles, padded against bank conflicts: bf16 tiles (multiple of 8
// elements) and fp32 scratch (multiple of 4), as wmma.load/store require.
#define LD_TILE (64 + 8)
#define LD_SCRATCH (64 + 4)

struct FragAB {
    unsigned x[4];
};
struct FragC {
    float x[8];
};

__device__ __forceinline__ void frag_zero(FragC& c) {
    for (int i = 0; i < 8; i++) c.x[i] = 0.0f;
}

#ifdef __CUDA_ARCH__
// A 16x16 bf16 tile at `p` (row stride `ld` elements): as A (row-major), or as B stored
// column-major (B[k][n] at p[n * ld + k], i.e. the transpose of a row-major tile) or row-major.
__device__ __forceinline__ void load_a(FragAB& f, const unsigned short* p, int ld) {
    asm volatile("wmma.load.a.sync.aligned.row.m16n16k16.bf16 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(f.x[0]), "=r"(f.x[1]), "=r"(f.x[2]), "=r"(f.x[3])
                 : "l"(p), "r"(ld)
                 : "memory");
}
__device__ __forceinline__ void load_b_transposed(FragAB& f, const unsigned short* p, int ld) {
    asm volatile("wmma.load.b.sync.aligned.col.m16n16k16.bf16 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(f.x[0]), "=r"(f.x[1]), "=r"(f.x[2]), "=r"(f.x[3])
                 : "l"(p), "r"(ld)
                 : "memory");
}
__device__ __forceinline__ void load_b(FragAB& f, const unsigned short* p, int ld) {
    asm volatile("wmma.load.b.sync.aligned.row.m16n16k16.bf16 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(f.x[0]), "=r"(f.x[1]), "=r"(f.x[2]), "=r"(f.x[3])
                 : "l"(p), "r"(ld)
                 : "memory");
}

// The 16x16 fp32 accumulator to `p` (row stride `ld` elements).
__device__ __forceinline__ void store_c(float* p, const FragC& c, int ld) {
    asm volatile("wmma.store.d.sync.aligned.row.m16n16k16.f32 [%0], {%1, %2, %3, %4, %5, %6, %7, %8}, %9;"
                 :
                 : "l"(p), "f"(c.x[0]), "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]), "f"(c.x[4]), "f"(c.x[5]), "f"(c.x[6]),
                   "f"(c.x[7]), "r"(ld)
                 : "memory");
}

// c += a * b, with b loaded column-major (`mma_t`, b is a transposed tile) or row-major (`mma`).
#define WMMA_MMA(name, blayout)                                                                                        \
    __device__ __forceinline__ void name(FragC& c, const FragAB& a, const FragAB& b) {                                 \
        asm volatile("wmma.mma.sync.aligned.row." blayout ".m16n16k16.f32.bf16.bf16.f32 "                              \
                     "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, {%12, %13, %14, %15}, "                    \
                     "{%0, %1, %2, %3, %4, %5, %6, %7};"                                                               \
                     : "+f"(c.x[0]), "+f"(c.x[1]), "+f"(c.x[2]), "+f"(c.x[3]), "+f"(c.x[4]), "+f"(c.x[5]),             \
                       "+f"(c.x[6]), "+f"(c.x[7])                                                                      \
                     : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]), "r"(b.x[2]),      \
                       "r"(b.x[3]));                                                                                   \
    }
WMMA_MMA(mma_t, "col")
WMMA_MMA(mma, "row")
#else
// The software GPU (crates/gpu-sim) compiles this file for the host: the same wrappers there.
#include "wmma_twin.h"
#endif

// Where this block is: its (batch, head), its first row, this thread's warp, and the scratch row
// and half-row its lane owns.
struct Place {
    int T, D, C, b, h, bh, first, warp, row, half;
    __device__ static Place here(int T, int H, int D) {
        int bh = blockIdx.y, lane = threadIdx.x & 31;
        return Place{T, D, H * D, bh / H, bh % H, bh, (int)blockIdx.x * TC_ROWS, (int)threadIdx.x >> 5, lane >> 1, lane & 1};
    }
    // Element d of part `part` (0 q, 1 k, 2 v) of token i in qkv, and of token i in out.
    __device__ u64 qkv_at(int part, int i, int d) const { return ((u64)b * T + i) * 3 * C + part * C + h * D + d; }
    __device__ u64 out_at(int i, int d) const { return ((u64)b * T + i) * C + h * D + d; }
    // This lane's token: the warp's 16 rows start at first + 16 * warp.
    __device__ int token() const { return first + 16 * warp + row; }
};

// Copies rows start..start+63 of `src` (column `col` .. col+D of each token's row, through the
// accessor `at(i, d)`) into the bf16 tile, zeros past T. All 128 threads take part.
template <int D, typename At>
__device__ __forceinline__ void load_tile(unsigned short* tile, Tensor src, int start, int T, At at) {
    for (int e = threadIdx.x; e < TC_ROWS * D; e += blockDim.x) {
        int r = e / D, d = e % D, i = start + r;
        tile[r * LD_TILE + d] = i < T ? f32_to_bf16(ld(src, at(i, d))) : (unsigned short)0;
    }
}

// The warp's 16 rows of a row tile as A fragments (D / 16 of them along the head dim).
template <int D>
__device__ __forceinline__ void load_rows(FragAB (&f)[D / 16], const unsigned short* tile, int warp) {
    for (int k = 0; k < D / 16; k++) load_a(f[k], tile + 16 * warp * LD_TILE + 16 * k, LD_TILE);
}

// scratch[16 x 64] = rows (16 x D, A fragments) times the transpose of the 64 x D `tile`.
template <int D>
__device__ __forceinline__ void rows_times_tile_t(float* scratch, const FragAB (&rows)[D / 16], const unsigned short* tile) {
    for (int n = 0; n < 4; n++) {
        FragC c;
        frag_zero(c);
        for (int k = 0; k < D / 16; k++) {
            FragAB b;
            load_b_transposed(b, tile + 16 * n * LD_TILE + 16 * k, LD_TILE);
            mma_t(c, rows[k], b);
        }
        store_c(scratch + 16 * n, c, LD_SCRATCH);
    }
}

// acc[j] += lhs (16 x 64 bf16, row stride LD_TILE) times columns 16j..16j+15 of the 64 x D `tile`.
template <int D>
__device__ __forceinline__ void accumulate_times_tile(FragC (&acc)[D / 16], const unsigned short* lhs, const unsigned short* tile) {
    for (int j = 0; j < D / 16; j++) {
        for (int k = 0; k < 4; k++) {
            FragAB a, b;
            load_a(a, lhs + 16 * k, LD_TILE);
            load_b(b, tile + 16 * k * LD_TILE + 16 * j, LD_TILE);
            mma(acc[j], a, b);
        }
    }
}

// Writes `scale` times the warp's accumulators (16 x D) to columns of token rows in `dst` through
// the scratch, rows past T skipped.
template <int D, typename At>
__device__ __forceinline__ void write_rows(Tensor dst, const FragC (&acc)[D / 16], float* scratch, Place s, float scale, At at) {
    for (int j = 0; j < D / 16; j++) store_c(scratch + 16 * j, acc[j], LD_SCRATCH);
    __syncwarp();
    int i = s.token();
    if (i < s.T)
        for (int c = 0; c < D / 2; c++) st(dst, at(i, s.half * (D / 2) + c), scale * scratch[s.row * LD_SCRATCH + s.half * (D / 2) + c]);
}

// The shared memory of one block: two 64-row bf16 tiles, the warps' fp32 scratch and bf16
// operands (45 KB, under the 48 KB of static shared memory).
struct Shared {
    unsigned short a[TC_ROWS * LD_TILE];
    unsigned short b[TC_ROWS * LD_TILE];
    float scratch[TC_WARPS][16 * LD_SCRATCH];
    unsigned short operand[TC_WARPS][16 * LD_TILE];
};

// Loads the key and value tile of tokens start..start+63 into sh.a and sh.b, and writes the
// warp's scores (its 16 query rows times the keys, unscaled) to its scratch. Returns this lane's
// half-row of scores.
template <int D>
__device__ __forceinline__ const float* scores_against_keys(Shared& sh, const FragAB (&q)[D / 16], Tensor qkv, Place s, int start) {
    __syncthreads();
    load_tile<D>(sh.a, qkv, start, s.T, [&](int i, int d) { return s.qkv_at(1, i, d); });
    load_tile<D>(sh.b, qkv, start, s.T, [&](int i, int d) { return s.qkv_at(2, i, d); });
    __syncthreads();
    float* scratch = sh.scratch[s.warp];
    rows_times_tile_t<D>(scratch, q, sh.a);
    __syncwarp();
    return scratch + s.row * LD_SCRATCH + 32 * s.half;
}

template <int D>
__device__ void attention_tc_forward_impl(Tensor out, float* lse, Tensor qkv, int T, int H, float scale) {
    __shared__ __align__(32) Shared sh;
    Place s = Place::here(T, H, D);
    float* scratch = sh.scratch[s.warp];
    unsigned short* p_tile = sh.operand[s.warp];
    FragAB q[D / 16];
    load_tile<D>(sh.a, qkv, s.first, T, [&](int i, int d) { return s.qkv_at(0, i, d); });
    __syncthreads();
    load_rows<D>(q, sh.a, s.warp);
    // Row state, the same in both lanes of a row: running max and sum; this lane's half of the
    // output row.
    float m = NEG_INF, l = 0.0f, o[D / 2];
    for (int c = 0; c < D / 2; c++) o[c] = 0.0f;
    for (int start = 0; start < T; start += TC_ROWS) {
        // Online softmax over this lane's 32 columns, combined with the other lane of the row.
        const float* srow = scores_against_keys<D>(sh, q, qkv, s, start);
        float tile_max = NEG_INF;
        for (int c = 0; c < 32; c++)
            if (start + 32 * s.half + c < T) tile_max = fmaxf(tile_max, srow[c] * scale);
        tile_max = fmaxf(tile_max, __shfl_xor_sync(FULL_MASK, tile_max, 1));
        float m_new = fmaxf(m, tile_max), correction = expf(m - m_new), sum = 0.0f;
        unsigned short* prow = p_tile + s.row * LD_TILE + 32 * s.half;
        for (int c = 0; c < 32; c++) {
            float p = start + 32 * s.half + c < T ? expf(srow[c] * scale - m_new) : 0.0f;
            sum += p;
            prow[c] = f32_to_bf16(p);
        }
        sum += __shfl_xor_sync(FULL_MASK, sum, 1);
        l = l * correction + sum;
        m = m_new;
        __syncwarp();
        // P·V into the scratch (the scores are consumed), then added to the rescaled output.
        FragC pv[D / 16];
        for (int j = 0; j < D / 16; j++) frag_zero(pv[j]);
        accumulate_times_tile<D>(pv, p_tile, sh.b);
        for (int j = 0; j < D / 16; j++) store_c(scratch + 16 * j, pv[j], LD_SCRATCH);
        __syncwarp();
        for (int c = 0; c < D / 2; c++) o[c] = o[c] * correction + scratch[s.row * LD_SCRATCH + s.half * (D / 2) + c];
        __syncwarp();
    }
    int i = s.token();
    if (i >= T) return;
    float inv = 1.0f / l;
    for (int c = 0; c < D / 2; c++) st(out, s.out_at(i, s.half * (D / 2) + c), o[c] * inv);
    if (s.half == 0) lse[(u64)s.bh * T + i] = m + logf(l);
}

// dQ_i = scale * sum_j P_ij (dP_ij - delta_i) K_j, with P_ij = exp(scale q_i.k_j - lse_i) and
// dP_ij = dout_i . v_j; keys and values streamed.
template <int D>
__device__ void attention_tc_backward_dq_impl(Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta, int T, int H,
                                              float scale) {
    __shared__ __align__(32) Shared sh;
    Place s = Place::here(T, H, D);
    float* scratch = sh.scratch[s.warp];
    unsigned short* ds_tile = sh.operand[s.warp];
    FragAB q[D / 16], g[D / 16];
    load_tile<D>(sh.a, qkv, s.first, T, [&](int i, int d) { return s.qkv_at(0, i, d); });
    load_tile<D>(sh.b, dout, s.first, T, [&](int i, int d) { return s.out_at(i, d); });
    __syncthreads();
    load_rows<D>(q, sh.a, s.warp);
    load_rows<D>(g, sh.b, s.warp);
    int i = s.token();
    bool live = i < T;
    float row_lse = live ? lse[(u64)s.bh * T + i] : 0.0f, row_delta = live ? delta[(u64)s.bh * T + i] : 0.0f;
    FragC dq[D / 16];
    for (int j = 0; j < D / 16; j++) frag_zero(dq[j]);
    float p[32];
    for (int start = 0; start < T; start += TC_ROWS) {
        const float* row = scores_against_keys<D>(sh, q, qkv, s, start);
        for (int c = 0; c < 32; c++) p[c] = live && start + 32 * s.half + c < T ? expf(row[c] * scale - row_lse) : 0.0f;
        __syncwarp();
        rows_times_tile_t<D>(scratch, g, sh.b);
        __syncwarp();
        unsigned short* ds_row = ds_tile + s.row * LD_TILE + 32 * s.half;
        for (int c = 0; c < 32; c++) ds_row[c] = f32_to_bf16(p[c] * (row[c] - row_delta));
        __syncwarp();
        accumulate_times_tile<D>(dq, ds_tile, sh.a);
    }
    write_rows<D>(dqkv, dq, scratch, s, scale, [&](int i, int d) { return s.qkv_at(0, i, d); });
}

// dV_j = sum_i P_ij dout_i and dK_j = scale * sum_i P_ij (dP_ij - delta_i) q_i; this block owns 64
// keys, queries and output gradients streamed. The warp works on the transposes (keys as rows):
// S^T = K Q^T and dP^T = V dout^T.
template <int D>
__device__ void attention_tc_backward_dkv_impl(Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta, int T, int H,
                                               float scale) {
    __shared__ __align__(32) Shared sh;
    __shared__ float lses[TC_ROWS], deltas[TC_ROWS];
    Place s = Place::here(T, H, D);
    float* scratch = sh.scratch[s.warp];
    unsigned short* op_tile = sh.operand[s.warp];
    FragAB k[D / 16], v[D / 16];
    load_tile<D>(sh.a, qkv, s.first, T, [&](int i, int d) { return s.qkv_at(1, i, d); });
    load_tile<D>(sh.b, qkv, s.first, T, [&](int i, int d) { return s.qkv_at(2, i, d); });
    __syncthreads();
    load_rows<D>(k, sh.a, s.warp);
    load_rows<D>(v, sh.b, s.warp);
    FragC dk[D / 16], dv[D / 16];
    for (int j = 0; j < D / 16; j++) {
        frag_zero(dk[j]);
        frag_zero(dv[j]);
    }
    float p[32];
    for (int start = 0; start < T; start += TC_ROWS) {
        __syncthreads();
        load_tile<D>(sh.a, qkv, start, T, [&](int i, int d) { return s.qkv_at(0, i, d); });
        load_tile<D>(sh.b, dout, start, T, [&](int i, int d) { return s.out_at(i, d); });
        for (int r = threadIdx.x; r < TC_ROWS; r += blockDim.x) {
            int i = start + r;
            lses[r] = i < T ? lse[(u64)s.bh * T + i] : 0.0f;
            deltas[r] = i < T ? delta[(u64)s.bh * T + i] : 0.0f;
        }
        __syncthreads();
        // P^T, then dV += P^T dout.
        rows_times_tile_t<D>(scratch, k, sh.a);
        __syncwarp();
        const float* row = scratch + s.row * LD_SCRATCH + 32 * s.half;
        unsigned short* op_row = op_tile + s.row * LD_TILE + 32 * s.half;
        for (int c = 0; c < 32; c++) {
            int col = 32 * s.half + c;
            p[c] = start + col < T ? expf(row[c] * scale - lses[col]) : 0.0f;
            op_row[c] = f32_to_bf16(p[c]);
        }
        __syncwarp();
        accumulate_times_tile<D>(dv, op_tile, sh.b);
        // dP^T, then dS^T = P^T (dP^T - delta) and dK += dS^T q.
        rows_times_tile_t<D>(scratch, v, sh.b);
        __syncwarp();
        for (int c = 0; c < 32; c++) op_row[c] = f32_to_bf16(p[c] * (row[c] - deltas[32 * s.half + c]));
        __syncwarp();
        accumulate_times_tile<D>(dk, op_tile, sh.a);
    }
    write_rows<D>(dqkv, dk, scratch, s, scale, [&](int i, int d) { return s.qkv_at(1, i, d); });
    __syncwarp();
    write_rows<D>(dqkv, dv, scratch, s, 1.0f, [&](int i, int d) { return s.qkv_at(2, i, d); });
}

#define TC_ENTRY_POINTS(D)                                                                                             \
    extern "C" __global__ void __launch_bounds__(128) attention_tc_forward_d##D(Tensor out, float* lse, Tensor qkv,    \
                                                                                int T, int H, float scale) {           \
        attention_tc_forward_impl<D>(out, lse, qkv, T, H, scale);                                                      \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(128) attention_tc_backward_dq_d##D(                                   \
        Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta, int T, int H, float scale) {       \
        attention_tc_backward_dq_impl<D>(dqkv, dout, qkv, lse, delta, T, H, scale);                                    \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(128) attention_tc_backward_dkv_d##D(                                  \
        Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta, int T, int H, float scale) {       \
        attention_tc_backward_dkv_impl<D>(dqkv, dout, qkv, lse, delta, T, H, scale);                                   \
    }
TC_ENTRY_POINTS(16)
TC_ENTRY_POINTS(32)
TC_ENTRY_POINTS(64)
