/* Backward of GroupNorm and LayerNorm (see grad_ops.h). The statistics are
 * recomputed from x in double (as the forwards compute them), so nothing but
 * x has to be kept. With xhat = (x - mean) * rstd and g = dy * gamma:
 *     dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *     dgamma += sum dy * xhat,  dbeta += sum dy
 * Every sum is taken by one thread in a fixed order. */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"
#include "train/grad_scratch.h"

#include <math.h>
#include <stdlib.h>

/* mean and rstd of n values, two-pass with double sums */
static void stats(const float *x, int64_t n, float eps, double *mean, double *rstd) {
    double s = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    const double m = s / (double)n;
    const float mf = (float)m;
    double ss = 0;
    #pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)(x[i] - mf);
        ss += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(ss / (double)n + (double)eps);
}

/* sum dy and sum dy * (x - mean) over n values */
static void dot_sums(const float *dy, const float *x, int64_t n, float mean, double *sdy, double *sdyx) {
    double a = 0, b = 0;
    #pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        a += dy[i];
        b += (double)(dy[i] * (x[i] - mean));
    }
    *sdy = a;
    *sdyx = b;
}

int ld_group_norm_backward(const float *dy, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups,
                            float eps, const ld_tensor *gamma, float *dx, float *dgamma, float *dbeta) {
    const int64_t cpg = C / groups, n = cpg * HW;
    const int affine = ops_has(gamma);
    /* per (sample, channel) partial sums of dy*xhat and dy, reduced over samples below */
    double *part = NULL;
    if ((dgamma || dbeta) && !(part = grad_scratch_get(sizeof(double) * (size_t)(B * C * 2)))) return 0;
    #pragma omp parallel for schedule(static)
    for (int64_t bg = 0; bg < B * groups; bg++) {
        const int64_t g = bg % groups, b = bg / groups;
        const float *xs = x + bg * n, *gs = dy + bg * n;
        double mean, rstd;
        stats(xs, n, eps, &mean, &rstd);
        double sum_g = 0, sum_gx = 0;
        const float mf = (float)mean, rf = (float)rstd;
        for (int64_t c = 0; c < cpg; c++) {
            const int64_t ch = g * cpg + c;
            const double ga = affine ? ops_wget(gamma, ch) : 1.0;
            double sdy, sdyx;
            dot_sums(gs + c * HW, xs + c * HW, HW, mf, &sdy, &sdyx);
            sdyx *= rstd; /* sum dy * xhat */
            sum_g += ga * sdy;
            sum_gx += ga * sdyx;
            if (part) {
                part[(b * C + ch) * 2] = sdyx;
                part[(b * C + ch) * 2 + 1] = sdy;
            }
        }
        if (!dx) continue;
        const float mg = (float)(sum_g / (double)n), mgx = (float)(sum_gx / (double)n);
        float *ds = dx + bg * n;
        for (int64_t c = 0; c < cpg; c++) {
            const int64_t ch = g * cpg + c;
            const float ga = affine ? ops_wget(gamma, ch) : 1.0f;
            const float *xc = xs + c * HW, *gc = gs + c * HW;
            float *dc = ds + c * HW;
            #pragma omp simd
            for (int64_t i = 0; i < HW; i++) dc[i] += rf * (ga * gc[i] - mg - (xc[i] - mf) * rf * mgx);
        }
    }
    if (part) {
        for (int64_t c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int64_t b = 0; b < B; b++) {
                sg += part[(b * C + c) * 2];
                sb += part[(b * C + c) * 2 + 1];
            }
            if (dgamma) dgamma[c] += (float)sg;
            if (dbeta) dbeta[c] += (float)sb;
        }
        grad_scratch_put(part);
    }
    return 1;
}

/* Columns of dgamma/dbeta one thread sums over all rows. */
#define LN_COLS 64

int ld_layer_norm_backward(const float *dy, const float *x, int64_t rows, int64_t dim, float eps,
                            const ld_tensor *gamma, float *dx, float *dgamma, float *dbeta) {
    const int affine = ops_has(gamma);
    double *ms = grad_scratch_get(sizeof(double) * 2 * (size_t)(rows ? rows : 1));
    float *ga = grad_scratch_get(sizeof(float) * (size_t)dim);
    if (!ms || !ga) {
        grad_scratch_put(ms);
        grad_scratch_put(ga);
        return 0;
    }
    for (int64_t i = 0; i < dim; i++) ga[i] = affine ? ops_wget(gamma, i) : 1.0f;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim, *gr = dy + r * dim;
        double mean, rstd;
        stats(xr, dim, eps, &mean, &rstd);
        ms[2 * r] = mean;
        ms[2 * r + 1] = rstd;
        if (!dx) continue;
        const float mf = (float)mean, rf = (float)rstd;
        double sg = 0, sgx = 0;
        #pragma omp simd reduction(+ : sg, sgx)
        for (int64_t i = 0; i < dim; i++) {
            const float gv = gr[i] * ga[i];
            sg += gv;
            sgx += (double)(gv * (xr[i] - mf));
        }
        const float mg = (float)(sg / (double)dim), mgx = (float)(sgx * rstd / (double)dim);
        float *dr = dx + r * dim;
        #pragma omp simd
        for (int64_t i = 0; i < dim; i++) dr[i] += rf * (gr[i] * ga[i] - mg - (xr[i] - mf) * rf * mgx);
    }
    if (dgamma || dbeta) {
        #pragma omp parallel for schedule(static)
        for (int64_t c0 = 0; c0 < dim; c0 += LN_COLS) {
            const int64_t c1 = c0 + LN_COLS < dim ? c0 + LN_COLS : dim;
            double sg[LN_COLS] = {0}, sb[LN_COLS] = {0};
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * dim, *gr = dy + r * dim;
                const double mean = ms[2 * r], rstd = ms[2 * r + 1];
                for (int64_t c = c0; c < c1; c++) {
                    sg[c - c0] += (double)gr[c] * (xr[c] - mean) * rstd;
                    sb[c - c0] += gr[c];
                }
            }
            for (int64_t c = c0; c < c1; c++) {
                if (dgamma) dgamma[c] += (float)sg[c - c0];
                if (dbeta) dbeta[c] += (float)sb[c - c0];
            }
        }
    }
    grad_scratch_put(ms);
    grad_scratch_put(ga);
    return 1;
}
