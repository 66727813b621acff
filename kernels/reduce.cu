// Deterministic reductions: column sums in fixed row chunks, chunk partials summed in order, and
// sums and sums of squares (the global gradient norm, MAE's masked-patch count) in fixed blocks.

// partials[c, j] = sum over rows of chunk c of x[r, j] (grid: column blocks x chunks); x is f32 or
// bf16 (a bias gradient's output gradient).
extern "C" __global__ void column_partials(float* partials, Tensor x, int rows, int width, int chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
    if (j >= width) return;
    int first = c * chunk, last = min(rows, first + chunk);
    float s = 0.0f;
    for (int r = first; r < last; r++) s += ld(x, (u64)r * width + j);
    partials[(u64)c * width + j] = s;
}

// dst[j] += sum over c of partials[c * stride + j], in chunk order.
extern "C" __global__ void column_sum_accumulate(float* dst, const float* partials, int chunks, u64 stride, int width) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    float s = 0.0f;
    for (int c = 0; c < chunks; c++) s += partials[(u64)c * stride + j];
    dst[j] += s;
}

// partials[block] = this block's grid-stride share of sum(x) or, with `square`, of sum(x * x), in
// fp64. With one block, partials[0] is the whole sum.
extern "C" __global__ void sum_partials(double* partials, const float* x, u64 n, int square) {
    __shared__ double scratch[32];
    double s = 0.0;
    GRID_STRIDE(i, n) s += square ? (double)x[i] * (double)x[i] : (double)x[i];
    s = block_sum_f64(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// out[0] = sum of partials[0..count] (one block).
extern "C" __global__ void sum_f64(double* out, const double* partials, int count) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
    s = block_sum_f64(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}
