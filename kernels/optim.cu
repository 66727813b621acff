// Optimiser updates over the flat parameter buffer. The parameter groups (offset, length, LR
// scale, weight decay) come as a table; each element finds its group by binary search, so one
// launch updates the whole model. Elements outside every group are left alone.

struct Group {
    u64 offset;
    u64 len;
    float lr_scale;
    int decay;
};

__device__ __forceinline__ int find_group(const Group* groups, int count, u64 i) {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (groups[mid].offset <= i) lo = mid;
        else hi = mid - 1;
    }
    return (groups[lo].offset <= i && i < groups[lo].offset + groups[lo].len) ? lo : -1;
}

// Decoupled weight decay, then the bias-corrected Adam step (PyTorch AdamW); `groups` sorted by
// offset. bc1 = 1 - beta1^step, bc2_sqrt = sqrt(1 - beta2^step). Where the parameters have a
// reduced-precision copy for the GEMMs (`copy`, 0 for none), the new value is written there too,
// so the copy never needs a separate pass.
extern "C" __global__ void adamw(float* params, Tensor copy, const float* grads, float* m, float* v, const Group* groups, int count, u64 n,
                                 float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, float bc1,
                                 float bc2_sqrt) {
    GRID_STRIDE(i, n) {
        int g = find_group(groups, count, i);
        if (g < 0) continue;
        float glr = lr * groups[g].lr_scale;
        float decay = groups[g].decay ? 1.0f - glr * weight_decay : 1.0f;
        float grad = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * grad;
        float vi = beta2 * v[i] + (1.0f - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        float p = params[i] * decay - (glr / bc1) * mi / (sqrtf(vi) / bc2_sqrt + eps);
        params[i] = p;
        if (copy) st(copy, i, p);
    }
}

// PyTorch SGD: g += wd * p; buf = momentum * buf + g; p -= lr * (nesterov ? g + momentum * buf : buf).
extern "C" __global__ void sgd(float* params, const float* grads, float* buf, const Group* groups, int count, u64 n, float lr,
                               float momentum, int nesterov, float weight_decay, float grad_scale) {
    GRID_STRIDE(i, n) {
        int g = find_group(groups, count, i);
        if (g < 0) continue;
        float glr = lr * groups[g].lr_scale;
        float wd = groups[g].decay ? weight_decay : 0.0f;
        float grad = grads[i] * grad_scale + wd * params[i];
        float b = momentum * buf[i] + grad;
        buf[i] = b;
        params[i] -= glr * (nesterov ? grad + momentum * b : b);
    }
}
