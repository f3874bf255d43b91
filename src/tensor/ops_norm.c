/* Normalizations and the row softmax (see ops.h). Statistics are in double,
 * which matches PyTorch's float32 results to rounding: GroupNorm and LayerNorm
 * take the sums of the deviations from the first value and of their squares
 * in one pass (16 fixed partial sums per statistic, ops_vec()->moments; one
 * read of a group fewer than the mean and then the variance, which for the
 * VAE's groups of millions of values came from memory twice); the channel
 * LayerNorms are two-pass, summing each pixel's channels in order, pixels side
 * by side in the vectors of ops_vec().
 * Every statistic is computed by one thread in a fixed order, so results do
 * not depend on the thread count. */
#include "tensor/ops_internal.h"

#include <math.h>
#include <stdlib.h>

/* mean and sum of squared deviations of x[0..n) in double, one pass
 * (ops_vec()->moments) around a shift, the first value: with d = x - x[0],
 * sum (x - mean)^2 = sum d^2 - (sum d)^2 / n, and since (x[0] - mean)^2 is at
 * most n times the variance, the subtraction loses at most about n double
 * ulps of it (4e-10 relative for a VAE group of 4M values), far below f32's. */
static double stats(const ops_vec_kernels *k, const float *x, int64_t n, double *ss) {
    const double shift = n > 0 ? (double)x[0] : 0.0;
    double s1, s2;
    k->moments(x, n, shift, &s1, &s2);
    const double d = n > 0 ? s1 / (double)n : 0.0;
    *ss = s2 - s1 * d;
    if (*ss < 0.0) *ss = 0.0;
    return shift + d;
}

/* Pixels handled together by ld_layer_norm_channels (bounded stack scratch). */
#define LNC_TILE 128

/* GroupNorm, then SiLU on each channel row right after it is written (still
 * in cache) when silu is set: the same bits as ld_silu afterwards, one pass
 * over the tensor fewer. */
static void group_norm(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                       const ld_tensor *gamma, const ld_tensor *beta, int silu) {
    int64_t cpg = C / groups, n = cpg * HW;
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    const ops_vec_kernels *k = ops_vec();
    #pragma omp parallel for schedule(static)
    for (int64_t bg = 0; bg < B * groups; bg++) {
        int64_t g = bg % groups;
        const float *xs = x + bg * n; /* a group's channels are contiguous in NCHW */
        float *ys = y + bg * n;
        double ss, mean = stats(k, xs, n, &ss);
        float rstd = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        float m = (float)mean;
        for (int64_t c = 0; c < cpg; c++) {
            int64_t ch = g * cpg + c;
            float a = rstd * (affine_g ? ops_wget(gamma, ch) : 1.0f);
            float b = affine_b ? ops_wget(beta, ch) : 0.0f;
            const float *xp = xs + c * HW;
            float *yp = ys + c * HW;
            #pragma omp simd
            for (int64_t i = 0; i < HW; i++) yp[i] = (xp[i] - m) * a + b;
            if (silu) ops_act_serial(OPS_ACT_SILU, yp, yp, HW);
        }
    }
}

void ld_group_norm(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                   const ld_tensor *gamma, const ld_tensor *beta) {
    group_norm(y, x, B, C, HW, groups, eps, gamma, beta, 0);
}

void ld_group_norm_silu(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                        const ld_tensor *gamma, const ld_tensor *beta) {
    group_norm(y, x, B, C, HW, groups, eps, gamma, beta, 1);
}

void ld_layer_norm(float *y, const float *x, int64_t rows, int64_t dim, float eps, const ld_tensor *gamma,
                   const ld_tensor *beta) {
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    const ops_vec_kernels *k = ops_vec();
    /* gamma and beta as f32 once, so the row loop below vectorizes */
    float *gb = (affine_g || affine_b) ? malloc(sizeof(float) * 2 * (size_t)dim) : NULL;
    if (gb) {
        for (int64_t i = 0; i < dim; i++) {
            gb[i] = affine_g ? ops_wget(gamma, i) : 1.0f;
            gb[dim + i] = affine_b ? ops_wget(beta, i) : 0.0f;
        }
    }
    #pragma omp parallel for schedule(static) if (rows * dim > 16384)
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = x + r * dim;
        float *ys = y + r * dim;
        double ss, mean = stats(k, xs, dim, &ss);
        float rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        float m = (float)mean;
        if (gb) { /* (x - m) * rstd * gamma + beta, the same roundings as below */
            const float *g = gb, *b = gb + dim;
            #pragma omp simd
            for (int64_t i = 0; i < dim; i++) ys[i] = (xs[i] - m) * rstd * g[i] + b[i];
            continue;
        }
        for (int64_t i = 0; i < dim; i++) {
            float v = (xs[i] - m) * rstd;
            if (affine_g) v *= ops_wget(gamma, i);
            if (affine_b) v += ops_wget(beta, i);
            ys[i] = v;
        }
    }
    free(gb);
}

/* Pixels per tile of the channel LayerNorms: a multiple of 16 such that the
 * tile's C channel rows (about 256 KiB) stay in L2 across the three passes. */
static int64_t lnc_tile(int64_t C) {
    int64_t t = (256 * 1024 / (int64_t)sizeof(float)) / (C > 0 ? C : 1) / 16 * 16;
    return t < 16 ? 16 : t > LNC_TILE ? LNC_TILE : t;
}

/* mean and 1/std over the C channels (rows of stride HW) of np pixels: the
 * two-pass statistics in double, pixels side by side in vectors. */
static void lnc_stats(const ops_vec_kernels *k, const float *xs, int64_t HW, int64_t C, int64_t np, float eps,
                      float *mean, float *rstd) {
    double acc[LNC_TILE], m[LNC_TILE];
    k->chan_sums(acc, xs, HW, C, np, NULL);
    for (int64_t p = 0; p < np; p++) m[p] = acc[p] / (double)C;
    k->chan_sums(acc, xs, HW, C, np, m);
    for (int64_t p = 0; p < np; p++) {
        mean[p] = (float)m[p];
        rstd[p] = (float)(1.0 / sqrt(acc[p] / (double)C + (double)eps));
    }
}

/* Channels per block of the token-major output: each pixel's block is one
 * 64-byte line of y. */
#define LNT_CB 16

/* ld_layer_norm_channels (tokens 0: y NCHW) or ld_layer_norm_channels_tokens
 * (tokens 1: y [B, HW, C]; the rows go through a tile of LNT_CB channels and
 * are transposed from it): the same values either way. */
static void lnc_apply(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps, const ld_tensor *gamma,
                      const ld_tensor *beta, int tokens) {
    int affine_g = ops_has(gamma), affine_b = ops_has(beta);
    const ops_vec_kernels *k = ops_vec();
    int64_t tile = lnc_tile(C), tiles = (HW + tile - 1) / tile;
    #pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * tiles; bt++) {
        int64_t b = bt / tiles, p0 = (bt % tiles) * tile, np = ops_min64(tile, HW - p0);
        const float *xs = x + b * C * HW + p0;
        float mean[LNC_TILE], rstd[LNC_TILE];
        _Alignas(64) float buf[LNT_CB * LNC_TILE];
        lnc_stats(k, xs, HW, C, np, eps, mean, rstd);
        for (int64_t c0 = 0; c0 < C; c0 += LNT_CB) {
            int64_t cb = ops_min64(LNT_CB, C - c0);
            for (int64_t c = 0; c < cb; c++) {
                float g = affine_g ? ops_wget(gamma, c0 + c) : 1.0f, bb = affine_b ? ops_wget(beta, c0 + c) : 0.0f;
                float *row = tokens ? buf + c * LNC_TILE : y + (b * C + c0 + c) * HW + p0;
                k->norm_row(row, xs + (c0 + c) * HW, np, mean, rstd, g, bb);
            }
            if (!tokens) continue;
            float *ys = y + (b * HW + p0) * C + c0;
            for (int64_t p = 0; p < np; p++)
                for (int64_t c = 0; c < cb; c++) ys[p * C + c] = buf[c * LNC_TILE + p];
        }
    }
}

void ld_layer_norm_channels(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps,
                            const ld_tensor *gamma, const ld_tensor *beta) {
    lnc_apply(y, x, B, C, HW, eps, gamma, beta, 0);
}

void ld_layer_norm_channels_tokens(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps) {
    lnc_apply(y, x, B, C, HW, eps, NULL, NULL, 1);
}

void ld_layer_norm_channels_stats(float *mean, float *rstd, const float *x, int64_t B, int64_t C, int64_t HW,
                                  float eps) {
    const ops_vec_kernels *k = ops_vec();
    int64_t tile = lnc_tile(C), tiles = (HW + tile - 1) / tile;
    #pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * tiles; bt++) {
        int64_t b = bt / tiles, p0 = (bt % tiles) * tile, np = ops_min64(tile, HW - p0);
        lnc_stats(k, x + b * C * HW + p0, HW, C, np, eps, mean + b * HW + p0, rstd + b * HW + p0);
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
