// Host twins of kernels/attention_tc.cu's PTX `wmma` wrappers (m16n16k16, bf16 inputs, f32
// accumulators), included there in place of the inline PTX when the file is compiled for the
// software GPU. The hardware's fragment layout is opaque to the kernel (it only zeroes
// accumulators directly), so any consistent layout serves: lane l holds elements 8l .. 8l + 7 of
// the 16 x 16 tile in row-major order, two bf16 per `unsigned` (low half first) for A and B.
// Every operation is warp-synchronous, as `.sync.aligned` demands: all 32 lanes must reach it.
// The product sums k in order in f32; the tensor cores' own order and rounding are not modelled.

__device__ __forceinline__ unsigned short wmma_twin_bf16_at(const unsigned short* p, int ld, int row, int col) { return p[row * ld + col]; }

// Fills `f` from the tile where element (row, col) of the logical 16 x 16 operand is `at(row, col)`.
template <typename At> __device__ __forceinline__ void wmma_twin_load(FragAB& f, At at, const char* what) {
    ::sim::warp_exchange(0xffffffffu, nullptr, 0, what);
    unsigned lane = ::sim::lane();
    for (int j = 0; j < 4; j++) {
        int e = 8 * lane + 2 * j;
        unsigned lo = at(e / 16, e % 16), hi = at((e + 1) / 16, (e + 1) % 16);
        f.x[j] = lo | (hi << 16);
    }
}

__device__ __forceinline__ void load_a(FragAB& f, const unsigned short* p, int ld) {
    wmma_twin_load(f, [&](int r, int c) { return wmma_twin_bf16_at(p, ld, r, c); }, "wmma.load.a");
}
// B[k][n] stored column-major: at p[n * ld + k].
__device__ __forceinline__ void load_b_transposed(FragAB& f, const unsigned short* p, int ld) {
    wmma_twin_load(f, [&](int k, int n) { return wmma_twin_bf16_at(p, ld, n, k); }, "wmma.load.b.col");
}
__device__ __forceinline__ void load_b(FragAB& f, const unsigned short* p, int ld) {
    wmma_twin_load(f, [&](int k, int n) { return wmma_twin_bf16_at(p, ld, k, n); }, "wmma.load.b.row");
}

__device__ __forceinline__ void store_c(float* p, const FragC& c, int ld) {
    ::sim::warp_exchange(0xffffffffu, nullptr, 0, "wmma.store.d");
    unsigned lane = ::sim::lane();
    for (int j = 0; j < 8; j++) {
        int e = 8 * lane + j;
        p[(e / 16) * ld + e % 16] = c.x[j];
    }
}

// c += a * b over the whole warp: every lane contributes its fragments of A and B and computes
// its own eight elements of C.
__device__ __forceinline__ void wmma_twin_mma(FragC& c, const FragAB& a, const FragAB& b) {
    struct Pair {
        FragAB a, b;
    } mine{a, b};
    const unsigned char* all = ::sim::warp_exchange(0xffffffffu, &mine, sizeof(Pair), "wmma.mma");
    auto element = [](const FragAB& f, int slot) {
        unsigned word = f.x[slot / 2];
        return __uint_as_float((slot % 2 ? word >> 16 : word & 0xffffu) << 16);
    };
    // This lane's outputs are row lane / 2, columns 8 * (lane % 2) .. + 7: it reads that row of A
    // (lanes 2 * row and 2 * row + 1) and those columns of B (lane 2k + lane % 2 for each k).
    unsigned lane = ::sim::lane(), row = lane / 2, half = lane % 2;
    float a_row[16], b_cols[16][8];
    for (int l = 0; l < 2; l++) {
        Pair p;
        memcpy(&p, all + (2 * row + l) * ::sim::kExchangeStride, sizeof(Pair));
        for (int j = 0; j < 8; j++) a_row[8 * l + j] = element(p.a, j);
    }
    for (int k = 0; k < 16; k++) {
        Pair p;
        memcpy(&p, all + (2 * k + half) * ::sim::kExchangeStride, sizeof(Pair));
        for (int j = 0; j < 8; j++) b_cols[k][j] = element(p.b, j);
    }
    for (int j = 0; j < 8; j++) {
        float sum = 0.0f;
        for (int k = 0; k < 16; k++) sum += a_row[k] * b_cols[k][j];
        c.x[j] += sum;
    }
}

// The row/col layout of B only matters to the load; the product is the same.
__device__ __forceinline__ void mma_t(FragC& c, const FragAB& a, const FragAB& b) { wmma_twin_mma(c, a, b); }
__device__ __forceinline__ void mma(FragC& c, const FragAB& a, const FragAB& b) { wmma_twin_mma(c, a, b); }
