/* Backward of the elementwise activations and of nearest upsampling (see
 * grad_ops.h). GELU is the exact (erf) form GEGLU uses:
 *     gelu(g) = g * Phi(g),  gelu'(g) = Phi(g) + g * phi(g). */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"

#include <math.h>

void ld_silu_backward(const float *dy, const float *x, int64_t n, float *dx) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void ld_geglu_backward(const float *dy, const float *x, int64_t rows, int64_t d, float *dx) {
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt2pi = 0.39894228040143268f;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * d, *g = a + d, *dr = dy + r * d;
        float *da = dx + r * 2 * d, *dg = da + d;
        for (int64_t i = 0; i < d; i++) {
            const float cdf = 0.5f * (1.0f + erff(g[i] * inv_sqrt2));
            const float pdf = inv_sqrt2pi * expf(-0.5f * g[i] * g[i]);
            da[i] += dr[i] * g[i] * cdf;
            dg[i] += dr[i] * a[i] * (cdf + g[i] * pdf);
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
