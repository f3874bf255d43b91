/* Tests of the elementwise, linear, normalization, softmax, layout and
 * timestep-embedding ops against plain reference loops written here (in
 * double), with f32/f16/bf16 weights, odd and size-1 shapes, and bitwise
 * equality between 1 and 2 threads. */
#include "base/cpu.h"
#include "test_ops_util.h"

#define TOL 1e-5

/* ---- elementwise ---- */

static double ref_act(int which, double v) {
    switch (which) {
    case 0: return v / (1.0 + exp(-v));
    case 1: return v * 0.5 * (1.0 + erf(v / sqrt(2.0)));
    case 2: return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case 3: return v / (1.0 + exp(-1.702 * v));
    case 4: return 1.0 / (1.0 + exp(-v));
    case 5: return v > 0 ? v : 0.2 * v;
    default: return v * -1.5;
    }
}

static void apply_act(int which, float *x, int64_t n) {
    switch (which) {
    case 0: ld_silu(x, n); break;
    case 1: ld_gelu_erf(x, n); break;
    case 2: ld_gelu_tanh(x, n); break;
    case 3: ld_quick_gelu(x, n); break;
    case 4: ld_sigmoid(x, n); break;
    case 5: ld_leaky_relu(x, n, 0.2f); break;
    default: ld_scale(x, n, -1.5f); break;
    }
}

static void test_elementwise(void) {
    const char *names[] = {"silu", "gelu_erf", "gelu_tanh", "quick_gelu", "sigmoid", "leaky_relu", "scale"};
    int64_t sizes[] = {1, 7, 40000};
    for (int a = 0; a < 7; a++)
        for (int s = 0; s < 3; s++) {
            int64_t n = sizes[s];
            float *x = tw_alloc(n), *ref = tw_alloc(n);
            test_fill(x, n, 10 + a);
            for (int64_t i = 0; i < n; i++) {
                x[i] *= 8.0f; /* cover the tails */
                if (i % 3 == 0) x[i] *= 0.01f; /* and small values */
                ref[i] = (float)ref_act(a, x[i]);
            }
            apply_act(a, x, n);
            char what[64];
            snprintf(what, sizeof what, "%s n=%lld", names[a], (long long)n);
            test_close(what, x, ref, n, TOL);
            free(x);
            free(ref);
        }

    /* every SIMD path gives the same bits as the portable one (no FMA in the activations) */
    {
        int64_t m = 70001;
        float *x0 = tw_alloc(m), *xp = tw_alloc(m), *xs = tw_alloc(m);
        test_fill(x0, m, 77);
        for (int64_t i = 0; i < m; i++) x0[i] *= 12.0f;
        ld_cpu_level_t level = ld_cpu_level(); /* the path in force (LEANDIFF_CPU) */
        for (int a = 0; a < 5; a++) {
            memcpy(xp, x0, (size_t)m * sizeof(float));
            memcpy(xs, x0, (size_t)m * sizeof(float));
            ld_cpu_force(LD_CPU_PORTABLE);
            apply_act(a, xp, m);
            ld_cpu_force(level);
            apply_act(a, xs, m);
            CHECK(tw_same(xp, xs, m), "%s: %s path differs from portable", names[a],
                  ld_cpu_level_name(ld_cpu_level()));
        }
        free(x0);
        free(xp);
        free(xs);
    }

    int64_t n = 1001;
    float *a = tw_alloc(n), *b = tw_alloc(n), *ref = tw_alloc(n);
    test_fill(a, n, 1);
    test_fill(b, n, 2);
    for (int64_t i = 0; i < n; i++) ref[i] = a[i] + b[i];
    ld_add(a, a, b, n); /* aliased output */
    test_close("add (y aliases a)", a, ref, n, 0);

    /* scaled residual, long enough to be split over the threads */
    int64_t ns = 100003;
    float *sy = tw_alloc(ns), *sx = tw_alloc(ns), *sr = tw_alloc(ns);
    test_fill(sy, ns, 5);
    test_fill(sx, ns, 6);
    for (int64_t i = 0; i < ns; i++) sr[i] = (float)((double)sy[i] + (double)sx[i] * -0.37);
    ld_add_scaled(sy, sx, -0.37f, ns);
    test_close("add_scaled", sy, sr, ns, TOL);
    free(sy);
    free(sx);
    free(sr);

    /* channel bias: B=2, C=3, HW=5 */
    float x[30], xr[30], bias[3] = {0.5f, -1.0f, 2.0f};
    test_fill(x, 30, 3);
    for (int i = 0; i < 30; i++) xr[i] = x[i] + bias[(i / 5) % 3];
    ld_add_channel_bias(x, 2, 3, 5, bias);
    test_close("add_channel_bias", x, xr, 30, 0);

    /* geglu: rows 3, d 5 */
    float g[30], gy[15], gr[15];
    test_fill(g, 30, 4);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 5; i++) gr[r * 5 + i] = (float)(g[r * 10 + i] * ref_act(1, g[r * 10 + 5 + i]));
    ld_geglu(gy, g, 3, 5);
    test_close("geglu", gy, gr, 15, TOL);
    free(a);
    free(b);
    free(ref);
}

/* ---- linear ---- */

static void test_linear(void) {
    int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {33, 17, 64}, {2, 70, 129}}; /* M, K, N */
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 3; d++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
                float *x = tw_alloc(M * K), *wv = tw_alloc(N * K), *bv = tw_alloc(N);
                float *y = tw_alloc(M * N), *ref = tw_alloc(M * N);
                test_fill(x, M * K, 5);
                test_fill(wv, N * K, 6);
                test_fill(bv, N, 7);
                ld_tensor w = tw_make(tw_dtypes[d], wv, 2, (int64_t[]){N, K});
                ld_tensor b = tw_make(tw_dtypes[d], bv, 1, (int64_t[]){N});
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double acc = with_bias ? bv[j] : 0.0;
                        for (int64_t k = 0; k < K; k++) acc += (double)x[i * K + k] * wv[j * K + k];
                        ref[i * N + j] = (float)acc;
                    }
                ld_linear(y, x, M, &w, with_bias ? &b : NULL);
                char what[96];
                snprintf(what, sizeof what, "linear %s M%lld K%lld N%lld bias%d", ld_dtype_name(tw_dtypes[d]),
                         (long long)M, (long long)K, (long long)N, with_bias);
                test_close(what, y, ref, M * N, TOL);
                /* ld_linear_add: y0 + x w^T + b */
                for (int64_t i = 0; i < M * N; i++) {
                    y[i] = 0.25f * (float)(i % 13) - 1.5f;
                    ref[i] = (float)((double)ref[i] + y[i]);
                }
                ld_linear_add(y, x, M, &w, with_bias ? &b : NULL);
                snprintf(what, sizeof what, "linear_add %s M%lld K%lld N%lld bias%d", ld_dtype_name(tw_dtypes[d]),
                         (long long)M, (long long)K, (long long)N, with_bias);
                test_close(what, y, ref, M * N, TOL);
                tw_free(&w);
                tw_free(&b);
                free(x);
                free(wv);
                free(bv);
                free(y);
                free(ref);
            }

    /* strided: x rows of stride 10 (K = 6), y rows of stride 9 (N = 4); padding untouched */
    float x[3 * 10], wv[4 * 6], y[3 * 9], ref[3 * 9];
    test_fill(x, 30, 8);
    test_fill(wv, 24, 9);
    ld_tensor w = tw_make(LD_BF16, wv, 2, (int64_t[]){4, 6});
    for (int i = 0; i < 27; i++) y[i] = ref[i] = 42.0f;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double acc = 0;
            for (int k = 0; k < 6; k++) acc += (double)x[i * 10 + k] * wv[j * 6 + k];
            ref[i * 9 + j] = (float)acc;
        }
    ld_linear_strided(y, 9, x, 10, 3, &w, NULL);
    test_close("linear_strided", y, ref, 27, TOL);
    tw_free(&w);
}

/* ---- norms ---- */

static void ref_norm_segment(float *y, const float *x, int64_t n, int64_t stride, double eps) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += x[i * stride];
    m /= n;
    for (int64_t i = 0; i < n; i++) v += (x[i * stride] - m) * (x[i * stride] - m);
    v /= n;
    for (int64_t i = 0; i < n; i++) y[i * stride] = (float)((x[i * stride] - m) / sqrt(v + eps));
}

static void test_norms(void) {
    /* group norm: (B, C, HW, G) */
    int64_t gs[][4] = {{1, 4, 1, 2}, {2, 6, 15, 3}, {1, 32, 37, 32}, {3, 8, 9, 1}};
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 3; d++)
            for (int aff = 0; aff < 2; aff++) {
                int64_t B = gs[s][0], C = gs[s][1], HW = gs[s][2], G = gs[s][3], n = B * C * HW;
                float *x = tw_alloc(n), *y = tw_alloc(n), *ref = tw_alloc(n), gv[64], bv[64];
                test_fill(x, n, 11);
                for (int64_t i = 0; i < n; i++) x[i] = x[i] * 3.0f + 10.0f; /* large mean */
                test_fill(gv, C, 12);
                test_fill(bv, C, 13);
                ld_tensor g = tw_make(tw_dtypes[d], gv, 1, (int64_t[]){C});
                ld_tensor b = tw_make(tw_dtypes[d], bv, 1, (int64_t[]){C});
                int64_t cpg = C / G;
                for (int64_t bg = 0; bg < B * G; bg++) ref_norm_segment(ref + bg * cpg * HW, x + bg * cpg * HW, cpg * HW, 1, 1e-5);
                if (aff)
                    for (int64_t i = 0; i < n; i++) {
                        int64_t c = i / HW % C;
                        ref[i] = (float)((double)ref[i] * gv[c] + bv[c]);
                    }
                ld_group_norm(y, x, B, C, HW, G, 1e-5f, aff ? &g : NULL, aff ? &b : NULL);
                char what[96];
                snprintf(what, sizeof what, "group_norm %s B%lld C%lld HW%lld G%lld affine%d", ld_dtype_name(tw_dtypes[d]),
                         (long long)B, (long long)C, (long long)HW, (long long)G, aff);
                test_close(what, y, ref, n, TOL);
                /* fused with SiLU: the bits of the two calls, in place too */
                float *z = tw_alloc(n), *xs = tw_alloc(n);
                memcpy(z, y, sizeof(float) * (size_t)n);
                memcpy(xs, x, sizeof(float) * (size_t)n);
                ld_silu(z, n);
                ld_group_norm_silu(y, x, B, C, HW, G, 1e-5f, aff ? &g : NULL, aff ? &b : NULL);
                CHECK(tw_same(y, z, n), "group_norm_silu differs from group_norm then silu (%s)", what);
                ld_group_norm_silu(xs, xs, B, C, HW, G, 1e-5f, aff ? &g : NULL, aff ? &b : NULL); /* in place */
                CHECK(tw_same(xs, z, n), "group_norm_silu in place differs");
                ld_group_norm(y, x, B, C, HW, G, 1e-5f, aff ? &g : NULL, aff ? &b : NULL);
                ld_group_norm(x, x, B, C, HW, G, 1e-5f, aff ? &g : NULL, aff ? &b : NULL); /* in place */
                CHECK(tw_same(x, y, n), "group_norm in place differs");
                free(z);
                free(xs);
                tw_free(&g);
                tw_free(&b);
                free(x);
                free(y);
                free(ref);
            }

    /* layer norm over rows, and over channels of NCHW */
    int64_t ls[][2] = {{1, 1}, {3, 7}, {20, 320}, {1, 1000}};
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 3; d++)
            for (int aff = 0; aff < 2; aff++) {
                int64_t R = ls[s][0], D = ls[s][1], n = R * D;
                float *x = tw_alloc(n), *y = tw_alloc(n), *ref = tw_alloc(n), *gv = tw_alloc(D), *bv = tw_alloc(D);
                test_fill(x, n, 14);
                for (int64_t i = 0; i < n; i++) x[i] = x[i] * 2.0f - 5.0f;
                test_fill(gv, D, 15);
                test_fill(bv, D, 16);
                ld_tensor g = tw_make(tw_dtypes[d], gv, 1, (int64_t[]){D});
                ld_tensor b = tw_make(tw_dtypes[d], bv, 1, (int64_t[]){D});
                for (int64_t r = 0; r < R; r++) ref_norm_segment(ref + r * D, x + r * D, D, 1, 1e-6);
                if (aff)
                    for (int64_t i = 0; i < n; i++) ref[i] = (float)((double)ref[i] * gv[i % D] + bv[i % D]);
                ld_layer_norm(y, x, R, D, 1e-6f, aff ? &g : NULL, aff ? &b : NULL);
                char what[96];
                snprintf(what, sizeof what, "layer_norm %s rows%lld dim%lld affine%d", ld_dtype_name(tw_dtypes[d]),
                         (long long)R, (long long)D, aff);
                test_close(what, y, ref, n, TOL);

                /* the same numbers as NCHW with B = 1... R treated as HW, D as C after a transpose */
                int64_t B = 2, C = D, HW = R;
                float *xc = tw_alloc(B * n), *yc = tw_alloc(B * n), *rc = tw_alloc(B * n);
                test_fill(xc, B * n, 17);
                for (int64_t bb = 0; bb < B; bb++)
                    for (int64_t p = 0; p < HW; p++) {
                        ref_norm_segment(rc + bb * C * HW + p, xc + bb * C * HW + p, C, HW, 1e-6);
                        if (aff)
                            for (int64_t c = 0; c < C; c++) {
                                float *v = &rc[bb * C * HW + c * HW + p];
                                *v = (float)((double)*v * gv[c] + bv[c]);
                            }
                    }
                ld_layer_norm_channels(yc, xc, B, C, HW, 1e-6f, aff ? &g : NULL, aff ? &b : NULL);
                snprintf(what, sizeof what, "layer_norm_channels %s B2 C%lld HW%lld affine%d", ld_dtype_name(tw_dtypes[d]),
                         (long long)C, (long long)HW, aff);
                test_close(what, yc, rc, B * n, TOL);
                tw_free(&g);
                tw_free(&b);
                free(x);
                free(y);
                free(ref);
                free(gv);
                free(bv);
                free(xc);
                free(yc);
                free(rc);
            }
    /* HW larger than one pixel tile, odd */
    {
        int64_t B = 1, C = 5, HW = 300, n = B * C * HW;
        float *x = tw_alloc(n), *y = tw_alloc(n), *ref = tw_alloc(n);
        test_fill(x, n, 18);
        for (int64_t p = 0; p < HW; p++) ref_norm_segment(ref + p, x + p, C, HW, 1e-6);
        ld_layer_norm_channels(y, x, B, C, HW, 1e-6f, NULL, NULL);
        test_close("layer_norm_channels HW300", y, ref, n, TOL);
        free(x);
        free(y);
        free(ref);
    }
}

static void test_softmax(void) {
    int64_t shapes[][2] = {{1, 1}, {4, 9}, {7, 1000}};
    for (int s = 0; s < 3; s++) {
        int64_t R = shapes[s][0], N = shapes[s][1];
        float *x = tw_alloc(R * N), *ref = tw_alloc(R * N);
        test_fill(x, R * N, 19);
        for (int64_t i = 0; i < R * N; i++) x[i] = x[i] * 30.0f + 50.0f; /* large values need the max shift */
        if (N > 1) x[0] = -INFINITY;                                     /* masked entry */
        for (int64_t r = 0; r < R; r++) {
            double sum = 0;
            for (int64_t i = 0; i < N; i++) sum += exp((double)x[r * N + i] - 80.0);
            for (int64_t i = 0; i < N; i++) ref[r * N + i] = (float)(exp((double)x[r * N + i] - 80.0) / sum);
        }
        ld_softmax_rows(x, R, N);
        char what[64];
        snprintf(what, sizeof what, "softmax_rows %lldx%lld", (long long)R, (long long)N);
        test_close(what, x, ref, R * N, TOL);
        free(x);
        free(ref);
    }
}

/* ---- layout ---- */

static void test_layout(void) {
    int64_t B = 2, C = 5, H = 6, W = 4, HW = H * W, n = B * C * HW;
    float *x = tw_alloc(n), *y = tw_alloc(n), *z = tw_alloc(n);
    test_fill(x, n, 20);
    ld_nchw_to_nhwc(y, x, B, C, HW);
    int ok = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) ok &= y[(b * HW + p) * C + c] == x[(b * C + c) * HW + p];
    CHECK(ok, "nchw_to_nhwc");
    ld_nhwc_to_nchw(z, y, B, C, HW);
    CHECK(tw_same(z, x, n), "nhwc_to_nchw round trip");

    /* big enough for several transpose tiles */
    int64_t C2 = 70, HW2 = 45, n2 = C2 * HW2;
    float *a = tw_alloc(n2), *bq = tw_alloc(n2), *cq = tw_alloc(n2);
    test_fill(a, n2, 21);
    ld_nchw_to_nhwc(bq, a, 1, C2, HW2);
    ok = 1;
    for (int64_t c = 0; c < C2; c++)
        for (int64_t p = 0; p < HW2; p++) ok &= bq[p * C2 + c] == a[c * HW2 + p];
    CHECK(ok, "nchw_to_nhwc 70x45");
    ld_nhwc_to_nchw(cq, bq, 1, C2, HW2);
    CHECK(tw_same(cq, a, n2), "nhwc_to_nchw 70x45");

    /* concat */
    int64_t Ca = 2, Cb = 3;
    float *ca = tw_alloc(B * Ca * HW), *cb = tw_alloc(B * Cb * HW), *cy = tw_alloc(B * (Ca + Cb) * HW);
    test_fill(ca, B * Ca * HW, 22);
    test_fill(cb, B * Cb * HW, 23);
    ld_concat_channels(cy, ca, Ca, cb, Cb, B, HW);
    ok = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < Ca + Cb; c++)
            for (int64_t p = 0; p < HW; p++) {
                float want = c < Ca ? ca[(b * Ca + c) * HW + p] : cb[(b * Cb + c - Ca) * HW + p];
                ok &= cy[(b * (Ca + Cb) + c) * HW + p] == want;
            }
    CHECK(ok, "concat_channels");

    /* pixel unshuffle / shuffle, r = 2 and 3 */
    for (int r = 2; r <= 3; r++) {
        int64_t Cs = 2, Hs = 3 * r, Ws = 2 * r, ns = B * Cs * Hs * Ws;
        float *xs = tw_alloc(ns), *us = tw_alloc(ns), *ss = tw_alloc(ns);
        test_fill(xs, ns, 24);
        ld_pixel_unshuffle(us, xs, B, Cs, Hs, Ws, r);
        int64_t Cu = Cs * r * r, Hu = Hs / r, Wu = Ws / r;
        ok = 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < Cs; c++)
                for (int i = 0; i < r; i++)
                    for (int j = 0; j < r; j++)
                        for (int64_t h = 0; h < Hu; h++)
                            for (int64_t w = 0; w < Wu; w++)
                                ok &= us[((b * Cu + c * r * r + i * r + j) * Hu + h) * Wu + w] ==
                                      xs[((b * Cs + c) * Hs + h * r + i) * Ws + w * r + j];
        CHECK(ok, "pixel_unshuffle r=%d", r);
        ld_pixel_shuffle(ss, us, B, Cu, Hu, Wu, r);
        CHECK(tw_same(ss, xs, ns), "pixel_shuffle inverts unshuffle r=%d", r);
        free(xs);
        free(us);
        free(ss);
    }
    free(x);
    free(y);
    free(z);
    free(a);
    free(bq);
    free(cq);
    free(ca);
    free(cb);
    free(cy);
}

/* ---- timestep embedding ---- */

static void test_timestep(void) {
    float t[3] = {0.0f, 1.0f, 999.0f};
    int dims[] = {320, 7, 64};
    for (int s = 0; s < 3; s++)
        for (int flip = 0; flip < 2; flip++) {
            int dim = dims[s], half = dim / 2;
            float shift = flip ? 0.0f : 1.0f, scale = s == 2 ? 1000.0f : 1.0f;
            float *y = tw_alloc(3 * dim), *ref = tw_alloc(3 * dim);
            for (int r = 0; r < 3; r++) {
                float tt = s == 2 ? t[r] / 1000.0f : t[r];
                for (int i = 0; i < half; i++) {
                    double f = exp(-log(10000.0) * i / (half - shift));
                    double arg = scale * tt * f;
                    ref[r * dim + (flip ? half + i : i)] = (float)sin(arg);
                    ref[r * dim + (flip ? i : half + i)] = (float)cos(arg);
                }
                if (dim % 2) ref[r * dim + dim - 1] = 0.0f;
            }
            float ts[3] = {t[0], t[1], t[2]};
            if (s == 2)
                for (int r = 0; r < 3; r++) ts[r] = t[r] / 1000.0f;
            ld_timestep_embedding(y, ts, 3, dim, flip, shift, scale, 10000.0f);
            char what[64];
            snprintf(what, sizeof what, "timestep_embedding dim%d flip%d", dim, flip);
            /* args reach ~1000: float rounding of the argument itself allows ~1e-4 */
            test_close(what, y, ref, 3 * dim, 2e-4);
            free(y);
            free(ref);
        }
}

/* ---- thread-count invariance ---- */

static void test_threads(void) {
    int64_t B = 2, C = 64, HW = 600, n = B * C * HW;
    float *x = tw_alloc(n), *y1 = tw_alloc(n), *y2 = tw_alloc(n), gv[64], bv[64];
    test_fill(x, n, 30);
    test_fill(gv, C, 31);
    test_fill(bv, C, 32);
    ld_tensor g = tw_make(LD_F16, gv, 1, (int64_t[]){C});
    ld_tensor b = tw_make(LD_F16, bv, 1, (int64_t[]){C});
    ld_tensor w = tw_make(LD_BF16, x, 2, (int64_t[]){100, 64});
    for (int pass = 0; pass < 5; pass++) {
        float *outs[2] = {y1, y2};
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            float *o = outs[th - 1];
            switch (pass) {
            case 0: ld_group_norm(o, x, B, C, HW, 32, 1e-5f, &g, &b); break;
            case 1: ld_layer_norm(o, x, B * HW, C, 1e-5f, &g, &b); break;
            case 2: ld_layer_norm_channels(o, x, B, C, HW, 1e-6f, &g, &b); break;
            case 3:
                memcpy(o, x, (size_t)n * sizeof(float));
                ld_softmax_rows(o, B * C, HW);
                break;
            default: ld_linear(o, x, n / 64 / 2, &w, NULL); break;
            }
        }
        CHECK(tw_same(y1, y2, pass == 4 ? n / 64 / 2 * 100 : n), "thread invariance pass %d", pass);
    }
    omp_set_num_threads(2);
    tw_free(&g);
    tw_free(&b);
    tw_free(&w);
    free(x);
    free(y1);
    free(y2);
}

int main(void) {
    test_elementwise();
    test_linear();
    test_norms();
    test_softmax();
    test_layout();
    test_timestep();
    test_threads();
    /* activations on the extremes */
    {
        float ex[8] = {-100.0f, -88.5f, -20.0f, -1e-30f, 0.0f, 1e-30f, 20.0f, 100.0f};
        const char *nm[] = {"silu", "gelu_erf", "gelu_tanh", "quick_gelu", "sigmoid"};
        for (int a = 0; a < 5; a++) {
            float x[8], ref[8];
            for (int i = 0; i < 8; i++) {
                x[i] = ex[i];
                ref[i] = (float)ref_act(a, ex[i]);
            }
            apply_act(a, x, 8);
            char what[64];
            snprintf(what, sizeof what, "%s at the extremes", nm[a]);
            test_close(what, x, ref, 8, TOL);
        }
    }
    return test_finish();
}
