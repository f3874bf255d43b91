/* Resampling of NCHW f32 images (see ops.h), following PyTorch's CPU
 * kernels step by step in float so results agree to rounding:
 *  - nearest:   src = min(floor(dst * (in/out)), in-1), scale in float;
 *  - bilinear, align_corners=True: src = dst * (in-1)/(out-1), the two
 *    neighbours weighted, width inside height;
 *  - antialiased bicubic (_upsample_bicubic2d_aa): Keys cubic a = -0.5 whose
 *    support is stretched by the scale when downsampling; each output pixel
 *    takes the input window [center-support+0.5, center+support+0.5) clipped to
 *    the image, weights normalized to sum 1. Width pass, then height pass.
 *    Here each output pixel computes its width-pass values on the fly, in the
 *    same order, so no intermediate image is needed.
 * All split over output rows; results do not depend on the thread count. */
#include "tensor/ops_internal.h"

#include <math.h>
#include <stdlib.h>

void ld_upsample_nearest(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                         int64_t Wo) {
    float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    #pragma omp parallel for schedule(static) if (B * C * Ho * Wo > 16384)
    for (int64_t row = 0; row < B * C * Ho; row++) {
        int64_t bc = row / Ho, oy = row % Ho;
        /* the products are >= 0, so truncation is floor */
        int64_t iy = ops_min64((int64_t)((float)oy * sh), H - 1);
        const float *xr = x + (bc * H + iy) * W;
        float *yr = y + row * Wo;
        for (int64_t ox = 0; ox < Wo; ox++) yr[ox] = xr[ops_min64((int64_t)((float)ox * sw), W - 1)];
    }
}

/* Source index and the weight of the second neighbour for align_corners=True. */
static void linear_ac(int64_t dst, float scale, int64_t in, int64_t *i0, int64_t *i1, float *l1) {
    float src = scale * (float)dst;
    int64_t i = (int64_t)src;
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    *l1 = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
}

void ld_resize_bilinear_ac(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                           int64_t Wo) {
    float sh = Ho > 1 ? (float)(H - 1) / (float)(Ho - 1) : 0.0f;
    float sw = Wo > 1 ? (float)(W - 1) / (float)(Wo - 1) : 0.0f;
    #pragma omp parallel for schedule(static) if (B * C * Ho * Wo > 16384)
    for (int64_t row = 0; row < B * C * Ho; row++) {
        int64_t bc = row / Ho, oy = row % Ho, y0, y1;
        float hl1;
        linear_ac(oy, sh, H, &y0, &y1, &hl1);
        float hl0 = 1.0f - hl1;
        const float *r0 = x + (bc * H + y0) * W, *r1 = x + (bc * H + y1) * W;
        float *yr = y + row * Wo;
        for (int64_t ox = 0; ox < Wo; ox++) {
            int64_t x0, x1;
            float wl1;
            linear_ac(ox, sw, W, &x0, &x1, &wl1);
            float wl0 = 1.0f - wl1;
            yr[ox] = (r0[x0] * wl0 + r0[x1] * wl1) * hl0 + (r1[x0] * wl0 + r1[x1] * wl1) * hl1;
        }
    }
}

/* ---- antialiased bicubic ---- */

static float keys_cubic(float x) {
    const float a = -0.5f;
    x = fabsf(x);
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
    return 0.0f;
}

/* One axis: for each output index its window start, length and normalized
 * weights (at most `maxw` each, stored at w[o*maxw]). */
static void aa_weights(int64_t in, int64_t out, int align_corners, int64_t maxw, int64_t *start, int64_t *len,
                       float *w) {
    float scale = align_corners ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
    float invscale = scale >= 1.0f ? (float)(1.0 / (double)scale) : 1.0f;
    for (int64_t o = 0; o < out; o++) {
        float center = (float)((double)scale * ((double)o + 0.5));
        int64_t lo = (int64_t)((double)(center - support) + 0.5);
        int64_t hi = (int64_t)((double)(center + support) + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int64_t n = hi - lo;
        if (n > maxw) n = maxw;
        if (n < 0) n = 0;
        float *wo = w + o * maxw, total = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float arg = (float)(((double)((float)(j + lo) - center) + 0.5) * invscale);
            wo[j] = keys_cubic(arg);
            total += wo[j];
        }
        if (total != 0.0f)
            for (int64_t j = 0; j < n; j++) wo[j] /= total;
        start[o] = lo;
        len[o] = n;
    }
}

static int64_t aa_max_taps(int64_t in, int64_t out, int align_corners) {
    float scale = align_corners ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
    int64_t m = (int64_t)ceilf(support) * 2 + 1;
    return m < in ? m : in;
}

void ld_resize_bicubic_aa(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo, int align_corners) {
    if (B * C * Ho * Wo <= 0) return;
    int64_t mw = aa_max_taps(W, Wo, align_corners), mh = aa_max_taps(H, Ho, align_corners);
    int64_t *xs = malloc((size_t)(Wo + Ho) * 2 * sizeof(int64_t));
    float *wx = malloc((size_t)(Wo * mw + Ho * mh) * sizeof(float));
    if (!xs || !wx) {
        ld_log_error("resize_bicubic_aa: cannot allocate the weight tables");
        memset(y, 0, (size_t)(B * C * Ho * Wo) * sizeof(float));
        free(xs);
        free(wx);
        return;
    }
    int64_t *xlen = xs + Wo, *ys = xlen + Wo, *ylen = ys + Ho;
    float *wy = wx + Wo * mw;
    aa_weights(W, Wo, align_corners, mw, xs, xlen, wx);
    aa_weights(H, Ho, align_corners, mh, ys, ylen, wy);
    #pragma omp parallel for schedule(static) if (B * C * Ho * Wo > 4096)
    for (int64_t row = 0; row < B * C * Ho; row++) {
        int64_t bc = row / Ho, oy = row % Ho;
        const float *plane = x + bc * H * W, *wyo = wy + oy * mh;
        float *yr = y + row * Wo;
        for (int64_t ox = 0; ox < Wo; ox++) {
            const float *wxo = wx + ox * mw;
            float acc = 0.0f;
            for (int64_t t = 0; t < ylen[oy]; t++) {
                const float *src = plane + (ys[oy] + t) * W + xs[ox];
                float h = 0.0f; /* the width pass value at input row ys+t */
                for (int64_t u = 0; u < xlen[ox]; u++) h = u ? h + src[u] * wxo[u] : src[0] * wxo[0];
                acc = t ? acc + h * wyo[t] : h * wyo[0];
            }
            yr[ox] = acc;
        }
    }
    free(xs);
    free(wx);
}
