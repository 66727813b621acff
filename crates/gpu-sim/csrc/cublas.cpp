// cuBLAS as rekindle uses it: one strided batched GEMM, written from the cuBLAS documentation of
// cublasGemmStridedBatchedEx. Column-major storage: op(A) is m x k, op(B) k x n, C m x n, with
// element (i, j) of a matrix at i + j * ld; batch b's operands start b * stride elements further.
// C = alpha * op(A) op(B) + beta * C, and with beta = 0 C is not read (so NaN there does not
// propagate). Exactly the type combinations rekindle uses are accepted: 32F x 32F -> 32F, and
// 16BF x 16BF -> 16BF or 32F, all with CUBLAS_COMPUTE_32F; bf16 results are rounded to nearest
// even. Anything else is CUBLAS_STATUS_NOT_SUPPORTED, as a type the real library lacks would be.
//
// The products run as a "kernel" on the software GPU's worker pool, 32 rows of C per block. The
// sum over k is in f32 in a fixed order (eight interleaved partial sums), not cuBLAS's own.
#include <cstring>
#include <vector>

#include "runtime.h"

namespace {

enum : int { STATUS_SUCCESS = 0, STATUS_NOT_INITIALIZED = 1, STATUS_INVALID_VALUE = 7, STATUS_EXECUTION_FAILED = 13, STATUS_NOT_SUPPORTED = 15 };
enum : int { R_32F = 0, R_16BF = 14 };
constexpr int COMPUTE_32F = 68;
constexpr int ROWS_PER_BLOCK = 32;

// A handle holds nothing: every GEMM runs when it is called, so its stream needs no record.
struct Handle {};

float load(const void* base, int type, uint64_t i) {
    if (type == R_32F) return ((const float*)base)[i];
    uint32_t bits = (uint32_t)((const uint16_t*)base)[i] << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void store(void* base, int type, uint64_t i, float v) {
    if (type == R_32F) {
        ((float*)base)[i] = v;
        return;
    }
    uint32_t u;
    memcpy(&u, &v, 4);
    uint16_t h = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40) : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    ((uint16_t*)base)[i] = h;
}

// One batched product, with op(A) packed row by row (m x k) and op(B) column by column (n x k),
// so every element of C is a dot product of two contiguous rows.
struct Product {
    int m, n, k, batch;
    float alpha, beta;
    std::vector<float> a, b;  // [batch][m][k], [batch][n][k]
    void* c;
    int c_type, ldc;
    long long stride_c;
};

void product_block(void** args) {
    const Product& p = *(const Product*)args[0];
    int blocks_per_batch = (p.m + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
    int block = (int)sim::here->block.x, batch = block / blocks_per_batch;
    int first = (block % blocks_per_batch) * ROWS_PER_BLOCK, last = std::min(p.m, first + ROWS_PER_BLOCK);
    const float* a = p.a.data() + (size_t)batch * p.m * p.k;
    const float* b = p.b.data() + (size_t)batch * p.n * p.k;
    void* c = (char*)p.c + (size_t)batch * p.stride_c * (p.c_type == R_32F ? 4 : 2);
    for (int j = 0; j < p.n; j++) {
        const float* bj = b + (size_t)j * p.k;
        for (int i = first; i < last; i++) {
            const float* ai = a + (size_t)i * p.k;
            float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int q = 0;
            for (; q + 8 <= p.k; q += 8)
                for (int r = 0; r < 8; r++) partial[r] += ai[q + r] * bj[q + r];
            for (; q < p.k; q++) partial[q % 8] += ai[q] * bj[q];
            float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
            uint64_t at = (uint64_t)i + (uint64_t)j * p.ldc;
            float v = p.alpha * sum;
            if (p.beta != 0.0f) v += p.beta * load(c, p.c_type, at);
            store(c, p.c_type, at, v);
        }
    }
}

const uint32_t no_params[1] = {0};
const sim::Twin product_twin{"cublasGemmStridedBatchedEx", &product_block, no_params, 0};

int refuse_blas(int status, const std::string& message) {
    sim::report("cublasGemmStridedBatchedEx: " + message);
    return status;
}

// "" if the `rows` x `cols` matrices of every batch, `ld` apart, lie in device memory.
std::string extent(const char* name, const void* base, int type, int rows, int cols, int ld, long long stride, int batch) {
    if (rows == 0 || cols == 0) return "";
    size_t elem = type == R_32F ? 4 : 2;
    for (int b = 0; b < batch; b++) {
        uint64_t first = (uint64_t)(uintptr_t)base + (uint64_t)b * stride * elem;
        uint64_t bytes = ((uint64_t)(cols - 1) * ld + rows) * elem;
        std::string problem = sim::mem_check(first, bytes);
        if (!problem.empty()) return std::string(name) + " of batch " + std::to_string(b) + ": " + problem;
    }
    return "";
}

}  // namespace

SIM_EXPORT int cublasCreate_v2(void** handle) {
    *handle = new Handle{};
    return STATUS_SUCCESS;
}

SIM_EXPORT int cublasDestroy_v2(void* handle) {
    delete (Handle*)handle;
    return STATUS_SUCCESS;
}

SIM_EXPORT int cublasSetStream_v2(void* handle, void*) { return handle ? STATUS_SUCCESS : STATUS_NOT_INITIALIZED; }

SIM_EXPORT int cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A, int a_type, int lda,
                                          long long stride_a, const void* B, int b_type, int ldb, long long stride_b, const void* beta, void* C, int c_type,
                                          int ldc, long long stride_c, int batch, int compute, int algo) {
    if (!handle) return STATUS_NOT_INITIALIZED;
    if (transa < 0 || transa > 1 || transb < 0 || transb > 1)
        return refuse_blas(STATUS_NOT_SUPPORTED, "only CUBLAS_OP_N and CUBLAS_OP_T are supported (got " + std::to_string(transa) + ", " + std::to_string(transb) + ")");
    if (m < 0 || n < 0 || k < 0 || batch < 0) return refuse_blas(STATUS_INVALID_VALUE, "negative m, n, k or batch count");
    int rows_a = transa ? k : m, cols_a = transa ? m : k, rows_b = transb ? n : k, cols_b = transb ? k : n;
    if (lda < std::max(1, rows_a)) return refuse_blas(STATUS_INVALID_VALUE, "lda " + std::to_string(lda) + " < rows of A (" + std::to_string(rows_a) + ")");
    if (ldb < std::max(1, rows_b)) return refuse_blas(STATUS_INVALID_VALUE, "ldb " + std::to_string(ldb) + " < rows of B (" + std::to_string(rows_b) + ")");
    if (ldc < std::max(1, m)) return refuse_blas(STATUS_INVALID_VALUE, "ldc " + std::to_string(ldc) + " < m (" + std::to_string(m) + ")");
    bool types = (a_type == R_32F && b_type == R_32F && c_type == R_32F) || (a_type == R_16BF && b_type == R_16BF && (c_type == R_16BF || c_type == R_32F));
    if (!types || compute != COMPUTE_32F)
        return refuse_blas(STATUS_NOT_SUPPORTED, "types A " + std::to_string(a_type) + ", B " + std::to_string(b_type) + ", C " + std::to_string(c_type) +
                                                     ", compute " + std::to_string(compute) + ": only 32F/32F/32F and 16BF/16BF/(16BF or 32F) with CUBLAS_COMPUTE_32F");
    if (algo != -1 && algo != 99) return refuse_blas(STATUS_NOT_SUPPORTED, "algorithm " + std::to_string(algo) + ": only CUBLAS_GEMM_DEFAULT(_TENSOR_OP)");
    if (m == 0 || n == 0 || batch == 0) return STATUS_SUCCESS;
    for (std::string problem : {extent("A", A, a_type, rows_a, cols_a, lda, stride_a, batch), extent("B", B, b_type, rows_b, cols_b, ldb, stride_b, batch),
                                extent("C", C, c_type, m, n, ldc, stride_c, batch)})
        if (!problem.empty()) return refuse_blas(STATUS_EXECUTION_FAILED, problem);

    Product p{m, n, k, batch, *(const float*)alpha, *(const float*)beta, {}, {}, C, c_type, ldc, stride_c};
    size_t elem = a_type == R_32F ? 4 : 2;
    p.a.resize((size_t)batch * m * k);
    p.b.resize((size_t)batch * n * k);
    for (int bt = 0; bt < batch; bt++) {
        const char* a = (const char*)A + (size_t)bt * stride_a * elem;
        const char* b = (const char*)B + (size_t)bt * stride_b * elem;
        float* pa = p.a.data() + (size_t)bt * m * k;
        float* pb = p.b.data() + (size_t)bt * n * k;
        for (int i = 0; i < m; i++)
            for (int q = 0; q < k; q++) pa[(size_t)i * k + q] = load(a, a_type, transa ? (uint64_t)q + (uint64_t)i * lda : (uint64_t)i + (uint64_t)q * lda);
        for (int j = 0; j < n; j++)
            for (int q = 0; q < k; q++) pb[(size_t)j * k + q] = load(b, b_type, transb ? (uint64_t)j + (uint64_t)q * ldb : (uint64_t)q + (uint64_t)j * ldb);
    }
    void* args[1] = {&p};
    unsigned blocks = (unsigned)(batch * ((m + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK));
    sim::Launch launch{&product_twin, args, sim::Dim3{blocks, 1, 1}, sim::Dim3{1, 1, 1}, false};
    std::string failure = sim::run_grid(launch);
    return failure.empty() ? STATUS_SUCCESS : refuse_blas(STATUS_EXECUTION_FAILED, failure);
}
