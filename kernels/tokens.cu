// Token plumbing: gathering rows by index (MAE's keep/un-shuffle with the CLS and mask tokens)
// with its scatter backward, and mean pooling over a sample's rows. Rows may be f32 or bf16
// (`Tensor`).

// out[s, r, :] = idx[s, r] < 0 ? fill : inp[s, idx[s, r], :].
extern "C" __global__ void gather_rows(Tensor out, Tensor inp, const int* idx, Tensor fill, int samples, int in_rows,
                                       int out_rows, int width) {
    GRID_STRIDE(e, (u64)samples * out_rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / out_rows), i = idx[row];
        st(out, e, i < 0 ? ld(fill, j) : ld(inp, ((u64)s * in_rows + i) * width + j));
    }
}

// dinp[s, idx[s, r], :] += dout[s, r, :] for idx >= 0. Within a sample the non-negative indices
// are distinct (a permutation's prefix in MAE), so no two threads add into the same element.
extern "C" __global__ void gather_rows_backward_input(Tensor dinp, Tensor dout, const int* idx, int samples, int in_rows,
                                                      int out_rows, int width) {
    GRID_STRIDE(e, (u64)samples * out_rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / out_rows), i = idx[row];
        if (i < 0) continue;
        u64 at = ((u64)s * in_rows + i) * width + j;
        st(dinp, at, ld(dinp, at) + ld(dout, e));
    }
}

// dfill[j] += sum of dout[row, j] over rows whose index is negative, in row order (one thread
// per column, so the result is deterministic).
extern "C" __global__ void gather_rows_backward_fill(Tensor dfill, Tensor dout, const int* idx, u64 rows, int width) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    float s = 0.0f;
    for (u64 r = 0; r < rows; r++)
        if (idx[r] < 0) s += ld(dout, r * width + j);
    st(dfill, j, ld(dfill, j) + s);
}

// out[s, j] = mean over rows skip..rows of inp[s, r, j].
extern "C" __global__ void mean_pool_forward(Tensor out, Tensor inp, int samples, int rows, int width, int skip) {
    GRID_STRIDE(e, (u64)samples * width) {
        int j = (int)(e % width), s = (int)(e / width);
        float acc = 0.0f;
        for (int r = skip; r < rows; r++) acc += ld(inp, ((u64)s * rows + r) * width + j);
        st(out, e, acc * (1.0f / (rows - skip)));
    }
}

// dinp[s, r, j] = r < skip ? 0 : dout[s, j] / (rows - skip).
extern "C" __global__ void mean_pool_backward(Tensor dinp, Tensor dout, int samples, int rows, int width, int skip) {
    GRID_STRIDE(e, (u64)samples * rows * width) {
        int j = (int)(e % width);
        u64 row = e / width;
        int s = (int)(row / rows), r = (int)(row % rows);
        st(dinp, e, r < skip ? 0.0f : ld(dout, (u64)s * width + j) * (1.0f / (rows - skip)));
    }
}
