/* Normalizations and the row softmax (see ops.h). Statistics are two-pass in
 * double (mean, then the biased variance of the deviations), which matches
 * PyTorch's float32 results to rounding. Every statistic is computed by one
 * thread in a fixed order, so results do not depend on the thread count. */
#include "tensor/ops_internal.h"

#include <math.h>

/* Pixels handled together by ld_layer_norm_channels (bounded stack scratch). */
#define LNC_TILE 128

void ld_group_norm(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                   const ld_tensor *gamma, const ld_tensor *beta) {
    int64_t cpg = C / groups, n = cpg * HW;
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    #pragma omp parallel for schedule(static)
    for (int64_t bg = 0; bg < B * groups; bg++) {
        int64_t g = bg % groups;
        const float *xs = x + bg * n; /* a group's channels are contiguous in NCHW */
        float *ys = y + bg * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += xs[i];
        double mean = sum / (double)n, ss = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double d = xs[i] - mean;
            ss += d * d;
        }
        float rstd = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        float m = (float)mean;
        for (int64_t c = 0; c < cpg; c++) {
            int64_t ch = g * cpg + c;
            float a = rstd * (affine_g ? ops_wget(gamma, ch) : 1.0f);
            float b = affine_b ? ops_wget(beta, ch) : 0.0f;
            const float *xp = xs + c * HW;
            float *yp = ys + c * HW;
            for (int64_t i = 0; i < HW; i++) yp[i] = (xp[i] - m) * a + b;
        }
    }
}

void ld_layer_norm(float *y, const float *x, int64_t rows, int64_t dim, float eps, const ld_tensor *gamma,
                   const ld_tensor *beta) {
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    #pragma omp parallel for schedule(static) if (rows * dim > 16384)
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = x + r * dim;
        float *ys = y + r * dim;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++) sum += xs[i];
        double mean = sum / (double)dim, ss = 0.0;
        for (int64_t i = 0; i < dim; i++) {
            double d = xs[i] - mean;
            ss += d * d;
        }
        float rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        float m = (float)mean;
        for (int64_t i = 0; i < dim; i++) {
            float v = (xs[i] - m) * rstd;
            if (affine_g) v *= ops_wget(gamma, i);
            if (affine_b) v += ops_wget(beta, i);
            ys[i] = v;
        }
    }
}

void ld_layer_norm_channels(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps,
                            const ld_tensor *gamma, const ld_tensor *beta) {
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    int64_t tiles = (HW + LNC_TILE - 1) / LNC_TILE;
    #pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * tiles; bt++) {
        int64_t b = bt / tiles, p0 = (bt % tiles) * LNC_TILE, np = ops_min64(LNC_TILE, HW - p0);
        const float *xs = x + b * C * HW + p0;
        float *ys = y + b * C * HW + p0;
        double acc[LNC_TILE];
        float mean[LNC_TILE], rstd[LNC_TILE];
        /* mean over channels, pixels of the tile side by side (contiguous) */
        for (int64_t p = 0; p < np; p++) acc[p] = 0.0;
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < np; p++) acc[p] += xs[c * HW + p];
        for (int64_t p = 0; p < np; p++) acc[p] /= (double)C;
        double m[LNC_TILE];
        for (int64_t p = 0; p < np; p++) {
            m[p] = acc[p];
            acc[p] = 0.0;
        }
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < np; p++) {
                double d = xs[c * HW + p] - m[p];
                acc[p] += d * d;
            }
        for (int64_t p = 0; p < np; p++) {
            mean[p] = (float)m[p];
            rstd[p] = (float)(1.0 / sqrt(acc[p] / (double)C + (double)eps));
        }
        for (int64_t c = 0; c < C; c++) {
            float g = affine_g ? ops_wget(gamma, c) : 1.0f, bb = affine_b ? ops_wget(beta, c) : 0.0f;
            const float *xp = xs + c * HW;
            float *yp = ys + c * HW;
            for (int64_t p = 0; p < np; p++) yp[p] = (xp[p] - mean[p]) * rstd[p] * g + bb;
        }
    }
}

void ld_softmax_rows(float *x, int64_t rows, int64_t n) {
    #pragma omp parallel for schedule(static) if (rows * n > 16384)
    for (int64_t r = 0; r < rows; r++) {
        float *p = x + r * n;
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) mx = p[i] > mx ? p[i] : mx;
        if (mx == -INFINITY) { /* every entry masked: PyTorch gives NaN; we give zeros */
            for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            p[i] = expf(p[i] - mx);
            sum += p[i];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < n; i++) p[i] *= inv;
    }
}
