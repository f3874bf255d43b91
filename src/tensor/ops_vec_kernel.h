/* Vector kernels of the non-GEMM ops (norm statistics, GELU with sums of
 * squares, GRN, FiLM, 3x3 depthwise rows), compiled once per instruction
 * set: included by ops_vec.c (portable), ops_vec_avx2.c and ops_vec_avx512.c
 * with VEC_TABLE (the name of the ops_vec_kernels table to define), ACT_FN,
 * OPS_VBYTES and OPS_BCAST defined (see ops_vmath.h). Not a public header.
 *
 * Every lane computes its element with the same IEEE operations in the same
 * order (no fused multiply-add), and the remainders that do not fill a vector
 * go through scalar code doing the same operations, so every path (and every
 * split of the work) gives the same bits. Reductions across elements use a
 * fixed number of partial sums (VEC_LANES) whatever
 * the vector width. */
#include "tensor/ops_act_kernel.h"

/* Sums in double are kept in registers of VLH doubles, two per float vector
 * (one vector of VL doubles, two registers wide, was kept on the stack by
 * gcc: GELU with its sums of squares ran 0.85 ns per element, now 0.70). */
typedef double vdh __attribute__((vector_size(OPS_VBYTES)));
typedef float vfh __attribute__((vector_size(OPS_VBYTES / 2)));
#define VLH (VL / 2)
/* partial sums of the reductions, independent of the vector width */
#define VEC_LANES 16
#define VEC_NACCH (VEC_LANES / VLH)

/* x[0..VLH) as doubles */
static inline vdh vload_dh(const float *x) {
    vfh h;
    memcpy(&h, x, sizeof h);
    return __builtin_convertvector(h, vdh);
}

/* The 16 partial sums added in a fixed tree. */
static double vec_total16(const double *t) {
    double s[8];
    for (int i = 0; i < 8; i++) s[i] = t[2 * i] + t[2 * i + 1];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* x = gelu_erf(x) in place; returns the sum of the squares of the results in
 * double (element i goes to partial sum i % 16). */
static double vec_gelu_sumsq(float *x, int64_t n) {
    enum { BLK = 1024 }; /* activations then squares while the block is in L1 */
    vdh acc[VEC_NACCH];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t end = i0 + BLK < n ? i0 + BLK : n;
        ACT_FN(OPS_ACT_GELU_ERF, x + i0, x + i0, end - i0);
        vdh r[VEC_NACCH]; /* in registers while the block is summed */
        memcpy(r, acc, sizeof r);
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int a = 0; a < VEC_NACCH; a++) {
                vdh d = vload_dh(x + i + a * VLH);
                r[a] += d * d;
            }
        memcpy(acc, r, sizeof r);
    }
    double t[VEC_LANES];
    memcpy(t, acc, sizeof t);
    for (; i < n; i++) t[i % VEC_LANES] += (double)x[i] * (double)x[i];
    return vec_total16(t);
}

/* s1 = sum of d, s2 = sum of d^2, d = x[i] - shift, in double, one pass (the
 * statistics of GroupNorm and LayerNorm, ops_norm.c); element i goes to
 * partial i % 16 of each sum. On AVX-512 that is two add chains of 8 doubles
 * per sum, four in all, as many as the converts and products let run; the
 * two sums' registers fit AVX2's 16. */
static void vec_moments(const float *x, int64_t n, double shift, double *s1, double *s2) {
    vdh a1[VEC_NACCH], a2[VEC_NACCH], sv;
    memset(a1, 0, sizeof a1);
    memset(a2, 0, sizeof a2);
    for (int l = 0; l < VLH; l++) sv[l] = shift;
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int a = 0; a < VEC_NACCH; a++) {
            const vdh d = vload_dh(x + i + a * VLH) - sv;
            a1[a] += d;
            a2[a] += d * d;
        }
    double t1[VEC_LANES], t2[VEC_LANES];
    memcpy(t1, a1, sizeof t1);
    memcpy(t2, a2, sizeof t2);
    for (; i < n; i++) {
        const double d = (double)x[i] - shift;
        t1[i % VEC_LANES] += d;
        t2[i % VEC_LANES] += d * d;
    }
    *s1 = vec_total16(t1);
    *s2 = vec_total16(t2);
}

/* y[i] = g * (x[i] * s) + b + x[i] (GlobalResponseNorm applied to one channel). */
static void vec_grn_row(float *y, const float *x, int64_t n, float g, float s, float b) {
    const vf vg = OPS_BCAST(g), vs = OPS_BCAST(s), vb = OPS_BCAST(b);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v = vload(x + i);
        vstore(y + i, vg * (v * vs) + vb + v);
    }
    for (; i < n; i++) y[i] = g * (x[i] * s) + b + x[i];
}

/* y[i] = x[i] * a + b */
static void vec_affine_row(float *y, const float *x, int64_t n, float a, float b) {
    const vf va = OPS_BCAST(a), vb = OPS_BCAST(b);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstore(y + i, vload(x + i) * va + vb);
    for (; i < n; i++) y[i] = x[i] * a + b;
}

/* Sums of PB register-wide runs of pixels (VLH each, from x on) over all C
 * channels, kept in registers (inlined with a constant PB). */
VM_INLINE void chan_sums_run(double *acc, const float *x, int64_t ldx, int64_t C, const double *mean, int PB) {
    vdh a[8], m[8];
    for (int j = 0; j < PB; j++) {
        a[j] = (vdh){0};
        if (mean) memcpy(&m[j], mean + j * VLH, sizeof m[j]);
    }
    if (mean)
        for (int64_t c = 0; c < C; c++)
            for (int j = 0; j < PB; j++) {
                const vdh d = vload_dh(x + c * ldx + j * VLH) - m[j];
                a[j] += d * d;
            }
    else
        for (int64_t c = 0; c < C; c++)
            for (int j = 0; j < PB; j++) a[j] += vload_dh(x + c * ldx + j * VLH);
    for (int j = 0; j < PB; j++) memcpy(acc + j * VLH, &a[j], sizeof a[j]);
}

/* Per-pixel sums over C channel rows (row c at x + c*ldx) of np pixels, in
 * double, channels in order: mean == NULL: acc[p] = sum_c x; else
 * acc[p] = sum_c (x - mean[p])^2. */
static void vec_chan_sums(double *acc, const float *x, int64_t ldx, int64_t C, int64_t np, const double *mean) {
    int64_t p = 0;
    /* runs of 8, 4, 2, 1 registers: the sums stay in registers across the channels (kept in acc[] they went
     * through a store and a load at every channel) */
    for (; p + 8 * VLH <= np; p += 8 * VLH) chan_sums_run(acc + p, x + p, ldx, C, mean ? mean + p : NULL, 8);
    if (p + 4 * VLH <= np) {
        chan_sums_run(acc + p, x + p, ldx, C, mean ? mean + p : NULL, 4);
        p += 4 * VLH;
    }
    if (p + 2 * VLH <= np) {
        chan_sums_run(acc + p, x + p, ldx, C, mean ? mean + p : NULL, 2);
        p += 2 * VLH;
    }
    if (p + VLH <= np) {
        chan_sums_run(acc + p, x + p, ldx, C, mean ? mean + p : NULL, 1);
        p += VLH;
    }
    for (; p < np; p++) {
        double sum = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double d = x[c * ldx + p];
            if (mean) {
                d -= mean[p];
                sum += d * d;
            } else {
                sum += d;
            }
        }
        acc[p] = sum;
    }
}

/* y[p] = (x[p] - mean[p]) * rstd[p] * g + b */
static void vec_norm_row(float *y, const float *x, int64_t np, const float *mean, const float *rstd, float g,
                         float b) {
    const vf vg = OPS_BCAST(g), vb = OPS_BCAST(b);
    int64_t p = 0;
    for (; p + VL <= np; p += VL) vstore(y + p, (vload(x + p) - vload(mean + p)) * vload(rstd + p) * vg + vb);
    for (; p < np; p++) y[p] = (x[p] - mean[p]) * rstd[p] * g + b;
}

/* One output row of a 3x3 depthwise convolution (stride 1): rows[0..2] are
 * the input rows oy-1, oy, oy+1 zero padded by one column on the left and up
 * to a multiple of VL plus 2 on the right (NULL: outside the image, skipped);
 * y[ox] = bias + taps in (ky, kx) order. */
static void vec_dw3_row(float *y, int64_t W, const float *const rows[3], const float *w9, float bias) {
    const vf vb = OPS_BCAST(bias);
    vf wv[9];
    for (int t = 0; t < 9; t++) wv[t] = OPS_BCAST(w9[t]);
    for (int64_t ox = 0; ox < W; ox += VL) {
        vf acc = vb;
        for (int ky = 0; ky < 3; ky++) {
            const float *r = rows[ky];
            if (!r) continue;
            acc = acc + wv[3 * ky] * vload(r + ox);
            acc = acc + wv[3 * ky + 1] * vload(r + ox + 1);
            acc = acc + wv[3 * ky + 2] * vload(r + ox + 2);
        }
        if (ox + VL <= W) {
            vstore(y + ox, acc);
        } else {
            float t[VL];
            vstore(t, acc);
            memcpy(y + ox, t, (size_t)(W - ox) * sizeof(float));
        }
    }
}

/* G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] applied to three rows a0..a2 of n:
 * the four rows o0..o3 (one step of the filter transform below). */
static void wino_g(float *o0, float *o1, float *o2, float *o3, const float *a0, const float *a1, const float *a2,
                   int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        o0[i] = a0[i];
        o1[i] = 0.5f * (a0[i] + a1[i] + a2[i]);
        o2[i] = 0.5f * (a0[i] - a1[i] + a2[i]);
        o3[i] = a2[i];
    }
}

/* The 9 taps of n filters (f: one filter after the other) turned around:
 * tap k of filter i to g[k * n + i], so that the transforms loop over the
 * filters. */
static void wino_taps(float *g, const float *f, int64_t n) {
    for (int k = 0; k < 9; k++) {
        float *gk = g + k * n;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) gk[i] = f[i * 9 + k];
    }
}

/* Winograd F(2x2, 3x3) filter transform of n filters (f: 9 taps each, one
 * filter after the other): U = G g G^T, element xi of filter i to
 * u[xi * xs + i]. The taps are turned around first (9 rows of n), so every
 * step is a loop over the filters. tmp: 21 n floats. */
static void vec_wino_filter(float *u, int64_t xs, const float *f, int64_t n, float *tmp) {
    float *g = tmp, *t = tmp + 9 * n; /* t: G g, 12 rows (row r of G, column c of g at 3r + c) */
    wino_taps(g, f, n);
    for (int c = 0; c < 3; c++) /* G g, column c: the taps (0, c), (1, c), (2, c) */
        wino_g(t + c * n, t + (3 + c) * n, t + (6 + c) * n, t + (9 + c) * n, g + c * n, g + (3 + c) * n,
               g + (6 + c) * n, n);
    for (int r = 0; r < 4; r++) { /* (G g) G^T, row r: u[4r .. 4r + 3] */
        const float *a0 = t + (3 * r) * n;
        wino_g(u + (4 * r) * xs, u + (4 * r + 1) * xs, u + (4 * r + 2) * xs, u + (4 * r + 3) * xs, a0, a0 + n,
               a0 + 2 * n, n);
    }
}

/* Winograd F(2x2, 3x3) input transform of a row of n tiles (see
 * ops_conv_winograd.c): d holds 4 padded input rows of 2n + 2 floats; V =
 * B^T d B of tile k goes to v[xi * xs + k]. First q = B^T d down the
 * columns, split into even and odd columns (tmp: 8 (n + 1) floats), then
 * each tile from them, all contiguous loops. */
static void vec_wino_in(float *v, int64_t xs, const float *d, int64_t n, float *tmp) {
    const int64_t np = 2 * n + 2, h = n + 1;
    const float *d0 = d, *d1 = d + np, *d2 = d + 2 * np, *d3 = d + 3 * np;
    float *ev = tmp, *od = tmp + 4 * h;
    #pragma omp simd
    for (int64_t k = 0; k < h; k++) {
        const int64_t j = 2 * k, j1 = j + 1;
        ev[k] = d0[j] - d2[j];
        ev[h + k] = d1[j] + d2[j];
        ev[2 * h + k] = d2[j] - d1[j];
        ev[3 * h + k] = d1[j] - d3[j];
        od[k] = d0[j1] - d2[j1];
        od[h + k] = d1[j1] + d2[j1];
        od[2 * h + k] = d2[j1] - d1[j1];
        od[3 * h + k] = d1[j1] - d3[j1];
    }
    for (int i = 0; i < 4; i++) { /* (B^T d) B: columns 2k .. 2k + 3 of tile k */
        const float *e = ev + i * h, *o = od + i * h;
        float *v0 = v + (int64_t)(4 * i) * xs, *v1 = v0 + xs, *v2 = v1 + xs, *v3 = v2 + xs;
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) {
            v0[k] = e[k] - e[k + 1];
            v1[k] = o[k] + e[k + 1];
            v2[k] = e[k + 1] - o[k];
            v3[k] = o[k] - o[k + 1];
        }
    }
}

/* Winograd F(2x2, 3x3) output transform of a row of n tiles: M_xi of tile k
 * at m[xi * xs + k], Y = A^T M A + bias written to the output rows y[0] and
 * y[1] (NULL: below the image), w of their pixels (2n, or 2n - 1 when the
 * last tile sticks out). tmp: 4 n floats. */
static void vec_wino_out(float *const y[4], int64_t w, const float *m, int64_t xs, int64_t n, float bias,
                         float *tmp) {
    float *s0 = tmp, *s1 = tmp + n, *s2 = tmp + 2 * n, *s3 = tmp + 3 * n;
    const float *m0 = m, *m1 = m + 4 * xs, *m2 = m + 8 * xs, *m3 = m + 12 * xs; /* row i of M; column j at + j xs */
    #pragma omp simd
    for (int64_t k = 0; k < n; k++) {
        /* A^T M: a<r><j> is row r, column j */
        const float a00 = m0[k] + m1[k] + m2[k], a10 = m1[k] - m2[k] - m3[k];
        const float a01 = m0[xs + k] + m1[xs + k] + m2[xs + k], a11 = m1[xs + k] - m2[xs + k] - m3[xs + k];
        const float a02 = m0[2 * xs + k] + m1[2 * xs + k] + m2[2 * xs + k];
        const float a12 = m1[2 * xs + k] - m2[2 * xs + k] - m3[2 * xs + k];
        const float a03 = m0[3 * xs + k] + m1[3 * xs + k] + m2[3 * xs + k];
        const float a13 = m1[3 * xs + k] - m2[3 * xs + k] - m3[3 * xs + k];
        s0[k] = a00 + a01 + a02 + bias;
        s1[k] = a01 - a02 - a03 + bias;
        s2[k] = a10 + a11 + a12 + bias;
        s3[k] = a11 - a12 - a13 + bias;
    }
    const int64_t pairs = w / 2;
    for (int r = 0; r < 2; r++) {
        float *out = y[r];
        const float *c0 = r ? s2 : s0, *c1 = r ? s3 : s1;
        if (!out) continue;
        #pragma omp simd
        for (int64_t k = 0; k < pairs; k++) {
            out[2 * k] = c0[k];
            out[2 * k + 1] = c1[k];
        }
        if (w & 1) out[w - 1] = c0[pairs];
    }
}

/* G of F(4x4, 3x3), rows [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], applied to three rows a, a + as,
 * a + 2 as of n: the six rows o + j os. */
static void wino4_g(float *o, int64_t os, const float *a, int64_t as, int64_t n) {
    const float *a0 = a, *a1 = a + as, *a2 = a + 2 * as;
    float *o0 = o, *o1 = o + os, *o2 = o + 2 * os, *o3 = o + 3 * os, *o4 = o + 4 * os, *o5 = o + 5 * os;
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const float e = a0[i] + a2[i], f = a0[i] * (1.0f / 24) + a2[i] * (1.0f / 6);
        o0[i] = 0.25f * a0[i];
        o1[i] = -(e + a1[i]) * (1.0f / 6);
        o2[i] = -(e - a1[i]) * (1.0f / 6);
        o3[i] = f + a1[i] * (1.0f / 12);
        o4[i] = f - a1[i] * (1.0f / 12);
        o5[i] = a2[i];
    }
}

/* Winograd F(4x4, 3x3) filter transform of n filters (as vec_wino_filter,
 * 36 elements each): U = G g G^T. tmp: 27 n floats. */
static void vec_wino4_filter(float *u, int64_t xs, const float *f, int64_t n, float *tmp) {
    float *g = tmp, *t = tmp + 9 * n; /* t: G g, 18 rows (row j of G, column c of g at 3j + c) */
    wino_taps(g, f, n);
    for (int c = 0; c < 3; c++) wino4_g(t + c * n, 3 * n, g + c * n, 3 * n, n);
    for (int j = 0; j < 6; j++) wino4_g(u + 6 * j * xs, xs, t + 3 * j * n, n, n);
}

/* B^T of F(4x4, 3x3), rows [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 * 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], on six values into q0..q5
 * (straight-line code, so that the loops around it vectorize). */
#define WINO4_BT(q0, q1, q2, q3, q4, q5, d0, d1, d2, d3, d4, d5)                                                      \
    do {                                                                                                               \
        (q0) = 4.0f * (d0) - 5.0f * (d2) + (d4);                                                                       \
        (q1) = (d3) + (d4) - 4.0f * ((d1) + (d2));                                                                     \
        (q2) = (d4) - (d3) + 4.0f * ((d1) - (d2));                                                                     \
        (q3) = (d4) - (d2) + 2.0f * ((d3) - (d1));                                                                     \
        (q4) = (d4) - (d2) - 2.0f * ((d3) - (d1));                                                                     \
        (q5) = 4.0f * (d1) - 5.0f * (d3) + (d5);                                                                       \
    } while (0)

/* Winograd F(4x4, 3x3) input transform of a row of n tiles: d holds 6
 * padded input rows of 4n + 4 floats (the last two never reach a tile);
 * V = B^T d B of tile k to v[xi * xs + k]. First q = B^T d down the columns,
 * split by column mod 4 (tmp: 24 (n + 1) floats), then each tile. */
static void vec_wino4_in(float *v, int64_t xs, const float *d, int64_t n, float *tmp) {
    const int64_t np = 4 * n + 4, h = n + 1;
    const float *d0 = d, *d1 = d0 + np, *d2 = d1 + np, *d3 = d2 + np, *d4 = d3 + np, *d5 = d4 + np;
    for (int r = 0; r < 4; r++) { /* q row i, columns 4k + r, at tmp + (4 i + r) h + k */
        float *t0 = tmp + r * h, *t1 = t0 + 4 * h, *t2 = t1 + 4 * h, *t3 = t2 + 4 * h, *t4 = t3 + 4 * h,
              *t5 = t4 + 4 * h;
        #pragma omp simd
        for (int64_t k = 0; k < h; k++) {
            const int64_t j = 4 * k + r;
            WINO4_BT(t0[k], t1[k], t2[k], t3[k], t4[k], t5[k], d0[j], d1[j], d2[j], d3[j], d4[j], d5[j]);
        }
    }
    for (int i = 0; i < 6; i++) { /* (B^T d) B: columns 4k .. 4k + 5 of tile k */
        const float *p0 = tmp + 4 * i * h, *p1 = p0 + h, *p2 = p1 + h, *p3 = p2 + h;
        float *v0 = v + (int64_t)(6 * i) * xs, *v1 = v0 + xs, *v2 = v1 + xs, *v3 = v2 + xs, *v4 = v3 + xs,
              *v5 = v4 + xs;
        #pragma omp simd
        for (int64_t k = 0; k < n; k++)
            WINO4_BT(v0[k], v1[k], v2[k], v3[k], v4[k], v5[k], p0[k], p1[k], p2[k], p3[k], p0[k + 1], p1[k + 1]);
    }
}

/* A^T of F(4x4, 3x3), rows [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1], on six values into s0..s3 (plus b each). */
#define WINO4_AT(s0, s1, s2, s3, m0, m1, m2, m3, m4, m5, b)                                                            \
    do {                                                                                                               \
        const float p12_ = (m1) + (m2), d12_ = (m1) - (m2), p34_ = (m3) + (m4), d34_ = (m3) - (m4);                    \
        (s0) = (m0) + p12_ + p34_ + (b);                                                                               \
        (s1) = d12_ + 2.0f * d34_ + (b);                                                                               \
        (s2) = p12_ + 4.0f * p34_ + (b);                                                                               \
        (s3) = d12_ + 8.0f * d34_ + (m5) + (b);                                                                        \
    } while (0)

/* A^T M of one column j of M (rows i at + 6 i xs) into a0j..a3j. */
#define WINO4_COL(j) WINO4_AT(a0##j, a1##j, a2##j, a3##j, m[j * xs + k], m[(6 + j) * xs + k], m[(12 + j) * xs + k],    \
                              m[(18 + j) * xs + k], m[(24 + j) * xs + k], m[(30 + j) * xs + k], 0.0f)
/* (A^T M) A of row r: output pixels 4k .. 4k + 3 of row r into tmp. */
#define WINO4_ROW(r) WINO4_AT(o[4 * r][k], o[4 * r + 1][k], o[4 * r + 2][k], o[4 * r + 3][k], a##r##0, a##r##1,      \
                              a##r##2, a##r##3, a##r##4, a##r##5, bias)

/* Winograd F(4x4, 3x3) output transform of a row of n tiles: M_xi of tile k
 * at m[xi * xs + k], Y = A^T M A + bias written to the output rows y[0..3]
 * (NULL: below the image), w of their pixels (4n, or fewer when the last
 * tile sticks out). tmp: 16 n floats. */
static void vec_wino4_out(float *const y[4], int64_t w, const float *m, int64_t xs, int64_t n, float bias,
                          float *tmp) {
    float *o[16];
    for (int i = 0; i < 16; i++) o[i] = tmp + i * n;
    #pragma omp simd
    for (int64_t k = 0; k < n; k++) {
        float a00, a10, a20, a30, a01, a11, a21, a31, a02, a12, a22, a32;
        float a03, a13, a23, a33, a04, a14, a24, a34, a05, a15, a25, a35;
        WINO4_COL(0);
        WINO4_COL(1);
        WINO4_COL(2);
        WINO4_COL(3);
        WINO4_COL(4);
        WINO4_COL(5);
        WINO4_ROW(0);
        WINO4_ROW(1);
        WINO4_ROW(2);
        WINO4_ROW(3);
    }
    const int64_t full = w / 4;
    for (int r = 0; r < 4; r++) {
        float *out = y[r];
        const float *c0 = o[4 * r], *c1 = o[4 * r + 1], *c2 = o[4 * r + 2], *c3 = o[4 * r + 3];
        if (!out) continue;
        #pragma omp simd
        for (int64_t k = 0; k < full; k++) {
            out[4 * k] = c0[k];
            out[4 * k + 1] = c1[k];
            out[4 * k + 2] = c2[k];
            out[4 * k + 3] = c3[k];
        }
        for (int64_t c = 4 * full; c < w; c++) out[c] = o[4 * r + (c & 3)][full];
    }
}

const ops_vec_kernels VEC_TABLE = {VL,           vec_gelu_sumsq, vec_moments, vec_grn_row,     vec_affine_row,
                                   vec_chan_sums, vec_norm_row,  vec_dw3_row, {vec_wino_filter, vec_wino_in, vec_wino_out},
                                   {vec_wino4_filter, vec_wino4_in, vec_wino4_out}};
