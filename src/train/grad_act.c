/* Backward of the elementwise activations and of nearest upsampling (see
 * grad_ops.h). GELU is the exact (erf) form GEGLU uses:
 *     gelu(g) = g * Phi(g),  gelu'(g) = Phi(g) + g * phi(g).
 * sigmoid, Phi and exp come from the forwards' vector kernels, a chunk of a
 * row at a time, so an element's result does not depend on the threads. */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"


/* Elements of a chunk one thread works on with the vector kernels (stack buffers). */
#define CHUNK 1024

void ld_silu_backward(const float *dy, const float *x, int64_t n, float *dx) {
    const int64_t nc = (n + CHUNK - 1) / CHUNK;
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t i0 = c * CHUNK, m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float s[CHUNK];
        ops_act_serial(OPS_ACT_SIGMOID, s, x + i0, m);
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) dx[i0 + i] += dy[i0 + i] * s[i] * (1.0f + x[i0 + i] * (1.0f - s[i]));
    }
}

void ld_geglu_backward(const float *dy, const float *x, int64_t rows, int64_t d, float *dx) {
    const float inv_sqrt2pi = 0.39894228040143268f;
    const int64_t nc = (d + CHUNK - 1) / CHUNK;
    #pragma omp parallel for schedule(static)
    for (int64_t rc = 0; rc < rows * nc; rc++) {
        const int64_t r = rc / nc, i0 = rc % nc * CHUNK, m = d - i0 < CHUNK ? d - i0 : CHUNK;
        const float *a = x + r * 2 * d + i0, *g = a + d, *dr = dy + r * d + i0;
        float *da = dx + r * 2 * d + i0, *dg = da + d;
        float cdf[CHUNK], pdf[CHUNK];
        ops_act_serial(OPS_ACT_NORMCDF, cdf, g, m);
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) pdf[i] = -0.5f * g[i] * g[i];
        ops_act_serial(OPS_ACT_EXP, pdf, pdf, m);
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) {
            da[i] += dr[i] * g[i] * cdf[i];
            dg[i] += dr[i] * a[i] * (cdf[i] + g[i] * inv_sqrt2pi * pdf[i]);
        }
    }
}

void ld_upsample_nearest_backward(const float *dy, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                                  int64_t Wo, float *dx) {
    /* the forward's source index, computed the same way (float scale, floor) */
    const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    #pragma omp parallel for schedule(static)
    for (int64_t bc = 0; bc < B * C; bc++) {
        const float *src = dy + bc * Ho * Wo;
        float *dst = dx + bc * H * W;
        for (int64_t oy = 0; oy < Ho; oy++) {
            const int64_t iy = ops_min64((int64_t)((float)oy * sh), H - 1);
            for (int64_t ox = 0; ox < Wo; ox++)
                dst[iy * W + ops_min64((int64_t)((float)ox * sw), W - 1)] += src[oy * Wo + ox];
        }
    }
}
