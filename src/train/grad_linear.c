/* Backward of the linear layer and of per-channel biases (see grad_ops.h).
 * Both products run on ld_gemm with transposed strided views, so no operand
 * is copied or transposed in memory. */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"

/* Columns of a bias gradient one thread sums (over all rows, in row order). */
#define BIAS_COLS 64

void ld_linear_backward(const float *dy, const float *x, int64_t M, const ld_tensor *w, float *dx, float *dw,
                        float *db) {
    const int64_t N = w->shape[0], K = ld_tensor_numel(w) / N;
    if (M <= 0) return;
    if (dx) { /* dx[M, K] += dy[M, N] w[N, K] */
        ld_mat A = ld_mat_f32(dy, N, 1), Bm = ops_wmat(w, 0, K, 1);
        ld_gemm(M, K, N, &A, &Bm, dx, K, 1.0f, NULL, NULL);
    }
    if (dw) { /* dw[N, K] += dy^T[N, M] x[M, K] */
        ld_mat A = ld_mat_f32(dy, 1, N), Bm = ld_mat_f32(x, K, 1);
        ld_gemm(N, K, M, &A, &Bm, dw, K, 1.0f, NULL, NULL);
    }
    if (db) {
        #pragma omp parallel for schedule(static)
        for (int64_t c0 = 0; c0 < N; c0 += BIAS_COLS) {
            const int64_t c1 = c0 + BIAS_COLS < N ? c0 + BIAS_COLS : N;
            for (int64_t m = 0; m < M; m++) {
                const float *row = dy + m * N;
                #pragma omp simd
                for (int64_t c = c0; c < c1; c++) db[c] += row[c];
            }
        }
    }
}

void ld_channel_sum_backward(float *db, const float *dy, int64_t B, int64_t C, int64_t HW) {
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t b = 0; b < B; b++) {
            const float *p = dy + (b * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) s += p[i];
        }
        db[c] += (float)s;
    }
}
