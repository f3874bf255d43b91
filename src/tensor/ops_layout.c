/* Layout ops: NCHW <-> NHWC, channel concatenation, pixel (un)shuffle
 * (see ops.h). Pure data movement, split over threads by output rows. */
#include "tensor/ops_internal.h"

/* Square tile for the transposes, so both sides stay in cache. */
#define TT 32

static void transpose_batch(float *y, const float *x, int64_t B, int64_t R, int64_t Cc) {
    /* y[b, c, r] = x[b, r, c] for x [B, R, Cc] */
    int64_t tr = (R + TT - 1) / TT, tc = (Cc + TT - 1) / TT;
    #pragma omp parallel for schedule(static) if (B * R * Cc > 16384)
    for (int64_t t = 0; t < B * tr * tc; t++) {
        int64_t b = t / (tr * tc), r0 = (t / tc % tr) * TT, c0 = (t % tc) * TT;
        const float *xs = x + b * R * Cc;
        float *ys = y + b * R * Cc;
        int64_t r1 = ops_min64(R, r0 + TT), c1 = ops_min64(Cc, c0 + TT);
        for (int64_t c = c0; c < c1; c++)
            for (int64_t r = r0; r < r1; r++) ys[c * R + r] = xs[r * Cc + c];
    }
}

void ld_nchw_to_nhwc(float *y, const float *x, int64_t B, int64_t C, int64_t HW) { transpose_batch(y, x, B, C, HW); }

void ld_nhwc_to_nchw(float *y, const float *x, int64_t B, int64_t C, int64_t HW) { transpose_batch(y, x, B, HW, C); }

void ld_concat_channels(float *y, const float *a, int64_t Ca, const float *b, int64_t Cb, int64_t B, int64_t HW) {
    int64_t C = Ca + Cb;
    #pragma omp parallel for schedule(static) if (B * C * HW > 16384)
    for (int64_t bc = 0; bc < B * C; bc++) {
        int64_t bi = bc / C, c = bc % C;
        const float *src = c < Ca ? a + (bi * Ca + c) * HW : b + (bi * Cb + (c - Ca)) * HW;
        memcpy(y + bc * HW, src, (size_t)HW * sizeof(float));
    }
}

/* out[b, c, h*r+i, w*r+j] = in[b, c*r*r + i*r + j, h, w] */
void ld_pixel_shuffle(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int r) {
    int64_t Co = C / ((int64_t)r * r), Ho = H * r, Wo = W * r;
    #pragma omp parallel for schedule(static) if (B * C * H * W > 16384)
    for (int64_t row = 0; row < B * Co * Ho; row++) {
        int64_t bc = row / Ho, oh = row % Ho, h = oh / r, i = oh % r;
        int64_t b = bc / Co, c = bc % Co;
        float *yo = y + row * Wo;
        const float *xb = x + ((b * C + c * r * r + i * r) * H + h) * W;
        for (int64_t ow = 0; ow < Wo; ow++) yo[ow] = xb[(ow % r) * H * W + ow / r];
    }
}

/* out[b, c*r*r + i*r + j, h, w] = in[b, c, h*r+i, w*r+j] */
void ld_pixel_unshuffle(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int r) {
    int64_t Ho = H / r, Wo = W / r, Co = C * r * r;
    #pragma omp parallel for schedule(static) if (B * C * H * W > 16384)
    for (int64_t row = 0; row < B * Co * Ho; row++) {
        int64_t bco = row / Ho, oh = row % Ho, b = bco / Co, co = bco % Co;
        int64_t c = co / (r * r), i = co % (r * r) / r, j = co % r;
        const float *xr = x + ((b * C + c) * H + oh * r + i) * W + j;
        float *yo = y + row * Wo;
        for (int64_t ow = 0; ow < Wo; ow++) yo[ow] = xr[ow * r];
    }
}
