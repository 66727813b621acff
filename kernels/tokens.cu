// Token plumbing: gathering rows by index (MAE's keep/un-shuffle with the CLS and mask tokens)
// with its scatter backward, and mean pooling over a sample's rows.

// out[s, r, :] = idx[s, r] < 0 ? fill : inp[s, idx[s, r], :].
extern "C" __global__ void gather_rows(float* out, const float* inp, const int* idx, const float* fill, int samples, int in_rows,
                                       int out_rows, int width) {
    GRID_STRIDE(e, (u64)samples * out_rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / out_rows), i = idx[row];
        out[e] = i < 0 ? fill[j] : inp[((u64)s * in_rows + i) * width + j];
    }
}

// dinp[s, idx[s, r], :] += dout[s, r, :] for idx >= 0. Within a sample the non-negative indices
// are distinct (a permutation's prefix in MAE), so no two threads add into the same element.
extern "C" __global__ void gather_rows_backward_input(float* dinp, const float* dout, const int* idx, int samples, int in_rows,
                                                      int out_rows, int width) {
    GRID_STRIDE(e, (u64)samples * out_rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / out_rows), i = idx[row];
        if (i >= 0) dinp[((u64)s * in_rows + i) * width + j] += dout[e];
    }
}

// dfill[j] += sum of dout[row, j] over rows whose index is negative, in row order (one thread
// per column, so the result is deterministic).
extern "C" __global__ void gather_rows_backward_fill(float* dfill, const float* dout, const int* idx, u64 rows, int width) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    float s = 0.0f;
    for (u64 r = 0; r < rows; r++)
        if (idx[r] < 0) s += dout[r * width + j];
    dfill[j] += s;
}

// out[s, j] = mean over rows skip..rows of inp[s, r, j].
extern "C" __global__ void mean_pool_forward(float* out, const float* inp, int samples, int rows, int width, int skip) {
    GRID_STRIDE(e, (u64)samples * width) {
        int j = (int)(e % width), s = (int)(e / width);
        float acc = 0.0f;
        for (int r = skip; r < rows; r++) acc += inp[((u64)s * rows + r) * width + j];
        out[e] = acc * (1.0f / (rows - skip));
    }
}

// dinp[s, r, j] = r < skip ? 0 : dout[s, j] / (rows - skip).
extern "C" __global__ void mean_pool_backward(float* dinp, const float* dout, int samples, int rows, int width, int skip) {
    GRID_STRIDE(e, (u64)samples * rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / rows), r = (int)(row % rows);
        dinp[e] = r < skip ? 0.0f : dout[(u64)s * width + j] * (1.0f / (rows - skip));
    }
}
