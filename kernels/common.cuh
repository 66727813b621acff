// Prepended to every kernel source before NVRTC compiles it: warp and block reductions, and
// grid-stride loops. Everything runs in fp32 with fp32 (or fp64 where a CPU reference does)
// accumulation; `rekindle-cuda` checks every kernel against the CPU backend.

#define FULL_MASK 0xffffffffu
#define NEG_INF (__int_as_float(0xff800000))
typedef unsigned long long u64;

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
