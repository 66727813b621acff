// The CUDA C++ that kernels/*.cu use, for the host: build.rs compiles each kernel module as this
// header, common.cuh and the module's .cu, unchanged, into the software GPU. The thread and block
// indices read the scheduler's current thread; barriers and warp operations are the scheduler's.
// `__shared__` variables are `static thread_local`: the scheduler runs all threads of a block on
// one worker thread (as fibers) and one block at a time per worker, so each block sees its own.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <bit>
#include "runtime.h"

#define REKINDLE_GPU_SIM 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#if defined(REKINDLE_SIM_ASAN)
#define __shared__ static  // AddressSanitizer puts redzones around statics only; one worker runs
#else                      // every block then (sanitizer.h)
#define __shared__ static thread_local
#endif
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

#define threadIdx (::sim::here->thread)
#define blockIdx (::sim::here->block)
#define blockDim (::sim::here->block_dim)
#define gridDim (::sim::here->grid_dim)

struct float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

inline void __syncthreads() { ::sim::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::sim::syncwarp(mask); }

// Lane `lane ^ lane_mask` of each lane's value, within groups of `width` lanes.
template <typename T> inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    const unsigned char* all = ::sim::warp_exchange(mask, &value, sizeof(T), "__shfl_xor_sync");
    unsigned lane = ::sim::lane();
    unsigned source = lane ^ (unsigned)lane_mask;
    if ((source / width) != (lane / width)) source = lane;
    T out;
    memcpy(&out, all + source * ::sim::kExchangeStride, sizeof(T));
    return out;
}

inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return std::bit_cast<unsigned>(v); }

// CUDA's integer min and max overloads (the float ones are fminf and fmaxf).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
