/* Backward of the 2-D convolution (see grad_ops.h), on the implicit-GEMM
 * path of the forward: no im2col buffer is built in either direction.
 *
 *   dw[Cout, Cin*kh*kw] += dy_b[Cout, Ho*Wo] . patches(x_b)^T
 *       B operand (pixel, patch row) packed straight from x_b;
 *   dx_b[Cin, H*W]      += w^T[Cin, Cout*kh*kw] . taps(dy_b)
 *       taps((co, ky, kx), (iy, ix)) = dy_b[co, oy, ox] where
 *       iy = oy*stride - pad + ky*dil (0 where no such oy exists): the
 *       transposed convolution, read straight from dy_b.
 * Images are processed one after another, so dw sums in a fixed order. */
#include "train/grad_ops.h"

#include "tensor/gemm_kernels.h"
#include "train/grad_scratch.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *p; /* x_b (patches) or dy_b (taps) */
    int64_t C, H, W; /* planes of p */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t Ho, Wo; /* the other side's size: forward output (patches) or input (taps) */
} conv_view;

/* dst[kk*ld + jj] = x_b[ci, iy, ix] for pixel k0+kk of the output and patch
 * row j0+jj = (ci*kh + ky)*kw + kx. The pixels are taken PATCH_ROWS at a
 * time, so the columns written one after another stay in L1, and a row of
 * output pixels at a time (one division per row, not per element). */
#define PATCH_ROWS 64
static void patches_t_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const conv_view *s = user;
    const int64_t khw = s->kh * s->kw;
    for (int64_t kb = 0; kb < kc; kb += PATCH_ROWS) {
        const int64_t end = k0 + (kc - kb < PATCH_ROWS ? kc : kb + PATCH_ROWS);
        for (int64_t jj = 0; jj < n; jj++) {
            const int64_t r = j0 + jj, ci = r / khw, ky = (r % khw) / s->kw, kx = r % s->kw;
            const float *plane = s->p + ci * s->H * s->W;
            const int64_t xoff = kx * s->dw - s->pw;
            float *d = dst + kb * ld + jj;
            for (int64_t k = k0 + kb; k < end;) {
                const int64_t oy = k / s->Wo, ox0 = k % s->Wo, len = s->Wo - ox0 < end - k ? s->Wo - ox0 : end - k;
                const int64_t iy = oy * s->sh - s->ph + ky * s->dh;
                if (iy < 0 || iy >= s->H) {
                    for (int64_t t = 0; t < len; t++) d[t * ld] = 0.0f;
                } else {
                    const float *row = plane + iy * s->W;
                    for (int64_t t = 0; t < len; t++) {
                        const int64_t ix = (ox0 + t) * s->sw + xoff;
                        d[t * ld] = ix >= 0 && ix < s->W ? row[ix] : 0.0f;
                    }
                }
                d += len * ld, k += len;
            }
        }
    }
}

/* dst[kk*ld + jj] = taps(k0+kk, j0+jj): see the top of the file. Here p is
 * dy_b with planes H x W = Ho_fwd x Wo_fwd, and (Ho, Wo) the input size. */
static void taps_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const conv_view *s = user;
    const int64_t khw = s->kh * s->kw;
    for (int64_t kk = 0; kk < kc; kk++) {
        const int64_t k = k0 + kk, co = k / khw, ky = (k % khw) / s->kw, kx = k % s->kw;
        const float *plane = s->p + co * s->H * s->W;
        float *d = dst + kk * ld;
        int64_t j = j0;
        const int64_t end = j0 + n;
        while (j < end) {
            const int64_t iy = j / s->Wo, ix0 = j % s->Wo;
            const int64_t len = s->Wo - ix0 < end - j ? s->Wo - ix0 : end - j;
            float *o = d + (j - j0);
            const int64_t ty = iy + s->ph - ky * s->dh;
            if (ty < 0 || ty % s->sh || ty / s->sh >= s->H) {
                for (int64_t t = 0; t < len; t++) o[t] = 0.0f;
            } else {
                const float *row = plane + (ty / s->sh) * s->W;
                const int64_t off = s->pw - kx * s->dw; /* tx = ix + off */
                if (s->sw == 1) { /* tx in [0, W): one copy between two runs of zeros */
                    int64_t lo = -off - ix0, hi = s->W - off - ix0;
                    lo = lo < 0 ? 0 : lo > len ? len : lo;
                    hi = hi < lo ? lo : hi > len ? len : hi;
                    memset(o, 0, sizeof(float) * (size_t)lo);
                    if (hi > lo) memcpy(o + lo, row + ix0 + lo + off, sizeof(float) * (size_t)(hi - lo));
                    memset(o + hi, 0, sizeof(float) * (size_t)(len - hi));
                } else {
                    for (int64_t t = 0; t < len; t++) {
                        const int64_t tx = ix0 + t + off;
                        o[t] = tx >= 0 && tx % s->sw == 0 && tx / s->sw < s->W ? row[tx / s->sw] : 0.0f;
                    }
                }
            }
            j += len;
        }
    }
}

int ld_conv2d_backward(const float *dy, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W,
                       const ld_tensor *w, const ld_conv2d_params *p, float *dx, float *dw, float *db) {
    const int64_t Cout = w->shape[0], kh = w->shape[2], kw = w->shape[3], khw = kh * kw, K = Cin * khw;
    const int64_t Ho = ld_conv2d_out_dim(H, kh, p->stride_h, p->pad_h, p->dilation_h);
    const int64_t Wo = ld_conv2d_out_dim(W, kw, p->stride_w, p->pad_w, p->dilation_w);
    const int64_t HWo = Ho * Wo, HW = H * W;
    if (db) ld_channel_sum_backward(db, dy, B, Cout, HWo);
    const int pointwise = kh == 1 && kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    float *wt = NULL;
    if (dx && !pointwise) { /* w^T as f32 [Cin, Cout*kh*kw]: wt[ci, co*khw + t] = w[co, ci, t] */
        /* WT_ROWS rows of w converted at a time, then written out ci by ci in
         * runs of WT_ROWS*khw contiguous floats (row reads and runs of writes
         * instead of a strided walk of the whole weight per input channel) */
        enum { WT_ROWS = 8 };
        const ld_gemm_convert_fn simd = ld_gemm_kernel_f32()->convert; /* f16/bf16 on F16C, AVX-512 or NEON */
        const ld_gemm_convert_fn conv = simd ? simd : ld_convert_to_f32;
        const int nt = omp_get_max_threads();
        wt = grad_scratch_get(sizeof(float) * (size_t)(Cout * K));
        float *rows = wt ? grad_scratch_get(sizeof(float) * (size_t)(WT_ROWS * K * nt)) : NULL;
        if (!rows) {
            grad_scratch_put(wt);
            return 0;
        }
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t co0 = 0; co0 < Cout; co0 += WT_ROWS) {
            const int64_t nr = Cout - co0 < WT_ROWS ? Cout - co0 : WT_ROWS;
            float *r = rows + (size_t)omp_get_thread_num() * WT_ROWS * K;
            conv(r, w->data, w->dtype, co0 * K, nr * K);
            for (int64_t ci = 0; ci < Cin; ci++) {
                float *dst = wt + ci * Cout * khw + co0 * khw;
                for (int64_t i = 0; i < nr; i++)
                    memcpy(dst + i * khw, r + i * K + ci * khw, sizeof(float) * (size_t)khw);
            }
        }
        grad_scratch_put(rows);
    }
    for (int64_t b = 0; b < B; b++) {
        const float *dyb = dy + b * Cout * HWo, *xb = x + b * Cin * HW;
        if (dw) {
            ld_mat A = ld_mat_f32(dyb, HWo, 1);
            if (pointwise) {
                ld_mat Bm = ld_mat_f32(xb, 1, HW);
                ld_gemm(Cout, K, HWo, &A, &Bm, dw, K, 1.0f, NULL, NULL);
            } else {
                conv_view s = {xb, Cin, H, W, kh, kw, p->stride_h, p->stride_w, p->pad_h, p->pad_w,
                               p->dilation_h, p->dilation_w, Ho, Wo};
                ld_gemm_bfill f = {patches_t_fill, &s};
                ld_gemm_fill_b(Cout, K, HWo, &A, &f, dw, K, 1.0f, NULL, NULL);
            }
        }
        if (dx) {
            ld_mat A = ld_mat_f32(wt, Cout * khw, 1);
            float *dxb = dx + b * Cin * HW;
            if (pointwise) { /* w^T read in place: A(ci, co) = w[co, ci], any weight dtype */
                A = (ld_mat){w->dtype, w->data, 1, Cin};
                ld_mat Bm = ld_mat_f32(dyb, HWo, 1);
                ld_gemm(Cin, HW, Cout, &A, &Bm, dxb, HW, 1.0f, NULL, NULL);
            } else {
                conv_view s = {dyb, Cout, Ho, Wo, kh, kw, p->stride_h, p->stride_w, p->pad_h, p->pad_w,
                               p->dilation_h, p->dilation_w, H, W};
                ld_gemm_bfill f = {taps_fill, &s};
                ld_gemm_fill_b(Cin, HW, Cout * khw, &A, &f, dxb, HW, 1.0f, NULL, NULL);
            }
        }
    }
    grad_scratch_put(wt);
    return 1;
}
