// LayerNorm over the last axis: forward (one warp per row, two-pass mean and variance) and
// backward. The weight and bias gradients are column sums over rows; they are summed in fixed
// row chunks (`layernorm_param_partials`) and then in chunk order (`column_sum_accumulate` in
// reduce.cu), so results do not depend on scheduling. Inputs, outputs and their gradients may be
// f32 or bf16 (`Tensor`); statistics, weights and partials are f32.

extern "C" __global__ void layernorm_forward(Tensor out, float* mean, float* rstd, Tensor inp, const float* weight,
                                             const float* bias, int rows, int width, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    u64 base = (u64)row * width;
    float s = 0.0f;
    for (int j = lane; j < width; j += 32) s += ld(inp, base + j);
    float mu = warp_sum(s) / width;
    float v = 0.0f;
    for (int j = lane; j < width; j += 32) {
        float c = ld(inp, base + j) - mu;
        v += c * c;
    }
    float rs = 1.0f / sqrtf(warp_sum(v) / width + eps);
    for (int j = lane; j < width; j += 32) st(out, base + j, (ld(inp, base + j) - mu) * rs * weight[j] + bias[j]);
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// dinp += rstd * (g - mean(g) - n * mean(g * n)) with n = (x - mean) * rstd and g = dout * weight.
extern "C" __global__ void layernorm_backward_input(Tensor dinp, Tensor dout, Tensor inp, const float* weight,
                                                    const float* mean, const float* rstd, int rows, int width) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    u64 base = (u64)row * width;
    float mu = mean[row], rs = rstd[row];
    float sg = 0.0f, sgn = 0.0f;
    for (int j = lane; j < width; j += 32) {
        float g = ld(dout, base + j) * weight[j];
        sg += g;
        sgn += g * (ld(inp, base + j) - mu) * rs;
    }
    float mean_g = warp_sum(sg) / width, mean_gn = warp_sum(sgn) / width;
    for (int j = lane; j < width; j += 32) {
        float n = (ld(inp, base + j) - mu) * rs;
        st(dinp, base + j, ld(dinp, base + j) + rs * (ld(dout, base + j) * weight[j] - mean_g - n * mean_gn));
    }
}

// partials[c, 0, j] = sum over rows of chunk c of dout * n; partials[c, 1, j] = sum of dout.
// Grid: (column blocks, chunks); each thread owns one column and walks its chunk's rows in order.
extern "C" __global__ void layernorm_param_partials(float* partials, Tensor dout, Tensor inp, const float* mean,
                                                    const float* rstd, int rows, int width, int chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
    if (j >= width) return;
    int first = c * chunk, last = min(rows, first + chunk);
    float dw = 0.0f, db = 0.0f;
    for (int r = first; r < last; r++) {
        float d = ld(dout, (u64)r * width + j);
        dw += d * (ld(inp, (u64)r * width + j) - mean[r]) * rstd[r];
        db += d;
    }
    partials[((u64)c * 2) * width + j] = dw;
    partials[((u64)c * 2 + 1) * width + j] = db;
}
