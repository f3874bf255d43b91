/* Tests of ld_conv2d and ld_conv_transpose2d against direct loops written
 * plainly here (double accumulation): kernels 1x1..4x4, strides, padding,
 * dilation, groups (incl. depthwise), replicate padding, size-1 images,
 * a large implicit-GEMM case, f32/f16/bf16 weights, the direct loop on every
 * case, and 1 vs 2 threads bitwise. */
#include "base/flops.h"
#include "tensor/ops_internal.h"
#include "tensor/gemm_packed.h"
#include "test_ops_util.h"

#define TOL 1e-5

typedef struct {
    int64_t B, Cin, H, W, Cout, kh, kw;
    int sh, sw, ph, pw, dh, dw, groups, replicate, bias;
} conv_case;

static void ref_conv(float *y, const float *x, const float *w, const float *b, const conv_case *c, int64_t Ho,
                     int64_t Wo) {
    int64_t cin_g = c->Cin / c->groups, cout_g = c->Cout / c->groups;
    for (int64_t n = 0; n < c->B; n++)
        for (int64_t oc = 0; oc < c->Cout; oc++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = c->bias ? b[oc] : 0.0;
                    int64_t g = oc / cout_g;
                    for (int64_t ic = 0; ic < cin_g; ic++)
                        for (int64_t ky = 0; ky < c->kh; ky++)
                            for (int64_t kx = 0; kx < c->kw; kx++) {
                                int64_t iy = oy * c->sh - c->ph + ky * c->dh, ix = ox * c->sw - c->pw + kx * c->dw;
                                if (c->replicate) {
                                    iy = iy < 0 ? 0 : iy >= c->H ? c->H - 1 : iy;
                                    ix = ix < 0 ? 0 : ix >= c->W ? c->W - 1 : ix;
                                } else if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W) {
                                    continue;
                                }
                                acc += (double)x[((n * c->Cin + g * cin_g + ic) * c->H + iy) * c->W + ix] *
                                       w[((oc * cin_g + ic) * c->kh + ky) * c->kw + kx];
                            }
                    y[((n * c->Cout + oc) * Ho + oy) * Wo + ox] = (float)acc;
                }
}

static void run_conv(const conv_case *c, ld_dtype dt, int check_threads) {
    int64_t cin_g = c->Cin / c->groups;
    int64_t Ho = ld_conv2d_out_dim(c->H, c->kh, c->sh, c->ph, c->dh);
    int64_t Wo = ld_conv2d_out_dim(c->W, c->kw, c->sw, c->pw, c->dw);
    int64_t nx = c->B * c->Cin * c->H * c->W, nw = c->Cout * cin_g * c->kh * c->kw, ny = c->B * c->Cout * Ho * Wo;
    float *x = tw_alloc(nx), *wv = tw_alloc(nw), *bv = tw_alloc(c->Cout), *y = tw_alloc(ny), *ref = tw_alloc(ny);
    test_fill(x, nx, 100 + nx);
    test_fill(wv, nw, 200 + nw);
    test_fill(bv, c->Cout, 300);
    ld_tensor w = tw_make(dt, wv, 4, (int64_t[]){c->Cout, cin_g, c->kh, c->kw});
    ld_tensor b = tw_make(dt, bv, 1, (int64_t[]){c->Cout});
    ld_conv2d_params p = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups, c->replicate};
    ref_conv(ref, x, wv, bv, c, Ho, Wo);
    for (int64_t i = 0; i < ny; i++) y[i] = NAN; /* every output must be written */
    ld_conv2d(y, x, c->B, c->Cin, c->H, c->W, &w, c->bias ? &b : NULL, &p);
    char what[200];
    snprintf(what, sizeof what,
             "conv2d %s B%lld Cin%lld %lldx%lld Cout%lld k%lldx%lld s%d,%d p%d,%d d%d,%d g%d rep%d bias%d -> %lldx%lld",
             ld_dtype_name(dt), (long long)c->B, (long long)c->Cin, (long long)c->H, (long long)c->W,
             (long long)c->Cout, (long long)c->kh, (long long)c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw,
             c->groups, c->replicate, c->bias, (long long)Ho, (long long)Wo);
    test_close(what, y, ref, ny, TOL);
    for (int64_t i = 0; i < ny; i++) y[i] = NAN;
    ops_conv2d_direct(y, x, c->B, c->Cin, c->H, c->W, &w, c->bias ? &b : NULL, &p, Ho, Wo);
    snprintf(what + strlen(what), sizeof what - strlen(what), " (direct loop)");
    test_close(what, y, ref, ny, TOL);
    if (check_threads) {
        float *y1 = tw_alloc(ny);
        omp_set_num_threads(1);
        ld_conv2d(y1, x, c->B, c->Cin, c->H, c->W, &w, c->bias ? &b : NULL, &p);
        omp_set_num_threads(2);
        ld_conv2d(y, x, c->B, c->Cin, c->H, c->W, &w, c->bias ? &b : NULL, &p);
        CHECK(tw_same(y, y1, ny), "conv2d thread invariance: %s", what);
        free(y1);
    }
    tw_free(&w);
    tw_free(&b);
    free(x);
    free(wv);
    free(bv);
    free(y);
    free(ref);
}

static void test_conv2d(void) {
    const conv_case cases[] = {
        /* B Cin H W Cout kh kw  sh sw ph pw dh dw g rep bias */
        {2, 5, 9, 11, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1},    /* 3x3 same */
        {1, 6, 7, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1},     /* 1x1 gemm path */
        {2, 6, 7, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 0},     /* 1x1 gemm path, 2 groups */
        {1, 3, 10, 9, 5, 4, 4, 2, 2, 1, 1, 1, 1, 1, 0, 1},    /* Stage A down k4 s2 p1, odd width */
        {1, 4, 8, 8, 6, 2, 2, 2, 2, 0, 0, 1, 1, 1, 0, 1},     /* k2 s2 downscaler */
        {2, 8, 6, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, 1, 1},     /* depthwise, replicate pad */
        {1, 3, 5, 37, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3, 1, 1},    /* depthwise, replicate pad, rows of 2+ vectors */
        {1, 2, 1, 3, 2, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 0},     /* depthwise, replicate pad, one row */
        {1, 6, 9, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, 0, 1},     /* depthwise, zero pad */
        {1, 4, 9, 8, 12, 3, 3, 2, 1, 1, 1, 1, 1, 4, 0, 1},    /* one input channel per group, multiplier 3, strided */
        {1, 4, 11, 10, 6, 3, 3, 2, 1, 2, 2, 2, 2, 2, 0, 1},   /* dilation 2, groups 2, stride (2,1) */
        {1, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},     /* replicate pad in the gather path */
        {1, 3, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1},     /* 1x1 image, 3x3 kernel */
        {1, 1, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1},     /* one input channel */
        {1, 5, 6, 6, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1, 0, 1},     /* 1x1 strided -> gather path */
        {1, 3, 5, 5, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1, 0, 1},     /* valid conv */
        {1, 2, 4, 3, 2, 3, 1, 1, 1, 2, 0, 1, 1, 1, 0, 1},     /* non-square kernel, pad larger than needed */
        {1, 2, 5, 5, 3, 3, 3, 1, 1, 4, 4, 1, 1, 1, 1, 1},     /* replicate pad wider than the image */
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 3; d++) run_conv(&cases[i], tw_dtypes[d], d == 0);
    /* K = 64*9 = 576 over 48x48 pixels: several GEMM blocks in every direction */
    conv_case big = {1, 64, 48, 48, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    run_conv(&big, LD_BF16, 1);
}

/* ---- Winograd F(2x2, 3x3) ---- */

/* The Winograd path against the double-precision direct sum: with f32
 * products it must agree as closely as the direct path (only the rounding of
 * the transforms differs); odd sizes (a last tile with one row or column),
 * batches, items of one tile and of a few that cross tile rows and images, the default items, weights
 * in every dtype, and 1 vs 2 threads bitwise. Then ld_conv2d under bf16
 * precision, which takes this path from 32 channels: the bf16 products'
 * error, thread invariance. */
/* A 3x3, stride 1, padding 1 case: input, weights and bias in dtype dt (the
 * values rounded to it), the double-precision direct sum in ref, y and y1
 * for two results. */
typedef struct {
    conv_case c;
    int64_t ny;
    float *x, *wv, *bv, *y, *y1, *ref;
    ld_tensor w, b;
} case3x3;

static void case3x3_make(case3x3 *k, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int bias,
                         ld_dtype dt, uint64_t seed) {
    k->c = (conv_case){B, Cin, H, W, Cout, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, bias};
    const int64_t nx = B * Cin * H * W, nw = Cout * Cin * 9;
    k->ny = B * Cout * H * W;
    k->x = tw_alloc(nx);
    k->wv = tw_alloc(nw);
    k->bv = tw_alloc(Cout);
    k->y = tw_alloc(k->ny);
    k->y1 = tw_alloc(k->ny);
    k->ref = tw_alloc(k->ny);
    test_fill(k->x, nx, seed + nx);
    test_fill(k->wv, nw, seed + 100 + nw);
    test_fill(k->bv, Cout, seed + 200);
    k->w = tw_make(dt, k->wv, 4, (int64_t[]){Cout, Cin, 3, 3});
    k->b = tw_make(dt, k->bv, 1, (int64_t[]){Cout});
    ref_conv(k->ref, k->x, k->wv, k->bv, &k->c, H, W);
    for (int64_t i = 0; i < k->ny; i++) k->y[i] = NAN; /* every output must be written */
}

static void case3x3_free(case3x3 *k) {
    tw_free(&k->w);
    tw_free(&k->b);
    float *p[] = {k->x, k->wv, k->bv, k->y, k->y1, k->ref};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
}

static void run_winograd(int m, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int bias, ld_dtype dt,
                         int64_t item_tiles, size_t u_bytes) {
    case3x3 k;
    case3x3_make(&k, B, Cin, H, W, Cout, bias, dt, 500);
    const ld_tensor *bp = bias ? &k.b : NULL;
    char what[160];
    snprintf(what, sizeof what, "winograd F(%dx%d) %s B%lld Cin%lld %lldx%lld Cout%lld bias%d item %lld u %zu", m, m,
             ld_dtype_name(dt), (long long)B, (long long)Cin, (long long)H, (long long)W, (long long)Cout, bias,
             (long long)item_tiles, u_bytes);
    CHECK(ops_conv3x3_winograd(k.y, k.x, B, Cin, H, W, &k.w, bp, m, item_tiles, u_bytes), "%s: ran", what);
    test_close(what, k.y, k.ref, k.ny, TOL);
    omp_set_num_threads(1);
    ops_conv3x3_winograd(k.y1, k.x, B, Cin, H, W, &k.w, bp, m, item_tiles, u_bytes);
    omp_set_num_threads(2);
    CHECK(tw_same(k.y, k.y1, k.ny), "%s: 1 and 2 threads give the same bits", what);
    case3x3_free(&k);
}

/* ld_conv2d in precision `prec` on a Cin -> Cout channel case of B x H x W:
 * the Winograd path (its FLOP category) with tiles of m x m (the same bits
 * as ops_conv3x3_winograd with that m), within `bound` relative L2 of the
 * double sums, the same bits on 1 and 2 threads. */
static void conv2d_winograd(ld_precision prec, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int m,
                            double bound) {
    char name[96];
    snprintf(name, sizeof name, "%s %lldx%lldx%lldx%lld -> %lld, F(%dx%d)", prec == LD_PRECISION_BF16 ? "bf16" : "f32",
             (long long)B, (long long)Cin, (long long)H, (long long)W, (long long)Cout, m, m);
    case3x3 k;
    case3x3_make(&k, B, Cin, H, W, Cout, 1, LD_F16, 800);
    const ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    ld_flops_reset();
    ld_gemm_set_precision(prec);
    ld_conv2d(k.y, k.x, B, Cin, H, W, &k.w, &k.b, &p);
    const uint64_t flops = ld_flops_get(LD_FLOPS_WINOGRAD);
    const uint64_t others = ld_flops_get(LD_FLOPS_CONV) + ld_flops_get(LD_FLOPS_GEMM);
    omp_set_num_threads(1);
    ld_conv2d(k.y1, k.x, B, Cin, H, W, &k.w, &k.b, &p);
    omp_set_num_threads(2);
    CHECK(tw_same(k.y, k.y1, k.ny), "%s: 1 and 2 threads give the same bits", name);
    CHECK(ops_conv3x3_winograd(k.y1, k.x, B, Cin, H, W, &k.w, &k.b, m, 0, 0) && tw_same(k.y, k.y1, k.ny),
          "%s: ld_conv2d chose these tiles", name);
    ld_gemm_set_precision(LD_PRECISION_F32);
    const double err = test_rel_l2(k.y, k.ref, k.ny);
    printf("%s winograd %s through ld_conv2d: relative L2 error %.3g (bound %g)\n", err < bound ? "ok  " : "FAIL", name,
           err, bound);
    CHECK(err < bound, "%s: Winograd error %g", name, err);
    CHECK(flops == 2ull * B * Cout * H * W * Cin * 9 && others == 0,
          "%s: the convolution took the Winograd path and counted the direct form's FLOPs once", name);
    case3x3_free(&k);
}

static void test_winograd(void) {
    for (int m = 2; m <= 4; m += 2) {
        for (int d = 0; d < 3; d++) run_winograd(m, 2, 5, 9, 11, 7, 1, tw_dtypes[d], 1, 0);
        run_winograd(m, 1, 3, 1, 1, 2, 1, LD_F32, 0, 0);   /* one pixel */
        run_winograd(m, 1, 4, 2, 7, 3, 0, LD_F32, 0, 0);   /* one tile row */
        run_winograd(m, 3, 6, 7, 2, 5, 1, LD_F32, 7, 0);   /* odd height, items across rows and images */
        run_winograd(m, 1, 40, 33, 35, 36, 1, LD_F16, 0, 0);
        run_winograd(m, 2, 33, 20, 13, 40, 1, LD_BF16, 9, 0);
        run_winograd(m, 1, 70, 9, 11, 130, 1, LD_BF16, 0, 0); /* several channel blocks and output row blocks */
        run_winograd(m, 2, 37, 9, 8, 45, 1, LD_F16, 5, 1);    /* output channels one kernel panel at a time */
        run_winograd(m, 1, 70, 9, 11, 130, 0, LD_F32, 0, 300000); /* blocks of several panels, the last one short */
    }

    /* ld_conv2d takes the Winograd path from 32 channels, in bf16 and f32 */
    /* errors: bf16 inputs about 2^-9 each (0.0039); f32 F(2x2) 2.2e-7 and F(4x4)
     * 1.5e-6, the direct f32 sums 3.6e-7 (below). F(4x4) from 4 items of tiles. */
    ld_gemm_packing pk;
    ld_gemm_packing_for(&pk, 40, 128, 0); /* the f32 kernel of these products */
    const int64_t rows4 = 4 * 2 * pk.kr->nr / 16; /* rows of 16 tiles in 4 items of 2 panels */
    conv2d_winograd(LD_PRECISION_BF16, 2, 48, 21, 19, 40, 2, 8e-3);
    conv2d_winograd(LD_PRECISION_BF16, 1, 32, 4 * rows4, 64, 40, 2, 8e-3);
    conv2d_winograd(LD_PRECISION_F32, 2, 48, 21, 19, 40, 2, 1e-6);
    conv2d_winograd(LD_PRECISION_F32, 1, 32, 4 * rows4, 64, 40, 4, 5e-6);
    conv2d_winograd(LD_PRECISION_F32, 1, 32, 4 * rows4 - 4, 64, 40, 2, 1e-6); /* one tile row short */

    /* ld_conv_set_direct(1): the same call keeps the direct sums (the implicit GEMM) */
    case3x3 k;
    case3x3_make(&k, 2, 48, 21, 19, 40, 1, LD_F16, 800);
    const ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    ld_flops_reset();
    CHECK(ld_conv_set_direct(1) == 0, "direct sums are off by default");
    ld_conv2d(k.y, k.x, 2, 48, 21, 19, &k.w, &k.b, &p);
    CHECK(ld_conv_set_direct(0) == 1, "ld_conv_set_direct returns the previous setting");
    CHECK(ld_flops_get(LD_FLOPS_CONV) == 2ull * 2 * 40 * 21 * 19 * 48 * 9 && ld_flops_get(LD_FLOPS_WINOGRAD) == 0,
          "with ld_conv_set_direct(1) the convolution ran the direct sums");
    const double err = test_rel_l2(k.y, k.ref, k.ny);
    printf("%s direct f32 sums through ld_conv2d: relative L2 error %.3g\n", err < 2e-6 ? "ok  " : "FAIL", err);
    CHECK(err < 2e-6, "direct f32 error %g", err);
    case3x3_free(&k);
}

/* ---- transposed ---- */

static void run_conv_t(int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int64_t k, int s, int pad,
                       int bias, ld_dtype dt) {
    int64_t Ho = (H - 1) * s - 2 * pad + k, Wo = (W - 1) * s - 2 * pad + k;
    int64_t nx = B * Cin * H * W, nw = Cin * Cout * k * k, ny = B * Cout * Ho * Wo;
    float *x = tw_alloc(nx), *wv = tw_alloc(nw), *bv = tw_alloc(Cout), *y = tw_alloc(ny), *ref = tw_alloc(ny);
    test_fill(x, nx, 400);
    test_fill(wv, nw, 401);
    test_fill(bv, Cout, 402);
    ld_tensor w = tw_make(dt, wv, 4, (int64_t[]){Cin, Cout, k, k});
    ld_tensor b = tw_make(dt, bv, 1, (int64_t[]){Cout});
    /* definition: every output pixel sums x[iy, ix] * w[ic, oc, ky, kx] over oy = iy*s - pad + ky */
    for (int64_t n = 0; n < B; n++)
        for (int64_t oc = 0; oc < Cout; oc++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = bias ? bv[oc] : 0.0;
                    for (int64_t ic = 0; ic < Cin; ic++)
                        for (int64_t ky = 0; ky < k; ky++)
                            for (int64_t kx = 0; kx < k; kx++) {
                                int64_t ty = oy + pad - ky, tx = ox + pad - kx;
                                if (ty < 0 || tx < 0 || ty % s || tx % s) continue;
                                int64_t iy = ty / s, ix = tx / s;
                                if (iy >= H || ix >= W) continue;
                                acc += (double)x[((n * Cin + ic) * H + iy) * W + ix] * wv[((ic * Cout + oc) * k + ky) * k + kx];
                            }
                    ref[((n * Cout + oc) * Ho + oy) * Wo + ox] = (float)acc;
                }
    ld_conv_transpose2d(y, x, B, Cin, H, W, &w, bias ? &b : NULL, s, pad);
    char what[160];
    snprintf(what, sizeof what, "conv_transpose2d %s B%lld Cin%lld %lldx%lld Cout%lld k%lld s%d p%d bias%d",
             ld_dtype_name(dt), (long long)B, (long long)Cin, (long long)H, (long long)W, (long long)Cout,
             (long long)k, s, pad, bias);
    test_close(what, y, ref, ny, TOL);
    for (int64_t i = 0; i < ny; i++) y[i] = bias ? bv[i / (Ho * Wo) % Cout] : 0.0f; /* the direct loop adds onto the bias */
    ops_conv_transpose2d_direct(y, x, B, Cin, H, W, &w, s, pad, Ho, Wo);
    snprintf(what + strlen(what), sizeof what - strlen(what), " (direct loop)");
    test_close(what, y, ref, ny, TOL);
    ld_conv_transpose2d(y, x, B, Cin, H, W, &w, bias ? &b : NULL, s, pad);
    float *y1 = tw_alloc(ny);
    omp_set_num_threads(1);
    ld_conv_transpose2d(y1, x, B, Cin, H, W, &w, bias ? &b : NULL, s, pad);
    omp_set_num_threads(2);
    CHECK(tw_same(y, y1, ny), "conv_transpose2d thread invariance: %s", what);
    tw_free(&w);
    tw_free(&b);
    free(x);
    free(wv);
    free(bv);
    free(y);
    free(ref);
    free(y1);
}

static void test_conv_transpose(void) {
    for (int d = 0; d < 3; d++) {
        run_conv_t(2, 3, 5, 4, 4, 4, 2, 1, 1, tw_dtypes[d]); /* Stage A up */
        run_conv_t(1, 4, 3, 3, 2, 2, 2, 0, 1, tw_dtypes[d]); /* Wuerstchen upscaler */
        run_conv_t(1, 2, 4, 5, 3, 3, 1, 0, 0, tw_dtypes[d]); /* overlapping taps */
        run_conv_t(1, 3, 5, 3, 2, 3, 2, 1, 1, tw_dtypes[d]);
        run_conv_t(1, 2, 1, 1, 3, 4, 2, 1, 1, tw_dtypes[d]); /* 1x1 input */
    }
    run_conv_t(1, 8, 40, 64, 64, 4, 2, 1, 1, LD_F16); /* several row tiles */
}

int main(void) {
    omp_set_num_threads(2);
    test_conv2d();
    test_winograd();
    test_conv_transpose();
    return test_finish();
}
