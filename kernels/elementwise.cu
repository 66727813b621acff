// Elementwise ops: fill, axpy, position-table adds, exact-erf GELU and its gradient.

extern "C" __global__ void fill(float* dst, float value, u64 n) {
    GRID_STRIDE(i, n) dst[i] = value;
}

// dst += alpha * src
extern "C" __global__ void axpy(float* dst, float alpha, const float* src, u64 n) {
    GRID_STRIDE(i, n) dst[i] += alpha * src[i];
}

// x[s, r, :] += table[r, :] for x [samples, rows, width] (n = samples * rows * width).
extern "C" __global__ void add_rows(float* x, const float* table, u64 table_len, u64 n) {
    GRID_STRIDE(i, n) x[i] += table[i % table_len];
}

extern "C" __global__ void gelu_forward(float* out, const float* inp, u64 n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

// dinp = dout * (Phi(x) + x * phi(x))
extern "C" __global__ void gelu_backward(float* dinp, const float* inp, const float* dout, u64 n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
}
