/* 2-D convolution and transposed convolution over NCHW f32 activations with
 * f32/f16/bf16 weights (see ops.h for the contracts).
 *
 * ld_conv2d picks one of four paths:
 *  - 1x1, stride 1, no padding: one ld_gemm per (batch, group) straight on
 *    the NCHW input (y_b = W x_b), no copy at all;
 *  - one input channel per group (depthwise and the like): a direct loop,
 *    one output plane per thread, all taps added into one output row at a
 *    time (contiguous inner loops over output columns); the common 3x3,
 *    stride 1, padding 1 case runs on zero-padded rows with the vector
 *    kernel of ops_vec() (same sums, same order);
 *  - 3x3, stride 1, padding 1, one group, at least 32 channels in and out:
 *    Winograd F(4x4, 3x3) (f32 products over enough tiles, 1/4 of the
 *    products) or F(2x2, 3x3) (4/9; ops_conv_winograd.c), unless the thread
 *    asked for the direct sums (ld_conv_set_direct: training) or
 *    LEANDIFF_WINOGRAD=0;
 *  - everything else: implicit GEMM through ld_gemm_fill_b + ld_im2col_fill
 *    (gemm.h): the GEMM packs its bounded tiles of the virtual im2col matrix
 *    straight from the NCHW input, so no im2col buffer exists at all.
 * ld_conv_transpose2d computes col = W^T x for tiles of input rows with
 * ld_gemm (scratch at most CONV_TILE_FLOATS) and scatters col into y, each
 * output channel owned by one thread; if the scratch cannot be allocated it
 * falls back to a direct loop. Results do not depend on the thread count. */
#include "tensor/ops_internal.h"
#include "base/flops.h"

#include <stdlib.h>

/* Fewest input and output channels the Winograd path takes (below, the
 * transforms cost more than the products save). */
#define WINOGRAD_MIN_CHANNELS 32

/* Bound of ld_conv_transpose2d's column scratch, in floats (4 MiB). */
#define CONV_TILE_FLOATS (1 << 20)

ld_conv2d_params ld_conv2d_params_make(int stride, int pad) {
    ld_conv2d_params p;
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = pad;
    p.dilation_h = p.dilation_w = 1;
    p.groups = 1;
    p.replicate_pad = 0;
    return p;
}

int64_t ld_conv2d_out_dim(int64_t in, int64_t kernel, int stride, int pad, int dilation) {
    return (in + 2 * (int64_t)pad - (int64_t)dilation * (kernel - 1) - 1) / stride + 1;
}

/* Range [lo, hi) of output columns whose input column ox*s - pad + off lies in [0, W). */
static void valid_range(int64_t Wo, int64_t W, int s, int64_t off, int64_t *lo, int64_t *hi) {
    /* ix = ox*s + off - pad folded into off */
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = (W - 1 - off) >= 0 ? (W - 1 - off) / s + 1 : 0;
    if (a > Wo) a = Wo;
    if (b > Wo) b = Wo;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* Direct convolution: any parameters; used for one-input-channel groups (and
 * by the tests for every case). One (batch, output channel) plane per iteration. */
void ops_conv2d_direct(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                          const ld_tensor *bias, const ld_conv2d_params *p, int64_t Ho, int64_t Wo) {
    int64_t Cout = w->shape[0], cin_g = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t cout_g = Cout / p->groups;
    int sh = p->stride_h, sw = p->stride_w;
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < B * Cout; bo++) {
        int64_t b = bo / Cout, oc = bo % Cout, g = oc / cout_g;
        float bv = ops_has(bias) ? ops_wget(bias, oc) : 0.0f;
        const float *xb = x + (b * Cin + g * cin_g) * H * W;
        for (int64_t oy = 0; oy < Ho; oy++) { /* one output row stays in L1 while all taps add into it */
            float *yr = y + bo * Ho * Wo + oy * Wo;
            for (int64_t ox = 0; ox < Wo; ox++) yr[ox] = bv;
            for (int64_t ic = 0; ic < cin_g; ic++)
                for (int64_t ky = 0; ky < kh; ky++) {
                    int64_t iy = oy * sh - p->pad_h + ky * p->dilation_h;
                    if (iy < 0 || iy >= H) {
                        if (!p->replicate_pad) continue;
                        iy = iy < 0 ? 0 : H - 1;
                    }
                    const float *xr = xb + (ic * H + iy) * W;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        float wv = ops_wget(w, ((oc * cin_g + ic) * kh + ky) * kw + kx);
                        int64_t xoff = kx * p->dilation_w - p->pad_w; /* ix = ox*sw + xoff */
                        int64_t lo, hi;
                        valid_range(Wo, W, sw, xoff, &lo, &hi);
                        if (p->replicate_pad) {
                            for (int64_t ox = 0; ox < lo; ox++) yr[ox] += wv * xr[0];
                            for (int64_t ox = hi; ox < Wo; ox++) yr[ox] += wv * xr[W - 1];
                        }
                        if (sw == 1 && hi > lo) {
                            const float *xs = xr + lo + xoff; /* ix of ox = lo, inside the row */
                            float *ys = yr + lo;
                            #pragma omp simd
                            for (int64_t t = 0; t < hi - lo; t++) ys[t] += wv * xs[t];
                        } else if (sw != 1) {
                            for (int64_t ox = lo; ox < hi; ox++) yr[ox] += wv * xr[ox * sw + xoff];
                        }
                    }
                }
        }
    }
}

/* Widest row the 3x3 depthwise path handles (its padded rows are on the stack). */
#define DW3_MAXW 2048

/* One input row into a ring slot: one column of padding on the left and
 * at least one on the right (zeros, or the edge pixels with replicate),
 * zeros up to Wp after that. */
static void dw3_pad_row(float *r, const float *src, int64_t W, int64_t Wp, int replicate) {
    r[0] = replicate ? src[0] : 0.0f;
    memcpy(r + 1, src, (size_t)W * sizeof(float));
    r[1 + W] = replicate ? src[W - 1] : 0.0f;
    memset(r + 2 + W, 0, (size_t)(Wp - W - 2) * sizeof(float));
}

/* 3x3, stride 1, padding 1 (zeros or replicated edges), one input channel
 * per group: each output row from three padded input rows kept in a ring
 * (every input row is padded once per plane) by the vector kernel
 * ops_vec()->dw3_row. The same sums in the same order as ops_conv2d_direct
 * (bias, then the taps in (ky, kx) order); zero padding adds w * 0, which
 * changes at most the sign of a zero. With replicate the rows above and
 * below the image are its first and last row, as in the direct loop. */
static void conv_dw3(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                     const ld_tensor *bias, int replicate) {
    const ops_vec_kernels *k = ops_vec();
    int64_t Cout = w->shape[0], cout_g = Cout / Cin, Wp = (W + 15) / 16 * 16 + 16;
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < B * Cout; bo++) {
        _Alignas(64) float ring[3][DW3_MAXW + 32];
        int64_t b = bo / Cout, oc = bo % Cout;
        float w9[9], bv = ops_has(bias) ? ops_wget(bias, oc) : 0.0f;
        for (int t = 0; t < 9; t++) w9[t] = ops_wget(w, oc * 9 + t);
        const float *xp = x + (b * Cin + oc / cout_g) * H * W;
        for (int64_t iy = 0; iy < H && iy < 2; iy++) /* rows 0 and 1; later rows as they are needed */
            dw3_pad_row(ring[iy], xp + iy * W, W, Wp, replicate);
        for (int64_t oy = 0; oy < H; oy++) {
            if (oy >= 1 && oy + 1 < H) dw3_pad_row(ring[(oy + 1) % 3], xp + (oy + 1) * W, W, Wp, replicate);
            const float *above = oy > 0 ? ring[(oy - 1) % 3] : replicate ? ring[0] : NULL;
            const float *below = oy + 1 < H ? ring[(oy + 1) % 3] : replicate ? ring[(H - 1) % 3] : NULL;
            const float *rows[3] = {above, ring[oy % 3], below};
            k->dw3_row(y + (bo * H + oy) * W, W, rows, w9, bv);
        }
    }
}

void ld_conv2d(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
               const ld_tensor *b, const ld_conv2d_params *p) {
    int64_t Cout = w->shape[0], cin_g = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t G = p->groups > 0 ? p->groups : 1, cout_g = Cout / G;
    int64_t Ho = ld_conv2d_out_dim(H, kh, p->stride_h, p->pad_h, p->dilation_h);
    int64_t Wo = ld_conv2d_out_dim(W, kw, p->stride_w, p->pad_w, p->dilation_w);
    int64_t HWo = Ho * Wo, K = cin_g * kh * kw;
    if (B <= 0 || Cout <= 0 || Ho <= 0 || Wo <= 0) return;
    int has_b = ops_has(b);

    if (kh == 1 && kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 && cin_g > 1) {
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t g = 0; g < G; g++) {
                ld_mat A = ops_wmat(w, g * cout_g * cin_g, cin_g, 1);
                ld_mat X = ld_mat_f32(x + (bi * Cin + g * cin_g) * H * W, H * W, 1);
                ld_tensor bias = has_b ? ops_wslice(b, g * cout_g, cout_g) : (ld_tensor){0};
                ld_gemm(cout_g, HWo, cin_g, &A, &X, y + (bi * Cout + g * cout_g) * HWo, HWo, 0.0f, NULL,
                        has_b ? &bias : NULL);
            }
        return;
    }
    if (cin_g == 1) {
        LD_FLOPS_COUNT(LD_FLOPS_DIRECT_CONV, 2 * B * Cout * Ho * Wo * kh * kw, 1, Cout, B * Ho * Wo, kh * kw);
        if (kh == 3 && kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 1 && p->pad_w == 1 &&
            p->dilation_h == 1 && p->dilation_w == 1 && W + 2 <= DW3_MAXW)
            conv_dw3(y, x, B, Cin, H, W, w, b, p->replicate_pad);
        else
            ops_conv2d_direct(y, x, B, Cin, H, W, w, b, p, Ho, Wo);
        return;
    }

    /* 3x3, stride 1, padding 1: Winograd (1/4 or 4/9 of the products) */
    if (kh == 3 && kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 1 && p->pad_w == 1 &&
        p->dilation_h == 1 && p->dilation_w == 1 && G == 1 && !p->replicate_pad && Cin >= WINOGRAD_MIN_CHANNELS &&
        Cout >= WINOGRAD_MIN_CHANNELS && ops_winograd_enabled() &&
        ops_conv3x3_winograd(y, x, B, Cin, H, W, w, b, 0, 0, 0))
        return;

    /* implicit GEMM: ld_gemm packs tiles of the virtual im2col matrix straight from NCHW */
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < G; g++) {
            ld_im2col src = {x + (bi * Cin + g * cin_g) * H * W, cin_g, H, W, kh, kw, p->stride_h, p->stride_w,
                             p->pad_h, p->pad_w, p->dilation_h, p->dilation_w, Ho, Wo, p->replicate_pad};
            ld_gemm_bfill fill = {ld_im2col_fill, &src};
            ld_mat A = ops_wmat(w, g * cout_g * K, K, 1);
            ld_tensor bias = has_b ? ops_wslice(b, g * cout_g, cout_g) : (ld_tensor){0};
            ld_gemm_fill_b(cout_g, HWo, K, &A, &fill, y + (bi * Cout + g * cout_g) * HWo, HWo, 0.0f, NULL,
                           has_b ? &bias : NULL);
        }
}

/* ---- transposed convolution ---- */

/* Direct scatter (fallback, and tested on every case): y already holds the bias. */
void ops_conv_transpose2d_direct(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                          int stride, int pad, int64_t Ho, int64_t Wo) {
    int64_t Cout = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < B * Cout; bo++) {
        int64_t b = bo / Cout, oc = bo % Cout;
        float *yp = y + bo * Ho * Wo;
        for (int64_t ic = 0; ic < Cin; ic++) {
            const float *xp = x + (b * Cin + ic) * H * W;
            for (int64_t ky = 0; ky < kh; ky++)
                for (int64_t kx = 0; kx < kw; kx++) {
                    float wv = ops_wget(w, ((ic * Cout + oc) * kh + ky) * kw + kx);
                    for (int64_t iy = 0; iy < H; iy++) {
                        int64_t oy = iy * stride - pad + ky;
                        if (oy < 0 || oy >= Ho) continue;
                        for (int64_t ix = 0; ix < W; ix++) {
                            int64_t ox = ix * stride - pad + kx;
                            if (ox >= 0 && ox < Wo) yp[oy * Wo + ox] += wv * xp[iy * W + ix];
                        }
                    }
                }
        }
    }
}

void ld_conv_transpose2d(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                         const ld_tensor *b, int stride, int pad) {
    int64_t Cout = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t Ho = (H - 1) * stride - 2 * (int64_t)pad + kh, Wo = (W - 1) * stride - 2 * (int64_t)pad + kw;
    if (B <= 0 || Cout <= 0 || Ho <= 0 || Wo <= 0) return;
    int has_b = ops_has(b);
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < B * Cout; bo++) {
        float v = has_b ? ops_wget(b, bo % Cout) : 0.0f;
        float *yp = y + bo * Ho * Wo;
        for (int64_t i = 0; i < Ho * Wo; i++) yp[i] = v;
    }
    int64_t Kc = Cout * kh * kw;
    int64_t R = CONV_TILE_FLOATS / (Kc * W); /* input rows per tile */
    if (R < 1) R = 1;
    if (R > H) R = H;
    float *col = malloc((size_t)(Kc * R * W) * sizeof(float));
    if (!col) {
        ld_log_warn("conv_transpose2d: no memory for a %lldx%lld column tile, using the direct loop", (long long)Kc,
                    (long long)(R * W));
        ops_conv_transpose2d_direct(y, x, B, Cin, H, W, w, stride, pad, Ho, Wo);
        return;
    }
    /* A(m, ic) = w[ic, m] with m = (oc, ky, kx) */
    ld_mat A = ops_wmat(w, 0, 1, Kc);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t r0 = 0; r0 < H; r0 += R) {
            int64_t nr = ops_min64(R, H - r0), np = nr * W;
            ld_mat X = ld_mat_f32(x + bi * Cin * H * W + r0 * W, H * W, 1);
            ld_gemm(Kc, np, Cin, &A, &X, col, np, 0.0f, NULL, NULL);
            #pragma omp parallel for schedule(static)
            for (int64_t oc = 0; oc < Cout; oc++) {
                float *yp = y + (bi * Cout + oc) * Ho * Wo;
                for (int64_t ky = 0; ky < kh; ky++)
                    for (int64_t kx = 0; kx < kw; kx++) {
                        const float *cr = col + ((oc * kh + ky) * kw + kx) * np;
                        int64_t lo, hi; /* ix with ox = ix*stride + kx - pad in [0, Wo) */
                        lo = kx - pad >= 0 ? 0 : (pad - kx + stride - 1) / stride;
                        hi = (Wo - 1 - kx + pad) >= 0 ? ops_min64(W, (Wo - 1 - kx + pad) / stride + 1) : 0;
                        for (int64_t iy = r0; iy < r0 + nr; iy++) {
                            int64_t oy = iy * stride - pad + ky;
                            if (oy < 0 || oy >= Ho) continue;
                            float *yr = yp + oy * Wo;
                            const float *c = cr + (iy - r0) * W;
                            int64_t o = kx - pad;
                            for (int64_t ix = lo; ix < hi; ix++) yr[ix * stride + o] += c[ix];
                        }
                    }
            }
        }
    free(col);
}
