/* Tests for ld_gemm on every kernel path this machine has (portable, avx2,
 * avx512, avx512-bf16, neon; forced with ld_cpu_force like LEANDIFF_CPU does;
 * aarch64 runs under qemu through tools/cross-test-arm64.sh),
 * against ld_gemm_reference over many shapes, strides, dtypes, betas and
 * biases; bitwise invariance to the thread count; the implicit-GEMM conv
 * operand (ld_im2col_fill) against a naive convolution written here; operands
 * packed once (gemm_packed.h) against ld_gemm bit for bit; the kernels' stack
 * entry against their micro-kernel bit for bit; and the CPU
 * detection helpers.
 *
 * Tolerances: f32 paths |c - ref| <= 1e-5 * (sum_k |a||b| + |bias| + |beta c0|);
 * bf16 path the same against the reference in bf16 precision (identical input
 * rounding), and 2^-7 * scale against the f32 reference.
 */
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cpu.h"
#include "tensor/gemm.h"
#include "tensor/gemm_attention.h"
#include "tensor/gemm_kernels.h"
#include "tensor/gemm_packed.h"
#include "test_util.h"

static uint32_t g_seed = 12345;
static float frand(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

/* A matrix with its own storage: rows x cols view with strides rs, cs. */
typedef struct {
    ld_mat m;
    void *buf;
    float *f; /* f32 values of the stored elements, same indexing */
    int64_t n;
} test_mat;

/* layout 0: row-major, 1: column-major (transposed), 2: padded rows, 3: both strides > 1 */
static test_mat make_mat(int64_t rows, int64_t cols, ld_dtype dt, int layout) {
    test_mat t;
    int64_t rs, cs, n;
    switch (layout) {
    case 1: rs = 1, cs = rows, n = rows * cols; break;
    case 2: rs = cols + 3, cs = 1, n = rows * (cols + 3); break;
    case 3: rs = 2 * cols + 1, cs = 2, n = rows * (2 * cols + 1); break;
    default: rs = cols, cs = 1, n = rows * cols; break;
    }
    if (n < 1) n = 1;
    t.n = n;
    t.f = malloc(sizeof(float) * (size_t)n);
    t.buf = malloc(dt == LD_F32 ? 4 * (size_t)n : 2 * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float v = frand();
        if (dt == LD_F16) {
            ((uint16_t *)t.buf)[i] = ld_f32_to_f16(v);
            v = ld_f16_to_f32(((uint16_t *)t.buf)[i]);
        } else if (dt == LD_BF16) {
            ((uint16_t *)t.buf)[i] = ld_f32_to_bf16(v);
            v = ld_bf16_to_f32(((uint16_t *)t.buf)[i]);
        } else {
            ((float *)t.buf)[i] = v;
        }
        t.f[i] = v;
    }
    t.m.dtype = dt;
    t.m.data = t.buf;
    t.m.rs = rs;
    t.m.cs = cs;
    return t;
}

static void free_mat(test_mat *t) {
    free(t->buf);
    free(t->f);
}

typedef struct {
    const char *name;
    ld_cpu_level_t level;
    ld_precision prec;
    int amx; /* bf16 products of depth a multiple of 32 on AMX tiles */
} path;

static path g_paths[8];
static int g_npaths;

static void add_path(const char *name, ld_cpu_level_t level, ld_precision prec, int amx) {
    if (ld_cpu_force(level) != level) return; /* not on this machine */
    if (amx && !ld_cpu_set_amx(1)) return;
    path p = {name, level, prec, amx};
    g_paths[g_npaths++] = p;
}

/* The machine's own path: the best level, AMX on where it has it. */
static void restore_best(void) {
    ld_cpu_force(ld_cpu_info_get()->best);
    ld_cpu_set_amx(1);
}

/* Puts a path in force: its level, AMX on or off. */
static void use_path(const path *p) {
    ld_cpu_force(p->level);
    ld_cpu_set_amx(p->amx);
}

static double g_max_rel_f32, g_max_rel_bf16, g_max_att, g_max_att_bf16;

/* One case on every path. */
static void check_case(int64_t M, int64_t N, int64_t K, ld_dtype adt, int alay, ld_dtype bdt, int blay, float beta,
                       int bias_n_on, int bias_m_on, int64_t ldc_pad) {
    test_mat A = make_mat(M, K, adt, alay), B = make_mat(K, N, bdt, blay);
    float *bn_data = malloc(sizeof(float) * (size_t)N), *bm_data = malloc(sizeof(float) * (size_t)M);
    for (int64_t j = 0; j < N; j++) bn_data[j] = frand();
    for (int64_t i = 0; i < M; i++) bm_data[i] = frand();
    ld_tensor bn = {.dtype = LD_F32, .ndim = 1, .shape = {N}, .data = bn_data};
    ld_tensor bm = {.dtype = LD_F32, .ndim = 1, .shape = {M}, .data = bm_data};
    const int64_t ldc = N + ldc_pad;
    const size_t cn = (size_t)(M * ldc);
    float *c0 = malloc(sizeof(float) * cn), *ref = malloc(sizeof(float) * cn), *ref16 = malloc(sizeof(float) * cn);
    float *c = malloc(sizeof(float) * cn), *scale = malloc(sizeof(float) * cn);
    for (size_t i = 0; i < cn; i++) c0[i] = beta == 0.0f ? NAN : frand(); /* beta 0 must not read C */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += fabs(A.f[i * A.m.rs + k * A.m.cs]) * fabs(B.f[k * B.m.rs + j * B.m.cs]);
            if (bias_n_on) s += fabs(bn_data[j]);
            if (bias_m_on) s += fabs(bm_data[i]);
            if (beta != 0.0f) s += fabs(beta * c0[i * ldc + j]);
            scale[i * ldc + j] = (float)s + 1e-30f;
        }
    const ld_tensor *pbn = bias_n_on ? &bn : NULL, *pbm = bias_m_on ? &bm : NULL;
    memcpy(ref, c0, sizeof(float) * cn);
    ld_gemm_set_precision(LD_PRECISION_F32);
    ld_gemm_reference(M, N, K, &A.m, &B.m, ref, ldc, beta, pbn, pbm);
    memcpy(ref16, c0, sizeof(float) * cn);
    ld_gemm_set_precision(LD_PRECISION_BF16);
    ld_gemm_reference(M, N, K, &A.m, &B.m, ref16, ldc, beta, pbn, pbm);

    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        int bf16 = g_paths[p].prec == LD_PRECISION_BF16;
        memcpy(c, c0, sizeof(float) * cn);
        ld_gemm(M, N, K, &A.m, &B.m, c, ldc, beta, pbn, pbm);
        double worst = 0, worst_f32 = 0;
        int64_t bad_i = -1, bad_j = -1, pad_bad = 0;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < ldc; j++) {
                size_t x = (size_t)(i * ldc + j);
                if (j >= N) { /* padding between rows must be untouched */
                    if (memcmp(&c[x], &c0[x], 4)) pad_bad++;
                    continue;
                }
                double e = fabs((double)c[x] - (bf16 ? ref16[x] : ref[x])) / scale[x];
                if (!(e <= worst)) {
                    worst = isnan(e) ? INFINITY : e;
                    bad_i = i;
                    bad_j = j;
                }
                double ef = fabs((double)c[x] - ref[x]) / scale[x];
                if (!(ef <= worst_f32)) worst_f32 = isnan(ef) ? INFINITY : ef;
            }
        }
        if (bf16) {
            if (worst > g_max_rel_bf16) g_max_rel_bf16 = worst;
        } else if (worst > g_max_rel_f32) {
            g_max_rel_f32 = worst;
        }
        CHECK(worst <= 1e-5, "%s (%s): %lldx%lldx%lld A %s/%d B %s/%d beta %g bias %d%d: rel err %.3g at (%lld,%lld)",
              g_paths[p].name, ld_gemm_kernel_name(), (long long)M, (long long)N, (long long)K, ld_dtype_name(adt),
              alay, ld_dtype_name(bdt), blay, beta, bias_n_on, bias_m_on, worst, (long long)bad_i, (long long)bad_j);
        if (bf16)
            CHECK(worst_f32 <= 1.0 / 128, "%s: %lldx%lldx%lld bf16 error vs f32 reference %.3g", g_paths[p].name,
                  (long long)M, (long long)N, (long long)K, worst_f32);
        CHECK(pad_bad == 0, "%s: %lld padding elements of C written", g_paths[p].name, (long long)pad_bad);
    }
    ld_gemm_set_precision(LD_PRECISION_F32);
    free_mat(&A);
    free_mat(&B);
    free(bn_data);
    free(bm_data);
    free(c0);
    free(ref);
    free(ref16);
    free(c);
    free(scale);
}

/* The biases are added after the sum, bias_n then bias_m (the order of
 * ld_gemm_reference), whether the kernel adds them in registers (AVX-512
 * micro_bias) or a pass over C does: on every path, the product with
 * biases equals, bit for bit, the same product without them followed by
 * those two additions in scalar code. */
static void check_bias_order(int64_t M, int64_t N, int64_t K, int blay, float beta) {
    test_mat A = make_mat(M, K, LD_F32, 0), B = make_mat(K, N, LD_F16, blay);
    float *bnd = malloc(sizeof(float) * (size_t)N), *bmd = malloc(sizeof(float) * (size_t)M);
    for (int64_t j = 0; j < N; j++) bnd[j] = frand();
    for (int64_t i = 0; i < M; i++) bmd[i] = frand();
    ld_tensor bn = {.dtype = LD_F32, .ndim = 1, .shape = {N}, .data = bnd};
    ld_tensor bm = {.dtype = LD_F32, .ndim = 1, .shape = {M}, .data = bmd};
    size_t cn = (size_t)(M * N);
    float *c0 = malloc(4 * cn), *with = malloc(4 * cn), *plain = malloc(4 * cn);
    for (size_t i = 0; i < cn; i++) c0[i] = frand();
    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        for (int which = 1; which <= 3; which++) { /* 1: bias_n, 2: bias_m, 3: both */
            memcpy(with, c0, 4 * cn);
            memcpy(plain, c0, 4 * cn);
            ld_gemm(M, N, K, &A.m, &B.m, with, N, beta, which & 1 ? &bn : NULL, which & 2 ? &bm : NULL);
            ld_gemm(M, N, K, &A.m, &B.m, plain, N, beta, NULL, NULL);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    float v = plain[i * N + j];
                    if (which & 1) v += bnd[j];
                    if (which & 2) v += bmd[i];
                    plain[i * N + j] = v;
                }
            CHECK(memcmp(with, plain, 4 * cn) == 0, "%s: %lldx%lldx%lld biases %d not added after the sum in order",
                  g_paths[p].name, (long long)M, (long long)N, (long long)K, which);
        }
    }
    ld_gemm_set_precision(LD_PRECISION_F32);
    free_mat(&A);
    free_mat(&B);
    free(bnd);
    free(bmd);
    free(c0);
    free(with);
    free(plain);
}

/* Results must be bitwise equal for 1, 2 and 3 threads on every path. */
static void check_threads(int64_t M, int64_t N, int64_t K, int blay, float beta) {
    test_mat A = make_mat(M, K, LD_F32, 0), B = make_mat(K, N, LD_F16, blay);
    float *bias = malloc(sizeof(float) * (size_t)N);
    for (int64_t j = 0; j < N; j++) bias[j] = frand();
    ld_tensor bn = {.dtype = LD_F32, .ndim = 1, .shape = {N}, .data = bias};
    size_t cn = (size_t)(M * N);
    float *c0 = malloc(4 * cn), *c1 = malloc(4 * cn), *c = malloc(4 * cn);
    for (size_t i = 0; i < cn; i++) c0[i] = frand();
    int saved = omp_get_max_threads();
    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        for (int nt = 1; nt <= 3; nt++) {
            omp_set_num_threads(nt);
            float *dst = nt == 1 ? c1 : c;
            memcpy(dst, c0, 4 * cn);
            ld_gemm(M, N, K, &A.m, &B.m, dst, N, beta, &bn, NULL);
            if (nt > 1)
                CHECK(memcmp(c1, c, 4 * cn) == 0, "%s: %lldx%lldx%lld differs between 1 and %d threads",
                      g_paths[p].name, (long long)M, (long long)N, (long long)K, nt);
        }
    }
    omp_set_num_threads(saved);
    ld_gemm_set_precision(LD_PRECISION_F32);
    free_mat(&A);
    free_mat(&B);
    free(bias);
    free(c0);
    free(c1);
    free(c);
}

/* gemm_packed.h: operands packed once and run on the calling thread give
 * ld_gemm's bits on every path, both with C overwritten and accumulated. */
static void check_packed(void) {
    static const int64_t shapes[][3] = {{70, 90, 40}, {300, 64, 64}, {64, 37, 1030}, {29, 100, 257}};
    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        for (int s = 0; s < 4; s++) {
            const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            test_mat A = make_mat(M, K, LD_F32, s % 2), B = make_mat(K, N, LD_F32, (s + 1) % 3);
            float *c1 = malloc(sizeof(float) * (size_t)(M * N)), *c2 = malloc(sizeof(float) * (size_t)(M * N));
            ld_gemm_packing pk;
            ld_gemm_packing_for(&pk, M, N, K);
            void *ap = malloc(ld_gemm_packed_a_bytes(&pk, M, K)), *bp = malloc(ld_gemm_packed_b_bytes(&pk, K, N));
            float *tile = malloc(sizeof(float) * (size_t)ld_gemm_packed_tile_floats(&pk, K));
            ld_gemm_pack_a(&pk, ap, &A.m, M, K, tile);
            ld_gemm_pack_b(&pk, bp, &B.m, K, N, tile);
            CHECK(ld_gemm_packed_ok(M, N, K), "%lldx%lldx%lld is a packed product", (long long)M, (long long)N,
                  (long long)K);
            for (int load = 0; load < 2; load++) {
                for (int64_t i = 0; i < M * N; i++) c1[i] = c2[i] = frand();
                ld_gemm(M, N, K, &A.m, &B.m, c1, N, load ? 1.0f : 0.0f, NULL, NULL);
                ld_gemm_packed_run(&pk, M, N, K, ap, bp, c2, N, load);
                CHECK(memcmp(c1, c2, sizeof(float) * (size_t)(M * N)) == 0,
                      "%s: packed %lldx%lldx%lld (load %d) differs from ld_gemm", g_paths[p].name, (long long)M,
                      (long long)N, (long long)K, load);
            }
            free(c1), free(c2), free(ap), free(bp), free(tile);
            free_mat(&A);
            free_mat(&B);
        }
    }
    ld_gemm_set_precision(LD_PRECISION_F32);
    restore_best();
    CHECK(!ld_gemm_packed_ok(8, 8, 8) && !ld_gemm_packed_ok(0, 50, 50), "tiny products are not packed ones");
}

/* Each kernel's stack entry (attention's short products) against its
 * micro-kernel tile by tile: the same bits, with and without load. The
 * kernels of the best level, both tiles (the shapes pick them on AVX-512);
 * a kernel without a stack entry is skipped. */
static void check_stack(void) {
    restore_best();
    const ld_gemm_kernel *ks[] = {ld_gemm_kernel_f32_for(4096, 640), ld_gemm_kernel_f32_for(16, 96),
                                  ld_gemm_kernel_bf16_for(4096, 640, 0), ld_gemm_kernel_bf16_for(128, 480, 0)};
    for (int q = 0; q < 4; q++) {
        const ld_gemm_kernel *kr = ks[q];
        if (!kr || !kr->stack) continue;
        const int64_t MR = kr->mr, NR = kr->nr, np = 3, kc = 37, kp = kr->bf16 ? (kc + 1) / 2 * 2 : kc;
        const int64_t es = kr->bf16 ? 2 : 4, astride = MR * kp * es + 64;
        char *a = malloc((size_t)(np * astride)), *b = malloc((size_t)(kp * NR * es));
        float *c1 = malloc(sizeof(float) * (size_t)(np * MR * NR)), *c2 = malloc(sizeof(float) * (size_t)(np * MR * NR));
        for (int64_t i = 0; i < np * astride / es; i++)
            if (kr->bf16) ((uint16_t *)a)[i] = ld_f32_to_bf16(frand());
            else ((float *)a)[i] = frand();
        for (int64_t i = 0; i < kp * NR; i++)
            if (kr->bf16) ((uint16_t *)b)[i] = ld_f32_to_bf16(frand());
            else ((float *)b)[i] = frand();
        for (int load = 0; load < 2; load++) {
            for (int64_t i = 0; i < np * MR * NR; i++) c1[i] = c2[i] = frand();
            kr->stack(np, kc, a, astride, b, c1, load);
            for (int64_t t = 0; t < np; t++) kr->micro(kc, a + t * astride, b, c2 + t * MR * NR, NR, load);
            CHECK(memcmp(c1, c2, sizeof(float) * (size_t)(np * MR * NR)) == 0, "%s: stack (load %d) differs from micro",
                  kr->name, load);
        }
        free(a), free(b), free(c1), free(c2);
    }
}

/* ld_gemm called from inside a parallel region (one product per thread, the
 * buffer pool shared): same bits as the serial calls. Also f16 biases. */
static void check_nested(void) {
    enum { T = 4 };
    const int64_t M = 90, N = 70, K = 300;
    test_mat A = make_mat(M, K, LD_F32, 0), B = make_mat(K, N, LD_BF16, 1);
    uint16_t bias16[70];
    for (int64_t j = 0; j < N; j++) bias16[j] = ld_f32_to_f16(frand());
    ld_tensor bn = {.dtype = LD_F16, .ndim = 1, .shape = {N}, .data = bias16};
    float *serial = malloc(sizeof(float) * (size_t)(T * M * N)), *par = malloc(sizeof(float) * (size_t)(T * M * N));
    for (int t = 0; t < T; t++) {
        ld_mat At = A.m;
        At.data = (const float *)A.buf + t; /* each product a different window of A */
        ld_gemm(M, N, K - T, &At, &B.m, serial + t * M * N, N, 0.0f, &bn, NULL);
    }
    #pragma omp parallel for num_threads(T)
    for (int t = 0; t < T; t++) {
        ld_mat At = A.m;
        At.data = (const float *)A.buf + t;
        ld_gemm(M, N, K - T, &At, &B.m, par + t * M * N, N, 0.0f, &bn, NULL);
    }
    CHECK(memcmp(serial, par, sizeof(float) * (size_t)(T * M * N)) == 0, "ld_gemm inside a parallel region differs");
    /* and against the reference, with the f16 bias */
    float *ref = malloc(sizeof(float) * (size_t)(M * N));
    ld_mat A0 = A.m;
    ld_gemm_reference(M, N, K - T, &A0, &B.m, ref, N, 0.0f, &bn, NULL);
    double worst = 0;
    for (int64_t i = 0; i < M * N; i++) {
        double e = fabs(serial[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    CHECK(worst < 1e-4, "f16 bias product: err %.3g", worst);
    free(ref);
    free(serial);
    free(par);
    free_mat(&A);
    free_mat(&B);
}

/* ld_im2col_fill on windows [k0, k0+kc) x [j0, j0+n) that start and end
 * anywhere (mid kernel row, mid output row, more output rows than one call
 * cuts at once) against B(k, j) gathered by its definition in gemm.h. */
/* A whole number in [0, n). */
static int64_t below(int64_t n) { return (int64_t)((frand() + 1.0f) * 0.5f * (float)n) % n; }

static void check_im2col_windows(int64_t C, int64_t H, int64_t W, int k, int stride, int pad, int dil, int replicate) {
    const int64_t Ho = (H + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    const int64_t Wo = (W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    const int64_t K = C * k * k, N = Ho * Wo;
    float *x = malloc(sizeof(float) * (size_t)(C * H * W)), *t = malloc(sizeof(float) * (size_t)(K * (N + 3)));
    for (int64_t i = 0; i < C * H * W; i++) x[i] = frand();
    ld_im2col src = {x, C, H, W, k, k, stride, stride, pad, pad, dil, dil, Ho, Wo, replicate};
    int bad = 0;
    for (int trial = 0; trial < 40 && !bad; trial++) {
        const int64_t k0 = trial == 0 ? 0 : below(K), kc = trial == 0 ? K : 1 + below(K - k0);
        const int64_t j0 = trial == 0 ? 0 : below(N), n = trial == 0 ? N : 1 + below(N - j0);
        const int64_t ld = n + trial % 3;
        ld_im2col_fill(&src, k0, kc, j0, n, t, ld);
        for (int64_t kk = 0; kk < kc && !bad; kk++)
            for (int64_t jj = 0; jj < n && !bad; jj++) {
                const int64_t kq = k0 + kk, j = j0 + jj, c = kq / (k * k), ky = kq / k % k, kx = kq % k;
                int64_t iy = j / Wo * stride - pad + ky * dil, ix = j % Wo * stride - pad + kx * dil;
                float want = 0.0f;
                if (replicate) {
                    iy = iy < 0 ? 0 : iy >= H ? H - 1 : iy;
                    ix = ix < 0 ? 0 : ix >= W ? W - 1 : ix;
                    want = x[(c * H + iy) * W + ix];
                } else if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                    want = x[(c * H + iy) * W + ix];
                }
                if (t[kk * ld + jj] != want) bad = 1;
            }
    }
    CHECK(!bad, "im2col windows C %lld %lldx%lld k%d s%d p%d d%d rep %d", (long long)C, (long long)H, (long long)W,
          k, stride, pad, dil, replicate);
    free(x);
    free(t);
}

/* Convolution through ld_im2col_fill + ld_gemm_fill_b vs a naive loop. */
static void check_conv(int64_t Cin, int64_t H, int64_t W, int64_t Cout, int k, int stride, int pad, int dil,
                       int replicate) {
    int64_t Ho = (H + 2 * pad - dil * (k - 1) - 1) / stride + 1, Wo = (W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    int64_t K = Cin * k * k, N = Ho * Wo;
    float *x = malloc(sizeof(float) * (size_t)(Cin * H * W)), *w = malloc(sizeof(float) * (size_t)(Cout * K));
    float *y = malloc(sizeof(float) * (size_t)(Cout * N)), *r = malloc(sizeof(float) * (size_t)(Cout * N));
    float *bias = malloc(sizeof(float) * (size_t)Cout);
    for (int64_t i = 0; i < Cin * H * W; i++) x[i] = frand();
    for (int64_t i = 0; i < Cout * K; i++) w[i] = frand();
    for (int64_t i = 0; i < Cout; i++) bias[i] = frand();
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                double s = bias[o];
                for (int64_t c = 0; c < Cin; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int64_t iy = oy * stride - pad + ky * dil, ix = ox * stride - pad + kx * dil;
                            if (replicate) {
                                iy = iy < 0 ? 0 : iy >= H ? H - 1 : iy;
                                ix = ix < 0 ? 0 : ix >= W ? W - 1 : ix;
                            } else if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                                continue;
                            }
                            s += (double)w[(o * Cin + c) * k * k + ky * k + kx] * x[(c * H + iy) * W + ix];
                        }
                r[o * N + oy * Wo + ox] = (float)s;
            }
    ld_tensor bt = {.dtype = LD_F32, .ndim = 1, .shape = {Cout}, .data = bias};
    ld_im2col src = {x, Cin, H, W, k, k, stride, stride, pad, pad, dil, dil, Ho, Wo, replicate};
    ld_gemm_bfill f = {ld_im2col_fill, &src};
    ld_mat A = ld_mat_f32(w, K, 1);
    /* BF16 paths: against the reference in bf16 mode on the explicit im2col matrix */
    float *col = malloc(sizeof(float) * (size_t)(K * N)), *r16 = malloc(sizeof(float) * (size_t)(Cout * N));
    float *y2 = malloc(sizeof(float) * (size_t)(Cout * N));
    ld_im2col_fill(&src, 0, K, 0, N, col, N);
    ld_mat Col = ld_mat_f32(col, N, 1);
    ld_gemm_set_precision(LD_PRECISION_BF16);
    ld_gemm_reference(Cout, N, K, &A, &Col, r16, N, 0.0f, NULL, &bt);
    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        const float *want = g_paths[p].prec == LD_PRECISION_BF16 ? r16 : r;
        ld_gemm_fill_b(Cout, N, K, &A, &f, y, N, 0.0f, NULL, &bt);
        double worst = 0;
        for (int64_t i = 0; i < Cout * N; i++) {
            double e = fabs(y[i] - want[i]) / (1.0 + fabs(want[i]));
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        CHECK(worst < 1e-4, "%s conv Cin %lld %lldx%lld Cout %lld k%d s%d p%d d%d rep %d: err %.3g",
              g_paths[p].name, (long long)Cin, (long long)H, (long long)W, (long long)Cout, k, stride, pad, dil,
              replicate, worst);
        /* 1 and 3 threads: other task grids (one row of tasks, or B filled once for several) */
        const int saved = omp_get_max_threads();
        for (int nt = 1; nt <= 3; nt += 2) {
            omp_set_num_threads(nt);
            ld_gemm_fill_b(Cout, N, K, &A, &f, y2, N, 0.0f, NULL, &bt);
            CHECK(memcmp(y2, y, sizeof(float) * (size_t)(Cout * N)) == 0, "%s conv Cout %lld N %lld: %d threads differ",
                  g_paths[p].name, (long long)Cout, (long long)N, nt);
        }
        omp_set_num_threads(saved);
    }
    ld_gemm_set_precision(LD_PRECISION_F32);
    free(col);
    free(y2);
    free(r16);
    free(x);
    free(w);
    free(y);
    free(r);
    free(bias);
}

/* ld_gemm_attention vs textbook attention in double written here. flags: 1
 * causal, 2 additive mask, 4 key padding (batch 1 loses every key). */
static void check_attention(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int flags) {
    const int64_t HD = H * D, ldq = HD + 3, ldk = 2 * HD, ldv = HD + 1, ldo = HD + 5;
    float *q = malloc(sizeof(float) * (size_t)(B * Lq * ldq)), *k = malloc(sizeof(float) * (size_t)(B * Lk * ldk + 1));
    float *v = malloc(sizeof(float) * (size_t)(B * Lk * ldv + 1)), *o = malloc(sizeof(float) * (size_t)(B * Lq * ldo));
    float *o1 = malloc(sizeof(float) * (size_t)(B * Lq * ldo)), *mask = malloc(sizeof(float) * (size_t)(B * Lq * Lk + 1));
    uint8_t *keep = malloc((size_t)(B * Lk + 1));
    for (int64_t i = 0; i < B * Lq * ldq; i++) q[i] = 2 * frand();
    for (int64_t i = 0; i < B * Lk * ldk; i++) k[i] = 2 * frand();
    for (int64_t i = 0; i < B * Lk * ldv; i++) v[i] = frand();
    for (int64_t i = 0; i < B * Lq * Lk; i++) mask[i] = frand() < -0.8f ? -INFINITY : frand();
    for (int64_t i = 0; i < B * Lk; i++) keep[i] = (i / Lk == 1) ? 0 : frand() > -0.5f;
    ld_attn_params p = {0};
    p.scale = 1.0f / sqrtf((float)D);
    p.causal = flags & 1;
    if (flags & 2) {
        p.mask = mask;
        p.mask_b = Lq * Lk;
        p.mask_q = Lk;
    }
    if (flags & 4) p.key_keep = keep;
    double *ref = calloc((size_t)(B * Lq * HD), sizeof(double)), *sc = malloc(sizeof(double) * (size_t)(Lk + 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++)
                        s += (double)q[(b * Lq + i) * ldq + h * D + d] * k[(b * Lk + j) * ldk + h * D + d];
                    s *= p.scale;
                    if (p.mask) s += mask[b * Lq * Lk + i * Lk + j];
                    if ((p.causal && j > i) || (p.key_keep && !keep[b * Lk + j])) s = -INFINITY;
                    sc[j] = s;
                    if (s > mx) mx = s;
                }
                if (mx == -INFINITY) continue; /* no key: zeros */
                for (int64_t j = 0; j < Lk; j++) {
                    sc[j] = exp(sc[j] - mx);
                    sum += sc[j];
                }
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++) acc += sc[j] * v[(b * Lk + j) * ldv + h * D + d];
                    ref[(b * Lq + i) * HD + h * D + d] = acc / sum;
                }
            }
    int saved = omp_get_max_threads();
    for (int pi = 0; pi < g_npaths; pi++) {
        use_path(&g_paths[pi]);
        ld_gemm_set_precision(g_paths[pi].prec);
        /* bf16 products (Q*scale, K, V and P rounded to bf16): the error of
         * 8-bit mantissas on scores of size ~3 and outputs of size ~1 */
        const int bf16 = g_paths[pi].prec == LD_PRECISION_BF16 && strstr(ld_gemm_kernel_name(), "emulated") == NULL;
        const double tol = bf16 ? 1.5e-2 : 2e-6;
        omp_set_num_threads(saved);
        for (int64_t i = 0; i < B * Lq * ldo; i++) o[i] = o1[i] = 77.0f; /* gaps between rows stay */
        int ok = ld_gemm_attention(o, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, &p);
        double worst = 0;
        int64_t gaps = 0;
        for (int64_t r = 0; r < B * Lq; r++) {
            for (int64_t c = 0; c < HD; c++) {
                double e = fabs(o[r * ldo + c] - ref[r * HD + c]);
                if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            }
            for (int64_t c = HD; c < ldo; c++) gaps += o[r * ldo + c] != 77.0f;
        }
        CHECK(ok && worst <= tol && gaps == 0, "%s attention B%lld H%lld Lq%lld Lk%lld D%lld flags %d: err %.3g gaps %lld",
              g_paths[pi].name, (long long)B, (long long)H, (long long)Lq, (long long)Lk, (long long)D, flags, worst,
              (long long)gaps);
        if (bf16 && worst > g_max_att_bf16) g_max_att_bf16 = worst;
        if (!bf16 && worst > g_max_att) g_max_att = worst;
        /* 1 thread: a different work split (and packing K/V once per item) */
        omp_set_num_threads(1);
        ld_gemm_attention(o1, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, &p);
        double worst1 = 0;
        for (int64_t r = 0; r < B * Lq; r++)
            for (int64_t c = 0; c < HD; c++) {
                double e = fabs(o1[r * ldo + c] - ref[r * HD + c]);
                if (!(e <= worst1)) worst1 = isnan(e) ? INFINITY : e;
            }
        CHECK(worst1 <= tol, "%s attention with 1 thread: err %.3g", g_paths[pi].name, worst1);
        CHECK(memcmp(o, o1, sizeof(float) * (size_t)(B * Lq * ldo)) == 0, "%s attention differs with 1 thread",
              g_paths[pi].name);
    }
    omp_set_num_threads(saved);
    ld_gemm_set_precision(LD_PRECISION_F32);
    free(q), free(k), free(v), free(o), free(o1), free(mask), free(keep), free(ref), free(sc);
}

/* The level LEANDIFF_CPU=name must give, by the rule of base/cpu.h written
 * out here: unknown names keep the best level; a level above the best gives
 * the best; neon off aarch64 gives portable, avx2/avx512 on aarch64 neon. */
static ld_cpu_level_t expected_level(const char *name, ld_cpu_level_t best) {
    if (!strcmp(name, "portable")) return LD_CPU_PORTABLE;
    if (!strcmp(name, "neon")) return best == LD_CPU_NEON ? LD_CPU_NEON : LD_CPU_PORTABLE;
    ld_cpu_level_t want = !strcmp(name, "avx2") ? LD_CPU_AVX2 : !strcmp(name, "avx512") ? LD_CPU_AVX512 : best;
    if (best == LD_CPU_NEON) return LD_CPU_NEON;
    return want < best ? want : best;
}

static void check_cpu(void) {
    const ld_cpu_info *ci = ld_cpu_info_get();
    CHECK(ci->model[0] != 0, "cpu model string is empty");
    ld_cpu_level_t l;
    CHECK(ld_cpu_parse_level("portable", &l) && l == LD_CPU_PORTABLE, "parse portable");
    CHECK(ld_cpu_parse_level("avx2", &l) && l == LD_CPU_AVX2, "parse avx2");
    CHECK(ld_cpu_parse_level("avx512", &l) && l == LD_CPU_AVX512, "parse avx512");
    CHECK(ld_cpu_parse_level("neon", &l) && l == LD_CPU_NEON, "parse neon");
    CHECK(ld_cpu_parse_level("auto", &l) && l == ci->best, "parse auto");
    CHECK(!ld_cpu_parse_level("sse9", &l), "unknown level accepted");
    CHECK(ld_cpu_force(LD_CPU_AVX512) <= ci->best, "force clamps to the best level");
    CHECK(ld_cpu_force(LD_CPU_PORTABLE) == LD_CPU_PORTABLE, "force portable");
    CHECK(ld_cpu_force(LD_CPU_NEON) == expected_level("neon", ci->best), "force neon");
    CHECK(ld_cpu_force(LD_CPU_AVX2) == expected_level("avx2", ci->best), "force avx2");
    CHECK(ld_cpu_force(LD_CPU_AVX512) == expected_level("avx512", ci->best), "force avx512");
#if defined(__aarch64__)
    CHECK(ci->neon && ci->best == LD_CPU_NEON, "aarch64 without the neon level");
#else
    CHECK(!ci->neon && !ci->neon_bf16 && ci->best != LD_CPU_NEON, "neon reported off aarch64");
#endif
    ld_cpu_force(ci->best);
    double g = ld_cpu_peak_gflops(1, 0.02);
    /* under an emulator (LEANDIFF_TEST_EMULATED=1, set by tools/cross-test-arm64.sh)
     * a loaded machine gives well under 0.1 GFLOP/s: only ask for a positive rate */
    const char *emu = getenv("LEANDIFF_TEST_EMULATED");
    const double g_min = emu && *emu == '1' ? 1e-4 : 0.1;
    CHECK(g > g_min && g < 1e5, "peak probe gives %g GFLOP/s", g);
    printf("cpu: %s, best path %s, bf16 %d, probe %.1f GFLOP/s (1 thread)\n", ci->model,
           ld_cpu_level_name(ci->best), ci->avx512bf16 || ci->neon_bf16, g);
}

/* This program's path into self; 0 (saying which test is skipped) when
 * /proc/self/exe cannot be read. */
static int self_path(char *self, size_t n, const char *skipped) {
    ssize_t sl = readlink("/proc/self/exe", self, n - 1);
    if (sl <= 0) {
        printf("cannot read /proc/self/exe: %s skipped\n", skipped);
        return 0;
    }
    self[sl] = 0;
    return 1;
}

/* In a forked child: runs this program with one argument, as "prog <this
 * program> ARG" when LEANDIFF_TEST_EXEC_WRAPPER=prog is set
 * (tools/cross-test-arm64.sh: qemu-aarch64, no binfmt_misc needed). */
static void exec_self(const char *self, const char *arg) {
    const char *wrapper = getenv("LEANDIFF_TEST_EXEC_WRAPPER");
    if (wrapper && *wrapper)
        execl(wrapper, wrapper, self, arg, (char *)NULL);
    else
        execl(self, "test_gemm", arg, (char *)NULL);
    _exit(127);
}

/* Runs this test as a child with var=value and --print-level; its first line
 * into buf. 1 when the child exited with 0. */
static int child_print_level(const char *self, const char *var, const char *value, char *buf, size_t n) {
    memset(buf, 0, n);
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        setenv(var, value, 1);
        alarm(120); /* survives exec: a hanging child is killed and fails the check */
        exec_self(self, "--print-level");
    }
    close(fds[1]);
    ssize_t got = 0, r;
    while (got < (ssize_t)n - 1 && (r = read(fds[0], buf + got, n - 1 - (size_t)got)) > 0) got += r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* LEANDIFF_CPU really selects the path: re-run this program with it set and
 * "--print-level"; the child prints the level and kernel it ended up with.
 * The same for LEANDIFF_AMX. */
static void check_env_override(void) {
    const ld_cpu_info *ci = ld_cpu_info_get();
    if (access("/proc/self/exe", X_OK) != 0) {
        printf("no /proc/self/exe: LEANDIFF_CPU child test skipped\n");
        return;
    }
    char self[4096];
    if (!self_path(self, sizeof self, "LEANDIFF_CPU child test")) return;
    const char *names[] = {"portable", "avx2", "avx512", "neon", "auto", "bogus"};
    char buf[128];
    for (int i = 0; i < 6; i++) {
        const int ok = child_print_level(self, "LEANDIFF_CPU", names[i], buf, sizeof buf);
        ld_cpu_level_t want = expected_level(names[i], ci->best);
        char expect[32];
        snprintf(expect, sizeof expect, "level %s", ld_cpu_level_name(want));
        CHECK(ok && strncmp(buf, expect, strlen(expect)) == 0, "LEANDIFF_CPU=%s: child said '%s', expected '%s'",
              names[i], buf, expect);
    }
    /* LEANDIFF_AMX=0 turns the tiles off; anything else leaves them as detected */
    const int amx_best = ci->best == LD_CPU_AVX512 && ci->avx512bf16 && ci->amx_bf16;
    const char *amx_values[] = {"0", "1"};
    for (int i = 0; i < 2; i++) {
        const int ok = child_print_level(self, "LEANDIFF_AMX", amx_values[i], buf, sizeof buf);
        char expect[16];
        snprintf(expect, sizeof expect, " amx %d", i == 0 ? 0 : amx_best);
        CHECK(ok && strstr(buf, expect) != NULL, "LEANDIFF_AMX=%s: child said '%s', expected '%s'", amx_values[i],
              buf, expect);
    }
}

/* Products with several row AND column blocks of tasks, where a task walks
 * all column blocks of its rows with its A packed once per k block (gemm.c):
 * odd sizes, every operand dtype, beta, biases, padded C, against the
 * reference (bf16 paths in bf16 precision), then bitwise across 1-3 threads
 * (the thread count changes the row blocks). Run with the kernels' blocking
 * (N > the column block) and, in a child, with small blocks (many row,
 * column and k blocks). */
static void check_walk(void) {
    check_case(600, 1100, 150, LD_F32, 0, LD_F32, 1, 0.0f, 0, 0, 0);
    check_case(601, 1037, 97, LD_F16, 2, LD_BF16, 1, 0.5f, 1, 1, 3);
    check_case(530, 1030, 61, LD_BF16, 0, LD_F16, 0, 1.0f, 1, 0, 0);
    check_case(533, 1031, 83, LD_F32, 3, LD_F32, 0, 0.0f, 0, 1, 0);
    check_case(540, 1040, 96, LD_F32, 0, LD_F16, 0, 1.0f, 1, 1, 0);
    check_threads(600, 1100, 130, 1, 0.5f);
    check_threads(530, 1030, 160, 0, 0.0f);
    check_threads(533, 1031, 77, 0, 0.0f);
}

/* check_walk in a child with LEANDIFF_GEMM_BLOCKS=28,40,64 (read once per process). */
static void check_walk_small_blocks(void) {
    char self[4096];
    if (!self_path(self, sizeof self, "small-block child test")) return;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LEANDIFF_GEMM_BLOCKS", "28,40,64", 1);
        alarm(600);
        exec_self(self, "--walk");
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "small-block row-walk child failed (status %d)", status);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--print-level") == 0) {
        printf("level %s kernel %s amx %d\n", ld_cpu_level_name(ld_cpu_level()), ld_gemm_kernel_name(),
               ld_cpu_has_amx());
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--print-cpu") == 0) { /* for tools/cross-test-arm64.sh */
        const ld_cpu_info *ci = ld_cpu_info_get();
        printf("best %s neon %d neon_bf16 %d avx2 %d avx512f %d avx512bf16 %d kernel %s\n",
               ld_cpu_level_name(ci->best), ci->neon, ci->neon_bf16, ci->avx2, ci->avx512f, ci->avx512bf16,
               ld_gemm_kernel_name());
        return 0;
    }
    const int walk_only = argc > 1 && strcmp(argv[1], "--walk") == 0;
    if (!walk_only) {
        check_cpu();
        check_env_override();
    }
    add_path("portable", LD_CPU_PORTABLE, LD_PRECISION_F32, 0);
    add_path("avx2", LD_CPU_AVX2, LD_PRECISION_F32, 0);
    add_path("avx512", LD_CPU_AVX512, LD_PRECISION_F32, 0);
    add_path("neon", LD_CPU_NEON, LD_PRECISION_F32, 0);
    add_path("portable-bf16", LD_CPU_PORTABLE, LD_PRECISION_BF16, 0);
    add_path("avx512-bf16", LD_CPU_AVX512, LD_PRECISION_BF16, 0);
    add_path("amx-bf16", LD_CPU_AVX512, LD_PRECISION_BF16, 1);
    add_path("neon-bf16", LD_CPU_NEON, LD_PRECISION_BF16, 0);
    for (int p = 0; p < g_npaths; p++) {
        use_path(&g_paths[p]);
        ld_gemm_set_precision(g_paths[p].prec);
        const char *kn = ld_gemm_kernel_name();
        printf("path %s: kernel %s\n", g_paths[p].name, kn);
        /* AMX: products of depth a multiple of 32 that fill a tile; the rest on AVX-512 */
        const char *deep = ld_gemm_kernel_name_for(64, 64, 64), *odd = ld_gemm_kernel_name_for(64, 64, 70);
        if (g_paths[p].amx)
            CHECK(!strcmp(deep, "amx-bf16 32x32") && !strncmp(odd, "avx512-bf16", 11) &&
                      !strncmp(ld_gemm_kernel_name_for(16, 64, 64), "avx512-bf16", 11),
                  "amx path: 64x64x64 uses %s, 64x64x70 %s", deep, odd);
        else
            CHECK(strncmp(deep, "amx", 3) != 0, "%s: 64x64x64 uses %s", g_paths[p].name, deep);
        /* the kernel really is the forced one */
        int want_bf16 = g_paths[p].prec == LD_PRECISION_BF16;
        const char *lv = ld_cpu_level_name(g_paths[p].level);
        if (want_bf16 && g_paths[p].level != LD_CPU_AVX512)
            CHECK(strcmp(kn, "bf16-emulated") == 0, "%s uses %s", g_paths[p].name, kn);
        else
            CHECK(strncmp(kn, lv, strlen(lv)) == 0 && (strstr(kn, "bf16") != NULL) == want_bf16, "%s uses %s",
                  g_paths[p].name, kn);
    }
    ld_gemm_set_precision(LD_PRECISION_F32);
    if (walk_only) {
        check_walk();
        ld_gemm_release_buffers();
        return test_finish();
    }
    if (ld_cpu_info_get()->best == LD_CPU_AVX512) {
        ld_cpu_force(LD_CPU_AVX512);
        CHECK(strcmp(ld_gemm_kernel_name_for(16, 96, 0), "avx512-f32 8x48") == 0, "16x96 uses %s",
              ld_gemm_kernel_name_for(16, 96, 0));
        CHECK(strcmp(ld_gemm_kernel_name_for(4096, 640, 0), "avx512-f32 14x32") == 0, "4096x640 uses %s",
              ld_gemm_kernel_name_for(4096, 640, 0));
        if (ld_cpu_has_bf16()) {
            ld_gemm_set_precision(LD_PRECISION_BF16);
            CHECK(strcmp(ld_gemm_kernel_name_for(128, 480, 0), "avx512-bf16 8x48") == 0, "bf16 128x480 uses %s",
                  ld_gemm_kernel_name_for(128, 480, 0));
            ld_gemm_set_precision(LD_PRECISION_F32);
        }
    }

    /* shapes: degenerate, odd, crossing the MC/KC/NC block edges */
    static const int64_t shapes[][3] = {
        {1, 1, 1},   {1, 37, 5},     {5, 1, 9},     {7, 13, 1},   {3, 5, 0},    {17, 33, 65}, {64, 64, 64},
        {1, 700, 300}, {300, 1, 300}, {45, 100, 257}, {131, 67, 600}, {29, 1100, 40}, {260, 90, 1030},
        /* two k blocks of equal depth with a depth of 1024 (Zen 5-class) */
        {70, 90, 1600},
        /* shapes where the AVX-512 8x48 kernel pads less than 14x32 */
        {16, 96, 300}, {40, 1000, 50}, {128, 480, 70},
        /* depths a multiple of 32 (AMX tiles): edges, several k blocks */
        {100, 70, 96}, {33, 65, 1024}, {260, 300, 2080}, {64, 1100, 320},
    };
    const int nshapes = sizeof shapes / sizeof shapes[0];
    for (int s = 0; s < nshapes; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        /* rotate through layouts, dtypes, betas and biases */
        check_case(M, N, K, LD_F32, 0, LD_F32, 0, 0.0f, 0, 0, 0);
        check_case(M, N, K, LD_F32, 0, (s % 2) ? LD_F16 : LD_BF16, 1, 1.0f, 1, 0, 3);
        check_case(M, N, K, LD_F32, 1, LD_F32, 1, 0.5f, 0, 1, 0);
        check_case(M, N, K, s % 3 == 0 ? LD_F16 : LD_F32, 2 + s % 2, LD_F16, 3 - s % 2, 0.0f, 1, 1, 1);
    }
    check_case(200, 150, 90, LD_BF16, 1, LD_F32, 2, 1.0f, 1, 1, 0);

    check_threads(300, 200, 600, 1, 0.0f);
    check_threads(37, 1100, 70, 0, 1.0f);
    check_threads(1000, 64, 64, 1, 0.0f);
    check_threads(128, 700, 300, 0, 0.0f); /* 8x48 on AVX-512 */
    check_bias_order(300, 200, 600, 1, 0.0f);   /* several k blocks on some paths, edge tiles */
    check_bias_order(128, 480, 1300, 0, 1.0f);  /* 8x48 on AVX-512, C loaded */
    check_bias_order(70, 1100, 90, 0, 0.5f);
    check_threads(300, 200, 640, 1, 0.0f);    /* AMX tiles where the CPU has them */
    check_bias_order(130, 100, 1280, 0, 1.0f);
    check_walk();
    check_walk_small_blocks();
    check_packed();
    check_stack();
    restore_best();
    check_nested();
    ld_gemm_release_buffers();
    check_nested(); /* the pool refills */

    check_im2col_windows(3, 9, 11, 3, 1, 1, 1, 0);
    check_im2col_windows(2, 70, 3, 3, 1, 1, 1, 0); /* 3 pixels a row: a window spans over 64 rows */
    check_im2col_windows(4, 30, 7, 3, 2, 1, 1, 0); /* stride 2 */
    check_im2col_windows(2, 12, 10, 3, 1, 2, 2, 0); /* dilation */
    check_im2col_windows(3, 8, 9, 3, 1, 1, 1, 1);  /* replicate */
    check_im2col_windows(5, 6, 6, 1, 1, 0, 1, 0);  /* 1x1 */
    check_conv(3, 9, 11, 5, 3, 1, 1, 1, 0);
    check_conv(16, 20, 17, 24, 3, 1, 1, 1, 0);
    check_conv(8, 15, 15, 12, 3, 2, 1, 1, 0);
    check_conv(6, 12, 10, 7, 3, 1, 2, 2, 0);
    check_conv(5, 9, 8, 6, 3, 1, 1, 1, 1);
    check_conv(4, 16, 16, 40, 1, 1, 0, 1, 0);
    check_conv(32, 24, 24, 64, 3, 1, 1, 1, 0);
    check_conv(9, 10, 12, 11, 3, 1, 1, 1, 0); /* K = 81: bf16 fill in 64-row chunks, odd end */
    check_conv(24, 7, 6, 300, 3, 1, 1, 1, 0); /* few pixels, many channels: several rows of tasks share B */
    check_conv(64, 9, 7, 300, 1, 1, 0, 1, 0); /* pointwise, K = 64: AMX tiles where the CPU has them */
    check_conv(64, 24, 24, 512, 1, 1, 0, 1, 0); /* pointwise 512 x 576: task rows walk the columns, B filled once */

    check_attention(1, 1, 1, 1, 1, 0);
    check_attention(2, 3, 37, 300, 40, 0);
    check_attention(2, 2, 130, 77, 64, 2 | 4);
    check_attention(1, 2, 150, 150, 64, 1);
    check_attention(3, 1, 20, 530, 33, 1 | 2 | 4);
    check_attention(1, 1, 5, 0, 16, 0);
    check_attention(1, 1, 300, 290, 24, 1 | 4);
    check_attention(1, 1, 1000, 531, 33, 0); /* K/V packed once per item, odd depths */
    check_attention(1, 2, 300, 1100, 64, 0);  /* depth 64: AMX tiles where the CPU has them */
    check_attention(2, 1, 64, 45, 32, 1 | 2);

    restore_best();
    ld_gemm_release_buffers();
    printf("max relative error: f32 paths %.3g, bf16 path vs bf16 reference %.3g; attention max abs error: f32 %.3g, "
           "bf16 %.3g\n",
           g_max_rel_f32, g_max_rel_bf16, g_max_att, g_max_att_bf16);
    return test_finish();
}
