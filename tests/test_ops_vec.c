/* Tests of the ops built on the vector kernels of ops_vec_kernel.h (3x3
 * depthwise rows, channel LayerNorm and its statistics, GroupNorm and
 * LayerNorm statistics, GELU with channel norms, the GRN and concatenation 1x1
 * convolutions, FiLM, the channel-major and from-channels linears, the
 * GEGLU's one-pass GELU-and-product)
 * against plain loops written here (in double, or the scalar formula where
 * the result must be bitwise the same), on every CPU path this machine has:
 * each path gives the same bits as the portable one, and 1 and 2 threads
 * give the same bits. */
#include "base/cpu.h"
#include "tensor/ops_internal.h"
#include "test_ops_util.h"

#define TOL 1e-5

static const ld_cpu_level_t levels[] = {LD_CPU_PORTABLE, LD_CPU_AVX2, LD_CPU_AVX512};
#define NLEVELS 3

/* The runs every check repeats: each CPU path of `levels` this machine has,
 * on 1 and then 2 threads. `for (path_run r = {0}; next_run(&r);)` forces
 * each in turn (r.got, r.threads; r.first on the portable path's 1-thread
 * run) and restores the caller's path and 2 threads at the end. */
typedef struct {
    int i, first, threads;
    ld_cpu_level_t keep, got;
} path_run;

static int next_run(path_run *r) {
    if (r->i == 0) r->keep = ld_cpu_level();
    while (r->i < 2 * NLEVELS) {
        const int l = r->i / 2;
        r->first = r->i == 0;
        r->threads = 1 + r->i % 2;
        r->i++;
        r->got = ld_cpu_force(levels[l]);
        if (r->got != levels[l]) continue;
        omp_set_num_threads(r->threads);
        return 1;
    }
    ld_cpu_force(r->keep);
    omp_set_num_threads(2);
    return 0;
}

/* 1 if a and b are equal as numbers (-0 == +0) everywhere. */
static int same_values(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) return 0;
    return 1;
}

/* y against ref within tol (ref NULL: not compared), and bitwise against the
 * result of the portable path on 1 thread, which the first run stores in
 * `first`. */
static void check_run(const char *what, const path_run *r, const float *y, const float *ref, double tol, float *first,
                      int64_t n) {
    if (ref) test_close(what, y, ref, n, tol);
    if (r->first) memcpy(first, y, (size_t)n * sizeof(float));
    CHECK(tw_same(y, first, n), "%s: bitwise as portable, 1 thread", what);
}

/* ---- 3x3 depthwise: the vector row path against the direct loop ---- */

static void test_dw3(void) {
    const int64_t sizes[][2] = {{1, 1}, {2, 15}, {5, 16}, {4, 17}, {24, 24}, {3, 33}, {7, 128}, {2, 130}};
    for (int s = 0; s < 8; s++) {
        int64_t B = 2, C = 5, H = sizes[s][0], W = sizes[s][1], n = B * C * H * W;
        float *x = tw_alloc(n), *wv = tw_alloc(C * 9), *bv = tw_alloc(C), *ref = tw_alloc(n), *y = tw_alloc(n);
        test_fill(x, n, 10 + s);
        test_fill(wv, C * 9, 20 + s);
        test_fill(bv, C, 30 + s);
        ld_tensor w = tw_make(LD_F16, wv, 4, (int64_t[]){C, 1, 3, 3});
        ld_tensor b = tw_make(LD_F32, bv, 1, (int64_t[]){C});
        ld_conv2d_params p = ld_conv2d_params_make(1, 1);
        p.groups = (int)C;
        ops_conv2d_direct(ref, x, B, C, H, W, &w, &b, &p, H, W);
        for (path_run r = {0}; next_run(&r);) {
            for (int64_t i = 0; i < n; i++) y[i] = NAN;
            ld_conv2d(y, x, B, C, H, W, &w, &b, &p);
            CHECK(same_values(y, ref, n), "depthwise 3x3 %lldx%lld on %s, %d threads: the direct loop's sums",
                  (long long)H, (long long)W, ld_cpu_level_name(r.got), r.threads);
        }
        tw_free(&w);
        tw_free(&b);
        free(x);
        free(wv);
        free(bv);
        free(ref);
        free(y);
    }
}

/* ---- channel LayerNorm ---- */

static void test_layer_norm_channels(void) {
    const int64_t shapes[][2] = {{5, 300}, {1536, 40}, {7, 1}, {33, 17}};
    for (int s = 0; s < 4; s++) {
        int64_t B = 2, C = shapes[s][0], HW = shapes[s][1], n = B * C * HW;
        float *x = tw_alloc(n), *ref = tw_alloc(n), *y = tw_alloc(n), *yp = tw_alloc(n);
        test_fill(x, n, 40 + s);
        for (int64_t i = 0; i < n; i++) x[i] = x[i] * 3.0f + 0.5f; /* a mean to remove */
        for (int64_t b = 0; b < B; b++)
            for (int64_t p = 0; p < HW; p++) {
                const float *xs = x + b * C * HW + p;
                double m = 0, v = 0;
                for (int64_t c = 0; c < C; c++) m += xs[c * HW];
                m /= (double)C;
                for (int64_t c = 0; c < C; c++) v += (xs[c * HW] - m) * (xs[c * HW] - m);
                v /= (double)C;
                for (int64_t c = 0; c < C; c++) ref[b * C * HW + c * HW + p] = (float)((xs[c * HW] - m) / sqrt(v + 1e-6));
            }
        for (path_run r = {0}; next_run(&r);) {
            ld_layer_norm_channels(y, x, B, C, HW, 1e-6f, NULL, NULL);
            char what[128];
            snprintf(what, sizeof what, "layer_norm_channels C%lld HW%lld %s %d threads", (long long)C,
                     (long long)HW, ld_cpu_level_name(r.got), r.threads);
            check_run(what, &r, y, ref, TOL, yp, n);
        }
        free(x);
        free(ref);
        free(y);
        free(yp);
    }
}

/* ---- GroupNorm and LayerNorm statistics (ops_vec()->sum) ---- */

/* Against two-pass statistics in double, and bitwise the same on every path
 * and thread count; group sizes around the 32 partial sums (remainders of
 * 1, 31 and none) and a large mean to remove. */
static void test_norm_stats(void) {
    const int64_t sizes[] = {1, 31, 32, 33, 95, 4097};
    for (int s = 0; s < 6; s++) {
        const int64_t B = 2, C = 4, G = 2, HW = sizes[s], n = B * C * HW, per = C / G * HW;
        float *x = tw_alloc(n), *ref = tw_alloc(n), *lref = tw_alloc(n), *y = tw_alloc(n), *yp = tw_alloc(n);
        float *l = tw_alloc(n), *lp = tw_alloc(n);
        test_fill(x, n, 70 + s);
        for (int64_t i = 0; i < n; i++) x[i] = x[i] * 2.0f + 100.0f;
        for (int pass = 0; pass < 2; pass++) { /* groups of per values, then rows of HW values (LayerNorm) */
            const int64_t len = pass ? HW : per;
            for (int64_t r = 0; r < n / len; r++) {
                const float *xs = x + r * len;
                double m = 0, v = 0;
                for (int64_t i = 0; i < len; i++) m += xs[i];
                m /= (double)len;
                for (int64_t i = 0; i < len; i++) v += (xs[i] - m) * (xs[i] - m);
                v /= (double)len;
                float *out = (pass ? lref : ref) + r * len;
                for (int64_t i = 0; i < len; i++) out[i] = (float)((xs[i] - m) / sqrt(v + 1e-5));
            }
        }
        for (path_run r = {0}; next_run(&r);) {
            char what[128];
            ld_group_norm(y, x, B, C, HW, G, 1e-5f, NULL, NULL);
            snprintf(what, sizeof what, "group_norm HW%lld %s %d threads", (long long)HW, ld_cpu_level_name(r.got),
                     r.threads);
            check_run(what, &r, y, ref, 1e-3, yp, n);
            ld_layer_norm(l, x, n / HW, HW, 1e-5f, NULL, NULL);
            snprintf(what, sizeof what, "layer_norm dim %lld %s %d threads", (long long)HW, ld_cpu_level_name(r.got),
                     r.threads);
            check_run(what, &r, l, lref, 1e-3, lp, n);
        }
        free(x);
        free(ref);
        free(lref);
        free(y);
        free(yp);
        free(l);
        free(lp);
    }
}

/* ---- GELU + channel norms, GRN 1x1 convolution ---- */

static void test_grn(void) {
    int64_t B = 2, C = 37, HW = 53, Cout = 11, n = B * C * HW;
    float *x0 = tw_alloc(n), *x = tw_alloc(n), *g = tw_alloc(n), *nrm = tw_alloc(B * C), *nrm0 = tw_alloc(B * C);
    float *gv = tw_alloc(C), *tv = tw_alloc(C), *s = tw_alloc(B * C), *wv = tw_alloc(Cout * C), *bv = tw_alloc(Cout);
    float *y0 = tw_alloc(B * Cout * HW), *y = tw_alloc(B * Cout * HW), *ref = tw_alloc(B * Cout * HW);
    float *yp = tw_alloc(B * Cout * HW);
    test_fill(x0, n, 50);
    for (int64_t i = 0; i < n; i++) x0[i] *= 4.0f;
    test_fill(gv, C, 51);
    test_fill(tv, C, 52);
    test_fill(s, B * C, 53);
    test_fill(wv, Cout * C, 54);
    test_fill(bv, Cout, 55);
    test_fill(y0, B * Cout * HW, 56);
    ld_tensor w = tw_make(LD_BF16, wv, 2, (int64_t[]){Cout, C});
    ld_tensor bias = tw_make(LD_F16, bv, 1, (int64_t[]){Cout});
    memcpy(g, x0, (size_t)n * sizeof(float));
    ld_gelu_erf(g, n); /* the GELU the fused pass must reproduce bit for bit */
    for (path_run r = {0}; next_run(&r);) {
        memcpy(x, x0, (size_t)n * sizeof(float));
        ld_gelu_channel_norms(x, B, C, HW, nrm);
        CHECK(tw_same(x, g, n), "gelu_channel_norms on %s, %d threads: the GELU of ld_gelu_erf",
              ld_cpu_level_name(r.got), r.threads);
        float nref[2 * 37];
        for (int64_t bc = 0; bc < B * C; bc++) {
            double ss = 0;
            for (int64_t p = 0; p < HW; p++) ss += (double)g[bc * HW + p] * g[bc * HW + p];
            nref[bc] = (float)sqrt(ss);
        }
        test_close("gelu_channel_norms: norms", nrm, nref, B * C, 1e-6);
        if (r.first) memcpy(nrm0, nrm, (size_t)(B * C) * sizeof(float));
        CHECK(tw_same(nrm, nrm0, B * C), "gelu_channel_norms norms on %s, %d threads: bitwise as portable",
              ld_cpu_level_name(r.got), r.threads);

        for (int beta = 0; beta <= 1; beta++) {
            for (int64_t b = 0; b < B; b++)
                for (int64_t o = 0; o < Cout; o++)
                    for (int64_t p = 0; p < HW; p++) {
                        double acc = 0;
                        for (int64_t c = 0; c < C; c++) {
                            float v = g[(b * C + c) * HW + p];
                            float in = gv[c] * (v * s[b * C + c]) + tv[c] + v; /* the GRN, in f32 */
                            acc += (double)wv[o * C + c] * in;
                        }
                        int64_t i = (b * Cout + o) * HW + p;
                        ref[i] = (float)((beta ? (double)y0[i] : 0.0) + acc + bv[o]);
                    }
            memcpy(y, y0, sizeof(float) * (size_t)(B * Cout * HW));
            ld_conv1x1_grn(y, (float)beta, g, B, C, HW, gv, s, tv, &w, &bias);
            char what[96];
            snprintf(what, sizeof what, "conv1x1_grn beta %d on %s, %d threads", beta, ld_cpu_level_name(r.got),
                     r.threads);
            test_close(what, y, ref, B * Cout * HW, TOL);
            if (beta == 1 && r.first) memcpy(yp, y, sizeof(float) * (size_t)(B * Cout * HW));
            if (beta == 1) CHECK(tw_same(y, yp, B * Cout * HW), "%s: bitwise as portable, 1 thread", what);
        }
    }
    tw_free(&w);
    tw_free(&bias);
    free(x0);
    free(x);
    free(g);
    free(nrm);
    free(nrm0);
    free(gv);
    free(tv);
    free(s);
    free(wv);
    free(bv);
    free(y0);
    free(y);
    free(ref);
    free(yp);
}

/* ---- FiLM and the channel-major linear ---- */

static void test_affine_and_linear(void) {
    int64_t B = 2, C = 9, HW = 4099, n = B * C * HW;
    float *x0 = tw_alloc(n), *x = tw_alloc(n), *ref = tw_alloc(n), *a = tw_alloc(B * C), *t = tw_alloc(B * C);
    test_fill(x0, n, 60);
    test_fill(a, B * C, 61);
    test_fill(t, B * C, 62);
    for (int64_t i = 0; i < n; i++) ref[i] = x0[i] * a[i / HW] + t[i / HW];
    for (path_run r = {0}; next_run(&r);) {
        memcpy(x, x0, (size_t)n * sizeof(float));
        ld_channel_affine(x, B, C, HW, a, t);
        CHECK(tw_same(x, ref, n), "channel_affine on %s, %d threads: x * a + t exactly", ld_cpu_level_name(r.got),
              r.threads);
    }

    /* y [N, M] = y + (x w^T)^T + b for x [M, K] */
    int64_t M = 70, K = 45, N = 13;
    float *xt = tw_alloc(M * K), *wv = tw_alloc(N * K), *bv = tw_alloc(N), *y = tw_alloc(N * M), *yr = tw_alloc(N * M);
    test_fill(xt, M * K, 63);
    test_fill(wv, N * K, 64);
    test_fill(bv, N, 65);
    test_fill(y, N * M, 66);
    ld_tensor w = tw_make(LD_F16, wv, 2, (int64_t[]){N, K});
    ld_tensor b = tw_make(LD_F32, bv, 1, (int64_t[]){N});
    for (int64_t o = 0; o < N; o++)
        for (int64_t m = 0; m < M; m++) {
            double acc = y[o * M + m] + (double)bv[o];
            for (int64_t k = 0; k < K; k++) acc += (double)xt[m * K + k] * wv[o * K + k];
            yr[o * M + m] = (float)acc;
        }
    ld_linear_to_channels(y, 1.0f, xt, M, &w, &b);
    test_close("linear_to_channels beta 1", y, yr, N * M, TOL);
    tw_free(&w);
    tw_free(&b);
    free(xt);
    free(wv);
    free(bv);
    free(y);
    free(yr);
    free(x0);
    free(x);
    free(ref);
    free(a);
    free(t);
}

/* ---- 1x1 convolution of cat(LN(a), c2), LN statistics ---- */

static void test_conv1x1_cat(void) {
    int64_t B = 2, Ca = 19, Cb = 7, HW = 45, Cout = 10, K = Ca + Cb;
    float *a = tw_alloc(B * Ca * HW), *c2 = tw_alloc(B * Cb * HW), *ln = tw_alloc(B * Ca * HW);
    float *mean = tw_alloc(B * HW), *rstd = tw_alloc(B * HW), *wv = tw_alloc(Cout * K), *bv = tw_alloc(Cout);
    float *y = tw_alloc(B * Cout * HW), *ref = tw_alloc(B * Cout * HW), *y1 = tw_alloc(B * Cout * HW);
    test_fill(a, B * Ca * HW, 70);
    for (int64_t i = 0; i < B * Ca * HW; i++) a[i] = a[i] * 2.0f + 0.25f;
    test_fill(c2, B * Cb * HW, 71);
    test_fill(wv, Cout * K, 72);
    test_fill(bv, Cout, 73);
    ld_tensor w = tw_make(LD_F16, wv, 2, (int64_t[]){Cout, K});
    ld_tensor bias = tw_make(LD_F32, bv, 1, (int64_t[]){Cout});
    /* the statistics reproduce ld_layer_norm_channels bit for bit */
    ld_layer_norm_channels(ln, a, B, Ca, HW, 1e-6f, NULL, NULL);
    ld_layer_norm_channels_stats(mean, rstd, a, B, Ca, HW, 1e-6f);
    int same = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < Ca; c++)
            for (int64_t p = 0; p < HW; p++) {
                float v = (a[(b * Ca + c) * HW + p] - mean[b * HW + p]) * rstd[b * HW + p] * 1.0f + 0.0f;
                same &= v == ln[(b * Ca + c) * HW + p];
            }
    CHECK(same, "layer_norm_channels_stats: the statistics of ld_layer_norm_channels");
    for (int norm = 0; norm <= 1; norm++)
        for (int cat = 0; cat <= 1; cat++) {
            const float *src = norm ? ln : a;
            int64_t k_in = cat ? K : Ca;
            /* w is [Cout, K]: without c2 only the first Ca columns form the product, as a [Cout, Ca] weight */
            float *wsub = tw_alloc(Cout * Ca);
            for (int64_t o = 0; o < Cout; o++)
                for (int64_t c = 0; c < Ca; c++) wsub[o * Ca + c] = wv[o * K + c];
            ld_tensor ws = tw_make(LD_F32, wsub, 2, (int64_t[]){Cout, Ca});
            for (int64_t b = 0; b < B; b++)
                for (int64_t o = 0; o < Cout; o++)
                    for (int64_t p = 0; p < HW; p++) {
                        double acc = bv[o];
                        for (int64_t c = 0; c < k_in; c++) {
                            float v = c < Ca ? src[(b * Ca + c) * HW + p] : c2[(b * Cb + c - Ca) * HW + p];
                            acc += (double)wv[o * K + c] * v;
                        }
                        ref[(b * Cout + o) * HW + p] = (float)acc;
                    }
            for (int th = 1; th <= 2; th++) {
                omp_set_num_threads(th);
                for (int64_t i = 0; i < B * Cout * HW; i++) y[i] = NAN;
                ld_conv1x1_cat(y, 0.0f, a, Ca, norm ? mean : NULL, norm ? rstd : NULL, cat ? c2 : NULL, cat ? Cb : 0,
                               B, HW, cat ? &w : &ws, &bias);
                char what[96];
                snprintf(what, sizeof what, "conv1x1_cat norm %d cat %d, %d threads", norm, cat, th);
                test_close(what, y, ref, B * Cout * HW, TOL);
                if (th == 1) memcpy(y1, y, sizeof(float) * (size_t)(B * Cout * HW));
                else CHECK(tw_same(y, y1, B * Cout * HW), "%s: bitwise as 1 thread", what);
            }
            tw_free(&ws);
            free(wsub);
        }

    omp_set_num_threads(2);
    tw_free(&w);
    tw_free(&bias);
    free(a);
    free(c2);
    free(ln);
    free(mean);
    free(rstd);
    free(wv);
    free(bv);
    free(y);
    free(ref);
    free(y1);
}

/* ---- LayerNorm2d written token-major ---- */

static void test_layer_norm_tokens(void) {
    /* 1040 channels: 65 blocks of 16, pixel tiles of 48 (the last one 6 wide) */
    const int64_t shapes[2][2] = {{19, 45}, {1040, 150}};
    for (int s = 0; s < 2; s++) {
        const int64_t B = 2, C = shapes[s][0], HW = shapes[s][1], n = B * C * HW;
        float *x = tw_alloc(n), *ref = tw_alloc(n), *y = tw_alloc(n);
        test_fill(x, n, 75 + s);
        for (int64_t i = 0; i < n; i += 7) x[i] += 3.0f; /* channels with different means */
        ld_layer_norm_channels(ref, x, B, C, HW, 1e-6f, NULL, NULL);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            for (int64_t i = 0; i < n; i++) y[i] = NAN;
            ld_layer_norm_channels_tokens(y, x, B, C, HW, 1e-6f);
            int ok = 1;
            for (int64_t b = 0; b < B; b++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t p = 0; p < HW; p++) ok &= y[(b * HW + p) * C + c] == ref[(b * C + c) * HW + p];
            CHECK(ok, "layer_norm_channels_tokens %lldx%lld, %d threads: the NCHW LayerNorm transposed, bit for bit",
                  (long long)C, (long long)HW, th);
        }
        omp_set_num_threads(2);
        free(x);
        free(ref);
        free(y);
    }
}

/* ---- GEGLU: the gate's GELU times the value half, in one pass ---- */

static void test_geglu(void) {
    const int64_t shapes[][2] = {{3, 1}, {2, 15}, {4, 17}, {3, 160}, {2, 1283}}; /* rows, d */
    for (int s = 0; s < 5; s++) {
        const int64_t rows = shapes[s][0], d = shapes[s][1];
        float *x = tw_alloc(rows * 2 * d), *ref = tw_alloc(rows * d), *y = tw_alloc(rows * d);
        test_fill(x, rows * 2 * d, 60 + s);
        for (int64_t i = 0; i < rows * 2 * d; i++) x[i] *= 5.0f;
        /* the unfused ops: ld_gelu_erf of the gate half, then the product in f32 */
        for (int64_t r = 0; r < rows; r++) {
            memcpy(ref + r * d, x + r * 2 * d + d, (size_t)d * sizeof(float));
            ld_gelu_erf(ref + r * d, d);
            for (int64_t i = 0; i < d; i++) ref[r * d + i] *= x[r * 2 * d + i];
        }
        for (path_run r = {0}; next_run(&r);) {
            for (int64_t i = 0; i < rows * d; i++) y[i] = NAN;
            ld_geglu(y, x, rows, d);
            CHECK(tw_same(y, ref, rows * d), "geglu %lldx%lld on %s, %d threads: the bits of gelu, then the product",
                  (long long)rows, (long long)d, ld_cpu_level_name(r.got), r.threads);
        }
        free(x);
        free(ref);
        free(y);
    }
}

int main(void) {
    test_dw3();
    test_geglu();
    test_layer_norm_channels();
    test_norm_stats();
    test_grn();
    test_affine_and_linear();
    test_conv1x1_cat();
    test_layer_norm_tokens();
    return test_finish();
}
