// Losses fused with their gradients: soft-target cross-entropy with a class mask, and the MAE loss
// (per-patch normalised targets, masked mean squared error). Row sums run in fp64, as on the CPU.

// One block per row: losses[row] and dlogits[row, :] = grad_scale * (softmax * target_mass - t)
// over active classes, exactly 0 elsewhere.
extern "C" __global__ void cross_entropy(float* losses, float* dlogits, const float* logits, const float* targets, const float* mask,
                                         int rows, int classes, float grad_scale) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* z = logits + (u64)row * classes;
    const float* t = targets + (u64)row * classes;
    float* dz = dlogits + (u64)row * classes;
    float m = NEG_INF;
    for (int k = threadIdx.x; k < classes; k += blockDim.x)
        if (mask[k] != 0.0f) m = fmaxf(m, z[k]);
    double max = block_max(m, fscratch);
    double sum = 0.0, mass = 0.0;
    for (int k = threadIdx.x; k < classes; k += blockDim.x)
        if (mask[k] != 0.0f) {
            sum += exp((double)z[k] - max);
            mass += t[k];
        }
    sum = block_sum_f64(sum, dscratch);
    mass = block_sum_f64(mass, dscratch);
    double lse = max + log(sum), loss = 0.0;
    for (int k = threadIdx.x; k < classes; k += blockDim.x) {
        if (mask[k] != 0.0f) {
            double logp = z[k] - lse;
            loss -= t[k] * logp;
            dz[k] = (float)(grad_scale * (exp(logp) * mass - t[k]));
        } else {
            dz[k] = 0.0f;
        }
    }
    loss = block_sum_f64(loss, dscratch);
    if (threadIdx.x == 0) losses[row] = (float)loss;
}

// `masked[0]` is the number of masked patches (reduce.cu's sum_partials over the mask).
// One block per (sample, patch): normalises the target patch, writes the gradient of
// loss = sum(mask * mse) / masked into dpred (row 0 of each sample, the decoder's CLS, gets 0) and
// the patch's share of the loss into partial[sample * patches + patch].
extern "C" __global__ void mae_patch_loss(double* partial, float* dpred, const float* pred, const float* target, const float* mask,
                                          const double* masked, int samples, int patches, int patch_len, float grad_scale) {
    __shared__ double scratch[32];
    int s = blockIdx.x / patches, i = blockIdx.x % patches;
    if (s >= samples) return;
    u64 pred_row = ((u64)s * (patches + 1) + i + 1) * patch_len;
    if (i == 0)
        for (int k = threadIdx.x; k < patch_len; k += blockDim.x) dpred[(u64)s * (patches + 1) * patch_len + k] = 0.0f;
    double m = mask[(u64)s * patches + i];
    if (m == 0.0) {
        for (int k = threadIdx.x; k < patch_len; k += blockDim.x) dpred[pred_row + k] = 0.0f;
        if (threadIdx.x == 0) partial[blockIdx.x] = 0.0;
        return;
    }
    const float* t = target + ((u64)s * patches + i) * patch_len;
    double sum = 0.0;
    for (int k = threadIdx.x; k < patch_len; k += blockDim.x) sum += t[k];
    double mean = block_sum_f64(sum, scratch) / patch_len;
    double var = 0.0;
    for (int k = threadIdx.x; k < patch_len; k += blockDim.x) var += (t[k] - mean) * (t[k] - mean);
    double inv_std = 1.0 / sqrt(block_sum_f64(var, scratch) / (patch_len - 1.0) + 1e-6);
    double coef = 2.0 * grad_scale / (patch_len * masked[0]);
    double sq = 0.0;
    for (int k = threadIdx.x; k < patch_len; k += blockDim.x) {
        double err = pred[pred_row + k] - (t[k] - mean) * inv_std;
        sq += err * err;
        dpred[pred_row + k] = (float)(coef * m * err);
    }
    sq = block_sum_f64(sq, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = m * sq / patch_len;
}

// loss[0] = sum of partials / masked (one block, fixed order).
extern "C" __global__ void mae_total(float* loss, const double* partial, const double* masked, int count) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum_f64(s, scratch);
    if (threadIdx.x == 0) loss[0] = (float)(s / masked[0]);
}
