// Elementwise ops: fill, precision-converting copy, axpy, row-table broadcasts (biases, position
// tables), exact-erf GELU and its gradient. Every operand may be f32 or bf16 (`Tensor`).

extern "C" __global__ void fill(Tensor dst, float value, u64 n) {
    GRID_STRIDE(i, n) st(dst, i, value);
}

// dst = src, between buffers of different precisions (same precision is a memcpy), and the
// refresh of a parameter buffer's bf16 copy.
extern "C" __global__ void convert(Tensor dst, Tensor src, u64 n) {
    GRID_STRIDE(i, n) st(dst, i, ld(src, i));
}

// dst += alpha * src
extern "C" __global__ void axpy(Tensor dst, float alpha, Tensor src, u64 n) {
    GRID_STRIDE(i, n) st(dst, i, ld(dst, i) + alpha * ld(src, i));
}

// x[s, r, :] (+)= table[r, :] for x [samples, rows, width] (n = samples * rows * width): position
// tables (accumulate) and a GEMM's bias, written into C before the product adds onto it.
extern "C" __global__ void broadcast_rows(Tensor x, Tensor table, u64 table_len, u64 n, int accumulate) {
    GRID_STRIDE(i, n) st(x, i, (accumulate ? ld(x, i) : 0.0f) + ld(table, i % table_len));
}

extern "C" __global__ void gelu_forward(Tensor out, Tensor inp, u64 n) {
    GRID_STRIDE(i, n) {
        float x = ld(inp, i);
        st(out, i, 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
    }
}

// dinp = dout * (Phi(x) + x * phi(x))
extern "C" __global__ void gelu_backward(Tensor dinp, Tensor inp, Tensor dout, u64 n) {
    GRID_STRIDE(i, n) {
        float x = ld(inp, i);
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        st(dinp, i, ld(dout, i) * (cdf + x * pdf));
    }
}
