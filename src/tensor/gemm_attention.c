/* Attention on the GEMM micro-kernels (see gemm_attention.h), flash-attention
 * style with an online softmax. For one work item (batch b, head h, block of
 * BQ = 8*MR queries) the thread
 *   1. packs Q*scale into MR-row panels (depth D) once;
 *   2. for each block of BK keys: packs K^T into NR-wide panels, computes the
 *      scores S = (Q scale) K^T with the micro-kernel, adds the mask /
 *      causal / padding terms, runs the softmax step per row
 *          mn = max(m, max_j s_j), p_j = exp(s_j - mn), alpha = exp(m - mn),
 *          l = l*alpha + sum_j p_j,  O = O*alpha,  m = mn,
 *      then packs P (MR-row panels, depth = keys of the block) and V
 *      (NR-wide panels) and accumulates O += P V with the micro-kernel;
 *   3. writes out = O / l (zeros for a query that sees no key).
 * All scratch is per thread: about (2*BQ + D + Dp) * BK + 2*BQ*Dp floats.
 */
#include "tensor/gemm_attention.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm_kernels.h"

#define ATT_BK 256 /* keys per block */

static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static float softmax_portable(float *s, int64_t n, float *m, float *alpha) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float mn = *m > mx ? *m : mx;
    if (mn == -INFINITY) {
        memset(s, 0, sizeof(float) * (size_t)n);
        *alpha = 1.0f;
        return 0.0f;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - mn);
        sum += s[j];
    }
    *alpha = *m == -INFINITY ? 0.0f : expf(*m - mn);
    *m = mn;
    return sum;
}

typedef struct {
    float *qp, *kp, *s, *pp, *vp, *o, *m, *l, *tmp;
} att_scratch;

static size_t scratch_floats(int64_t BQ, int64_t BK, int64_t D, int64_t Dp) {
    return (size_t)(BQ * D + D * BK + 2 * BQ * BK + BK * Dp + BQ * Dp + 2 * BQ + (D > BK ? D : BK) + 16 * 64);
}

/* n floats from *p, rounded up to a 64-byte boundary first. */
static float *take(float **p, int64_t n) {
    float *r = (float *)(((uintptr_t)*p + 63) & ~(uintptr_t)63);
    *p = r + n;
    return r;
}

static att_scratch carve(float *base, int64_t BQ, int64_t BK, int64_t D, int64_t Dp) {
    att_scratch a;
    float *p = base;
    a.qp = take(&p, BQ * D);
    a.kp = take(&p, D * BK);
    a.s = take(&p, BQ * BK);
    a.pp = take(&p, BQ * BK);
    a.vp = take(&p, BK * Dp);
    a.o = take(&p, BQ * Dp);
    a.m = take(&p, BQ);
    a.l = take(&p, BQ);
    a.tmp = take(&p, D > BK ? D : BK);
    return a;
}

/* Scores of one key block: row i of s gets the extra terms, then the softmax step. */
static void mask_and_softmax(const ld_gemm_kernel *kr, const ld_attn_params *p, int64_t b, int64_t Lk, int64_t i0,
                             int64_t nq, int64_t j0, int64_t nk, int64_t BK, int64_t Dp, att_scratch *w) {
    ld_gemm_softmax_fn softmax = kr->softmax ? kr->softmax : softmax_portable;
    const uint8_t *keep = p->key_keep ? p->key_keep + b * Lk + j0 : NULL;
    for (int64_t i = 0; i < nq; i++) {
        float *row = w->s + i * BK;
        if (p->mask) {
            const float *mr = p->mask + b * p->mask_b + (i0 + i) * p->mask_q + j0;
            for (int64_t j = 0; j < nk; j++) row[j] += mr[j];
        }
        if (p->causal)
            for (int64_t j = (i0 + i) - j0 + 1 > 0 ? (i0 + i) - j0 + 1 : 0; j < nk; j++) row[j] = -INFINITY;
        if (keep)
            for (int64_t j = 0; j < nk; j++)
                if (!keep[j]) row[j] = -INFINITY;
        float alpha;
        float sum = softmax(row, nk, &w->m[i], &alpha);
        w->l[i] = w->l[i] * alpha + sum;
        if (alpha != 1.0f) {
            float *o = w->o + i * Dp;
            for (int64_t d = 0; d < Dp; d++) o[d] *= alpha;
        }
    }
}

static void attend_item(const ld_gemm_kernel *kr, float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                        int64_t ldk, const float *v, int64_t ldv, int64_t b, int64_t Lk, int64_t D, int64_t i0,
                        int64_t nq, int64_t BQ, int64_t BK, int64_t Dp, const ld_attn_params *p, att_scratch *w) {
    const int MR = kr->mr, NR = kr->nr;
    const int64_t nqp = rup(nq, MR);
    /* 1. Q * scale, MR-row panels of depth D */
    for (int64_t r = 0; r < nq; r += MR) {
        float *dst = w->qp + r * D;
        ld_gemm_gather(kr, LD_F32, q, r * ldq, 1, ldq, D, nq - r < MR ? nq - r : MR, MR, dst, w->tmp);
        for (int64_t t = 0; t < D * MR; t++) dst[t] *= p->scale;
    }
    for (int64_t i = 0; i < BQ; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    memset(w->o, 0, sizeof(float) * (size_t)(BQ * Dp));
    int64_t jend = Lk;
    if (p->causal && i0 + nq < jend) jend = i0 + nq; /* keys after the last query are masked anyway */
    for (int64_t j0 = 0; j0 < jend; j0 += BK) {
        const int64_t nk = jend - j0 < BK ? jend - j0 : BK, nkp = rup(nk, NR);
        /* 2a. K^T panels (depth D, NR keys each) and S = Qs K^T */
        for (int64_t jj = 0; jj < nkp; jj += NR)
            ld_gemm_gather(kr, LD_F32, k, (j0 + jj) * ldk, 1, ldk, D, nk - jj < NR ? nk - jj : NR, NR,
                           w->kp + jj * D, w->tmp);
        for (int64_t jj = 0; jj < nkp; jj += NR)
            for (int64_t r = 0; r < nqp; r += MR) kr->micro(D, w->qp + r * D, w->kp + jj * D, w->s + r * BK + jj, BK, 0);
        /* 2b. extra terms and the softmax step */
        mask_and_softmax(kr, p, b, Lk, i0, nq, j0, nk, BK, Dp, w);
        /* 2c. O += P V: P as MR-row panels of depth nk, V as NR-wide panels */
        for (int64_t r = 0; r < nq; r += MR)
            ld_gemm_gather(kr, LD_F32, w->s, r * BK, 1, BK, nk, nq - r < MR ? nq - r : MR, MR, w->pp + r * nk, w->tmp);
        for (int64_t d0 = 0; d0 < Dp; d0 += NR)
            ld_gemm_gather(kr, LD_F32, v, j0 * ldv + d0, ldv, 1, nk, D - d0 < NR ? D - d0 : NR, NR, w->vp + d0 * nk,
                           w->tmp);
        for (int64_t d0 = 0; d0 < Dp; d0 += NR)
            for (int64_t r = 0; r < nqp; r += MR) kr->micro(nk, w->pp + r * nk, w->vp + d0 * nk, w->o + r * Dp + d0, Dp, 1);
    }
    /* 3. normalize */
    for (int64_t i = 0; i < nq; i++) {
        float *dst = out + i * ldo;
        if (w->l[i] > 0.0f) {
            const float inv = 1.0f / w->l[i];
            for (int64_t d = 0; d < D; d++) dst[d] = w->o[i * Dp + d] * inv;
        } else {
            memset(dst, 0, sizeof(float) * (size_t)D);
        }
    }
}

int ld_gemm_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                      const ld_attn_params *p) {
    if (B <= 0 || H <= 0 || Lq <= 0 || D <= 0) return 1;
    if (Lk < 0) Lk = 0;
    const ld_gemm_kernel *kr = ld_gemm_kernel_f32();
    const int64_t BQ = 8 * kr->mr, BK = rup(ATT_BK, kr->nr), Dp = rup(D, kr->nr);
    const int64_t nqb = (Lq + BQ - 1) / BQ, items = B * H * nqb;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (items < nt) nt = (int)items;
    const size_t per = scratch_floats(BQ, BK, D, Dp);
    float *scratch = aligned_alloc(64, rup((int64_t)(per * (size_t)nt * sizeof(float)), 64));
    if (!scratch) return 0;
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int64_t it = 0; it < items; it++) {
        att_scratch w = carve(scratch + per * (size_t)omp_get_thread_num(), BQ, BK, D, Dp);
        const int64_t b = it / (H * nqb), h = it / nqb % H, i0 = (it % nqb) * BQ;
        const int64_t nq = Lq - i0 < BQ ? Lq - i0 : BQ;
        attend_item(kr, out + (b * Lq + i0) * ldo + h * D, ldo, q + (b * Lq + i0) * ldq + h * D, ldq,
                    k + b * Lk * ldk + h * D, ldk, v + b * Lk * ldv + h * D, ldv, b, Lk, D, i0, nq, BQ, BK, Dp, p,
                    &w);
    }
    free(scratch);
    return 1;
}
