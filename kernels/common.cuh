// Prepended to every kernel source before NVRTC compiles it: tensor operands of either precision,
// warp and block reductions, and grid-stride loops. Arithmetic is fp32 with fp32 (or fp64 where a
// CPU reference does) accumulation whatever the storage; `rekindle-cuda` checks every kernel
// against the CPU backend.

#define FULL_MASK 0xffffffffu
#define NEG_INF (__int_as_float(0xff800000))
typedef unsigned long long u64;

// A tensor operand: a device address whose lowest bit says the elements are bf16 (set) or f32
// (clear). Allocations are 256-byte aligned and views start on whole elements, so the bit is free.
// Under `--precision bf16` activations are bf16 while the residual stream, statistics and
// gradients of parameters stay f32; with the precision in the operand, one kernel serves every mix
// the model produces, and the branch is the same for every thread. Values are computed in f32.
typedef u64 Tensor;

__device__ __forceinline__ bool is_bf16(Tensor t) { return t & 1; }

// bf16 is the upper half of an f32, so widening is a shift.
__device__ __forceinline__ float bf16_to_f32(unsigned short h) { return __uint_as_float((unsigned)h << 16); }

// Round to nearest even, as PyTorch's and cuBLAS's conversions do; NaN stays NaN.
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float ld(Tensor t, u64 i) {
    return is_bf16(t) ? bf16_to_f32(((const unsigned short*)(t - 1))[i]) : ((const float*)t)[i];
}

__device__ __forceinline__ void st(Tensor t, u64 i, float v) {
    if (is_bf16(t)) ((unsigned short*)(t - 1))[i] = f32_to_bf16(v);
    else ((float*)t)[i] = v;
}

struct Add {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. `scratch` holds 32 values of shared memory; `identity` fills the missing warps.
template <typename T, typename Op> __device__ __forceinline__ T block_reduce(T v, T* scratch, Op op, T identity) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : identity;
    return warp_reduce(v, op);
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, Add()); }
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce(v, scratch, Max(), NEG_INF); }
__device__ __forceinline__ double block_sum_f64(double v, double* scratch) { return block_reduce(v, scratch, Add(), 0.0); }

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n); i += (u64)gridDim.x * blockDim.x)
