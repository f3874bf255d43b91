/* ld_gemm: entry point and the portable implementation (see gemm.h).
 * SIMD kernels (gemm_avx512.c, gemm_avx2.c, gemm_neon.c) are chosen at run
 * time; this file keeps the portable C path every platform has. */
#include "tensor/gemm.h"

#include <stdlib.h>

static ld_precision g_precision = LD_PRECISION_F32;

void ld_gemm_set_precision(ld_precision p) { g_precision = p; }
ld_precision ld_gemm_get_precision(void) { return g_precision; }

static inline float mat_at(const ld_mat *m, int64_t r, int64_t c) {
    int64_t i = r * m->rs + c * m->cs;
    switch (m->dtype) {
    case LD_F16: return ld_f16_to_f32(((const uint16_t *)m->data)[i]);
    case LD_BF16: return ld_bf16_to_f32(((const uint16_t *)m->data)[i]);
    default: return ((const float *)m->data)[i];
    }
}

static inline float round_bf16(float x) { return ld_bf16_to_f32(ld_f32_to_bf16(x)); }

void ld_gemm_reference(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc,
                       float beta, const ld_tensor *bias_n, const ld_tensor *bias_m) {
    int bf16 = g_precision == LD_PRECISION_BF16;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                float a = mat_at(A, i, k), b = mat_at(B, k, j);
                if (bf16) {
                    a = round_bf16(a);
                    b = round_bf16(b);
                }
                s += a * b;
            }
            if (bias_n && bias_n->data) s += ld_tensor_get_f32(bias_n, j);
            if (bias_m && bias_m->data) s += ld_tensor_get_f32(bias_m, i);
            float *c = &C[i * ldc + j];
            *c = beta == 0.0f ? s : beta * *c + s;
        }
    }
}

void ld_gemm(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc, float beta,
             const ld_tensor *bias_n, const ld_tensor *bias_m) {
    if (M <= 0 || N <= 0) return;
    ld_gemm_reference(M, N, K, A, B, C, ldc, beta, bias_n, bias_m);
}
