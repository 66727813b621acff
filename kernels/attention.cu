// Fused multi-head attention over timm's fused qkv activation [B, T, 3C] (C = H * D), forward and
// backward, for head dim D = 8, 16, 32 or 64 (ViT-B and its MAE decoder use 64 and 32; the small
// test models 8 and 16). Scores never reach global memory: each thread owns one
// query (forward, dQ) or one key (dK, dV), keeps its row in registers, and streams the other side
// through shared memory in tiles of TILE rows, with an online softmax. The forward saves one
// log-sum-exp per (batch, head, query); the backward recomputes the probabilities from it.
//
// Layout: q of (b, i, h) starts at b*T*3C + i*3C + h*D, k at +C, v at +2C; the output of
// (b, i, h) at b*T*C + i*C + h*D. Grid: (ceil(T / TILE), B * H); block: TILE threads. The
// activations (qkv, out and their gradients) may be f32 or bf16 (`Tensor`); scores, the softmax
// and accumulators are f32, and lse and delta are f32 rows.

#define TILE 64

// This block's (batch, head) and this thread's row (query or key), and the layout's strides.
struct Heads {
    int T, H, C, b, h, bh, row;
    __device__ static Heads here(int T, int H, int D) {
        int bh = blockIdx.y;
        return Heads{T, H, H * D, bh / H, bh % H, bh, (int)(blockIdx.x * TILE + threadIdx.x)};
    }
    __device__ u64 qkv_row(int b, int i) const { return ((u64)b * T + i) * 3 * C; }
    __device__ u64 out_row(int b, int i) const { return ((u64)b * T + i) * C; }
};

// Streams head s.h's keys and values through shared memory, TILE rows at a time (zeros past T),
// and calls `visit(k, v)` with each key's row on threads whose own row is live.
template <int D, typename Visit>
__device__ void for_each_key(Tensor qkv, Heads s, bool live, Visit visit) {
    __shared__ float ks[TILE][D];
    __shared__ float vs[TILE][D];
    for (int start = 0; start < s.T; start += TILE) {
        __syncthreads();
        for (int e = threadIdx.x; e < TILE * D; e += blockDim.x) {
            int r = e / D, d = e % D, j = start + r;
            ks[r][d] = j < s.T ? ld(qkv, s.qkv_row(s.b, j) + s.C + s.h * D + d) : 0.0f;
            vs[r][d] = j < s.T ? ld(qkv, s.qkv_row(s.b, j) + 2 * s.C + s.h * D + d) : 0.0f;
        }
        __syncthreads();
        int count = min(TILE, s.T - start);
        for (int r = 0; r < count && live; r++) visit(ks[r], vs[r]);
    }
}

template <int D>
__device__ void attention_forward_impl(Tensor out, float* lse, Tensor qkv, int B, int T, int H, float scale) {
    Heads s = Heads::here(T, H, D);
    int i = s.row;
    bool live = i < T;
    float q[D], acc[D];
    float m = NEG_INF, l = 0.0f;
    for (int d = 0; d < D; d++) {
        q[d] = live ? ld(qkv, s.qkv_row(s.b, i) + s.h * D + d) * scale : 0.0f;
        acc[d] = 0.0f;
    }
    for_each_key<D>(qkv, s, live, [&](const float* k, const float* v) {
        float score = 0.0f;
        for (int d = 0; d < D; d++) score += q[d] * k[d];
        float m_new = fmaxf(m, score);
        float correction = expf(m - m_new), p = expf(score - m_new);
        l = l * correction + p;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * correction + p * v[d];
        m = m_new;
    });
    if (!live) return;
    float inv = 1.0f / l;
    for (int d = 0; d < D; d++) st(out, s.out_row(s.b, i) + s.h * D + d, acc[d] * inv);
    lse[(u64)s.bh * T + i] = m + logf(l);
}

#define FORWARD_ENTRY_POINT(D)                                                                                         \
    extern "C" __global__ void attention_forward_d##D(Tensor out, float* lse, Tensor qkv, int B, int T, int H,          \
                                                      float scale) {                                                   \
        attention_forward_impl<D>(out, lse, qkv, B, T, H, scale);                                                      \
    }
FORWARD_ENTRY_POINT(8)
FORWARD_ENTRY_POINT(16)
FORWARD_ENTRY_POINT(32)
FORWARD_ENTRY_POINT(64)

// A backward kernel's entry point for head dim D: `name_dD`.
#define BACKWARD_ENTRY_POINT(name, impl, D)                                                                            \
    extern "C" __global__ void name##_d##D(Tensor dqkv, Tensor dout, Tensor qkv, const float* lse,                      \
                                           const float* delta, int B, int T, int H, float scale) {                    \
        impl<D>(dqkv, dout, qkv, lse, delta, B, T, H, scale);                                                          \
    }
#define BACKWARD_ENTRY_POINTS(name, impl)                                                                              \
    BACKWARD_ENTRY_POINT(name, impl, 8)                                                                                \
    BACKWARD_ENTRY_POINT(name, impl, 16)                                                                               \
    BACKWARD_ENTRY_POINT(name, impl, 32)                                                                               \
    BACKWARD_ENTRY_POINT(name, impl, 64)

// delta[b, h, i] = dot(dout_i, out_i) over head h's columns: the row sums of dP * P.
extern "C" __global__ void attention_delta(float* delta, Tensor dout, Tensor out, int B, int T, int H, int D) {
    GRID_STRIDE(e, (u64)B * H * T) {
        int i = (int)(e % T), bh = (int)(e / T), b = bh / H, h = bh % H;
        u64 row = ((u64)b * T + i) * H * D + (u64)h * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += ld(dout, row + d) * ld(out, row + d);
        delta[e] = s;
    }
}

// dQ_i = scale * sum_j P_ij (dP_ij - delta_i) K_j with P_ij = exp(scale q_i.k_j - lse_i) and
// dP_ij = dout_i . v_j; one thread per query, keys and values streamed through shared memory.
template <int D>
__device__ void attention_backward_dq_impl(Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta,
                                           int B, int T, int H, float scale) {
    Heads s = Heads::here(T, H, D);
    int i = s.row;
    bool live = i < T;
    float q[D], g[D], dq[D];
    for (int d = 0; d < D; d++) {
        q[d] = live ? ld(qkv, s.qkv_row(s.b, i) + s.h * D + d) * scale : 0.0f;
        g[d] = live ? ld(dout, s.out_row(s.b, i) + s.h * D + d) : 0.0f;
        dq[d] = 0.0f;
    }
    float row_lse = live ? lse[(u64)s.bh * T + i] : 0.0f, row_delta = live ? delta[(u64)s.bh * T + i] : 0.0f;
    for_each_key<D>(qkv, s, live, [&](const float* k, const float* v) {
        float score = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; d++) {
            score += q[d] * k[d];
            dp += g[d] * v[d];
        }
        float ds = expf(score - row_lse) * (dp - row_delta);
        for (int d = 0; d < D; d++) dq[d] += ds * k[d];
    });
    if (!live) return;
    for (int d = 0; d < D; d++) st(dqkv, s.qkv_row(s.b, i) + s.h * D + d, dq[d] * scale);
}

BACKWARD_ENTRY_POINTS(attention_backward_dq, attention_backward_dq_impl)

// dV_j = sum_i P_ij dout_i and dK_j = scale * sum_i P_ij (dP_ij - delta_i) q_i; one thread per
// key, queries, output gradients, lse and delta streamed through shared memory.
template <int D>
__device__ void attention_backward_dkv_impl(Tensor dqkv, Tensor dout, Tensor qkv, const float* lse, const float* delta,
                                            int B, int T, int H, float scale) {
    __shared__ float qs[TILE][D];
    __shared__ float gs[TILE][D];
    __shared__ float lses[TILE];
    __shared__ float deltas[TILE];
    Heads s = Heads::here(T, H, D);
    int b = s.b, h = s.h, bh = s.bh, j = s.row;
    bool live = j < T;
    float k[D], v[D], dk[D], dv[D];
    for (int d = 0; d < D; d++) {
        k[d] = live ? ld(qkv, s.qkv_row(b, j) + s.C + h * D + d) : 0.0f;
        v[d] = live ? ld(qkv, s.qkv_row(b, j) + 2 * s.C + h * D + d) : 0.0f;
        dk[d] = 0.0f;
        dv[d] = 0.0f;
    }
    for (int start = 0; start < T; start += TILE) {
        __syncthreads();
        for (int e = threadIdx.x; e < TILE * D; e += blockDim.x) {
            int r = e / D, d = e % D, i = start + r;
            qs[r][d] = i < T ? ld(qkv, s.qkv_row(b, i) + h * D + d) * scale : 0.0f;
            gs[r][d] = i < T ? ld(dout, s.out_row(b, i) + h * D + d) : 0.0f;
        }
        for (int r = threadIdx.x; r < TILE; r += blockDim.x) {
            int i = start + r;
            lses[r] = i < T ? lse[(u64)bh * T + i] : 0.0f;
            deltas[r] = i < T ? delta[(u64)bh * T + i] : 0.0f;
        }
        __syncthreads();
        int count = min(TILE, T - start);
        for (int r = 0; r < count && live; r++) {
            float score = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) {
                score += qs[r][d] * k[d];
                dp += gs[r][d] * v[d];
            }
            float p = expf(score - lses[r]);
            float ds = p * (dp - deltas[r]);
            // qs holds scale * q, so dk needs no further scaling.
            for (int d = 0; d < D; d++) {
                dv[d] += p * gs[r][d];
                dk[d] += ds * qs[r][d];
            }
        }
    }
    if (!live) return;
    for (int d = 0; d < D; d++) {
        st(dqkv, s.qkv_row(b, j) + s.C + h * D + d, dk[d]);
        st(dqkv, s.qkv_row(b, j) + 2 * s.C + h * D + d, dv[d]);
    }
}

BACKWARD_ENTRY_POINTS(attention_backward_dkv, attention_backward_dkv_impl)
