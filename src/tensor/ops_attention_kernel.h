/* The attention inner kernel, compiled once per instruction set: included by
 * ops_attention.c (portable), ops_attention_avx2.c and ops_attention_avx512.c
 * with ATTN_KERNEL (the function's name) and ATTN_MAC(a, b, c) = a*b + c
 * (fmaf where the target has FMA) defined. Not a public header.
 *
 * One call handles nq <= ATTN_BQ consecutive queries of one (batch, head)
 * against all keys, a key block of ATTN_BK at a time, with the online softmax:
 *   s = scale * q.k (+ mask), m' = max(m, max s), p = exp(s - m'),
 *   l = l*exp(m - m') + sum p, o = o*exp(m - m') + p V;  out = o / l.
 * Inner loops run over contiguous memory without reductions (keys of a
 * transposed block for the scores, the head dimension for p V), so they
 * vectorize and their rounding does not depend on the thread split. */

#include <math.h>

static void ATTN_KERNEL(float *restrict out, int64_t ldo, const float *restrict q, int64_t ldq,
                        const float *restrict k, int64_t ldk, const float *restrict v, int64_t ldv, int64_t Lk,
                        int64_t D, int64_t i0, int64_t nq, const ld_attn_params *p, const float *mask,
                        const uint8_t *keep, float *restrict scratch) {
    float *restrict kt = scratch;          /* [D][ATTN_BK] keys of the block, transposed */
    float *restrict s = kt + D * ATTN_BK;  /* [ATTN_BQ][ATTN_BK] scores, then probabilities */
    float *restrict o = s + ATTN_BQ * ATTN_BK; /* [ATTN_BQ][D] unnormalized output */
    float *restrict mrow = o + ATTN_BQ * D;    /* running max */
    float *restrict lrow = mrow + ATTN_BQ;     /* running sum */
    int64_t nq4 = (nq + 3) & ~(int64_t)3;
    for (int64_t r = 0; r < nq4; r++) {
        mrow[r] = -INFINITY;
        lrow[r] = 0.0f;
        for (int64_t d = 0; d < D; d++) o[r * D + d] = 0.0f;
    }
    int64_t jend = Lk;
    if (p->causal && i0 + nq < jend) jend = i0 + nq; /* keys after the last query are masked */

    for (int64_t j0 = 0; j0 < jend; j0 += ATTN_BK) {
        int64_t nk = jend - j0 < ATTN_BK ? jend - j0 : ATTN_BK;
        for (int64_t jj = 0; jj < nk; jj++) {
            const float *kr = k + (j0 + jj) * ldk;
            for (int64_t d = 0; d < D; d++) kt[d * ATTN_BK + jj] = kr[d];
        }
        if (nk < ATTN_BK)
            for (int64_t d = 0; d < D; d++)
                for (int64_t jj = nk; jj < ATTN_BK; jj++) kt[d * ATTN_BK + jj] = 0.0f;

        /* scores, four query rows at a time (rows past nq repeat the last one) */
        for (int64_t r = 0; r < nq; r += 4) {
            const float *q0 = q + (i0 + r) * ldq;
            const float *q1 = r + 1 < nq ? q0 + ldq : q0;
            const float *q2 = r + 2 < nq ? q0 + 2 * ldq : q0;
            const float *q3 = r + 3 < nq ? q0 + 3 * ldq : q0;
            float *restrict s0 = s + r * ATTN_BK, *restrict s1 = s0 + ATTN_BK;
            float *restrict s2 = s1 + ATTN_BK, *restrict s3 = s2 + ATTN_BK;
            for (int jj = 0; jj < 4 * ATTN_BK; jj++) s0[jj] = 0.0f;
            for (int64_t d = 0; d < D; d++) {
                const float *restrict kd = kt + d * ATTN_BK;
                float a0 = q0[d], a1 = q1[d], a2 = q2[d], a3 = q3[d];
                #pragma omp simd
                for (int jj = 0; jj < ATTN_BK; jj++) {
                    float kv = kd[jj];
                    s0[jj] = ATTN_MAC(a0, kv, s0[jj]);
                    s1[jj] = ATTN_MAC(a1, kv, s1[jj]);
                    s2[jj] = ATTN_MAC(a2, kv, s2[jj]);
                    s3[jj] = ATTN_MAC(a3, kv, s3[jj]);
                }
            }
        }

        /* masks and the online softmax, one query row at a time */
        for (int64_t r = 0; r < nq; r++) {
            int64_t i = i0 + r;
            float *restrict sr = s + r * ATTN_BK;
            const float *mr = mask ? mask + i * p->mask_q + j0 : NULL;
            for (int64_t jj = 0; jj < nk; jj++) {
                float x = sr[jj] * p->scale;
                if (mr) x += mr[jj];
                if (keep && !keep[j0 + jj]) x = -INFINITY;
                if (p->causal && j0 + jj > i) x = -INFINITY;
                sr[jj] = x;
            }
            float mx = mrow[r];
            for (int64_t jj = 0; jj < nk; jj++) mx = sr[jj] > mx ? sr[jj] : mx;
            if (mx == -INFINITY) { /* nothing attended so far: contributes nothing */
                for (int64_t jj = 0; jj < ATTN_BK; jj++) sr[jj] = 0.0f;
                continue;
            }
            float alpha = expf(mrow[r] - mx), sum = 0.0f;
            for (int64_t jj = 0; jj < nk; jj++) {
                float e = expf(sr[jj] - mx);
                sr[jj] = e;
                sum += e;
            }
            for (int64_t jj = nk; jj < ATTN_BK; jj++) sr[jj] = 0.0f;
            mrow[r] = mx;
            lrow[r] = lrow[r] * alpha + sum;
            if (alpha != 1.0f) {
                float *restrict orow = o + r * D;
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) orow[d] *= alpha;
            }
        }

        /* o += P V, four query rows at a time (rows past nq use a dummy o row) */
        for (int64_t r = 0; r < nq; r += 4) {
            const float *p0 = s + r * ATTN_BK;
            const float *p1 = r + 1 < nq ? p0 + ATTN_BK : p0;
            const float *p2 = r + 2 < nq ? p0 + 2 * ATTN_BK : p0;
            const float *p3 = r + 3 < nq ? p0 + 3 * ATTN_BK : p0;
            float *restrict o0 = o + r * D, *restrict o1 = o0 + D, *restrict o2 = o1 + D, *restrict o3 = o2 + D;
            for (int64_t jj = 0; jj < nk; jj++) {
                const float *restrict vr = v + (j0 + jj) * ldv;
                float a0 = p0[jj], a1 = p1[jj], a2 = p2[jj], a3 = p3[jj];
                if (a0 == 0.0f && a1 == 0.0f && a2 == 0.0f && a3 == 0.0f) continue;
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) {
                    float x = vr[d];
                    o0[d] = ATTN_MAC(a0, x, o0[d]);
                    o1[d] = ATTN_MAC(a1, x, o1[d]);
                    o2[d] = ATTN_MAC(a2, x, o2[d]);
                    o3[d] = ATTN_MAC(a3, x, o3[d]);
                }
            }
        }
    }

    for (int64_t r = 0; r < nq; r++) {
        float inv = lrow[r] > 0.0f ? 1.0f / lrow[r] : 0.0f;
        float *restrict dst = out + (i0 + r) * ldo;
        const float *restrict orow = o + r * D;
        for (int64_t d = 0; d < D; d++) dst[d] = orow[d] * inv;
    }
}
