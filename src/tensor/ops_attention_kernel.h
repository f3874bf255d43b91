/* The attention inner kernel, compiled once per instruction set: included by
 * ops_attention.c (portable), ops_attention_avx2.c and ops_attention_avx512.c
 * with these defined: ATTN_KERNEL (the function's name), OPS_VBYTES (bytes
 * of a vector register), OPS_BCAST(x) (a vector of x), ATTN_VMAC(a, b, c)
 * and ATTN_SMAC(a, b, c) (a*b + c on vectors / floats; fused where the target
 * has FMA, so the vector and scalar columns round alike). Not a public header.
 *
 * One call handles nq <= ATTN_BQ consecutive queries of one (batch, head)
 * against all keys, a key block of ATTN_BK at a time, with the online softmax:
 *   s = scale * q.k (+ mask), m' = max(m, max s), p = exp(s - m'),
 *   l = l*exp(m - m') + sum p, o = o*exp(m - m') + p V;  out = o / l.
 * The products keep 4 query rows x 2 vectors of accumulators in registers;
 * vectors run over contiguous memory (keys of a transposed block for the
 * scores, the head dimension for p V), never across a reduction, so rounding
 * does not depend on the thread split. */

#include "tensor/ops_vmath.h"

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

        /* scores, four query rows x two vectors of keys at a time, in registers
         * (rows past nq repeat the last one; their scores are never used) */
        for (int64_t r = 0; r < nq; r += 4) {
            const float *q0 = q + (i0 + r) * ldq;
            const float *q1 = r + 1 < nq ? q0 + ldq : q0;
            const float *q2 = r + 2 < nq ? q0 + 2 * ldq : q0;
            const float *q3 = r + 3 < nq ? q0 + 3 * ldq : q0;
            for (int jc = 0; jc < nk; jc += 2 * VL) { /* columns past nk are set to -inf below */
                vf c00 = vzero, c01 = vzero, c10 = vzero, c11 = vzero;
                vf c20 = vzero, c21 = vzero, c30 = vzero, c31 = vzero;
                const float *kp = kt + jc;
                for (int64_t d = 0; d < D; d++, kp += ATTN_BK) {
                    vf k0 = vload(kp), k1 = vload(kp + VL);
                    vf a = OPS_BCAST(q0[d]);
                    c00 = ATTN_VMAC(a, k0, c00);
                    c01 = ATTN_VMAC(a, k1, c01);
                    a = OPS_BCAST(q1[d]);
                    c10 = ATTN_VMAC(a, k0, c10);
                    c11 = ATTN_VMAC(a, k1, c11);
                    a = OPS_BCAST(q2[d]);
                    c20 = ATTN_VMAC(a, k0, c20);
                    c21 = ATTN_VMAC(a, k1, c21);
                    a = OPS_BCAST(q3[d]);
                    c30 = ATTN_VMAC(a, k0, c30);
                    c31 = ATTN_VMAC(a, k1, c31);
                }
                float *sp = s + r * ATTN_BK + jc;
                vstore(sp, c00);
                vstore(sp + VL, c01);
                vstore(sp + ATTN_BK, c10);
                vstore(sp + ATTN_BK + VL, c11);
                vstore(sp + 2 * ATTN_BK, c20);
                vstore(sp + 2 * ATTN_BK + VL, c21);
                vstore(sp + 3 * ATTN_BK, c30);
                vstore(sp + 3 * ATTN_BK + VL, c31);
            }
        }

        /* masks and the online softmax, one query row at a time */
        for (int64_t r = 0; r < nq; r++) {
            int64_t i = i0 + r;
            float *restrict sr = s + r * ATTN_BK;
            const float *mr = mask ? mask + i * p->mask_q + j0 : NULL;
            if (mr || keep || p->causal) {
                for (int64_t jj = 0; jj < nk; jj++) {
                    float x = sr[jj] * p->scale;
                    if (mr) x += mr[jj];
                    if (keep && !keep[j0 + jj]) x = -INFINITY;
                    if (p->causal && j0 + jj > i) x = -INFINITY;
                    sr[jj] = x;
                }
            } else {
                vf sc = OPS_BCAST(p->scale);
                for (int jj = 0; jj < ATTN_BK; jj += VL) vstore(sr + jj, vload(sr + jj) * sc);
            }
            for (int64_t jj = nk; jj < ATTN_BK; jj++) sr[jj] = -INFINITY;
            vf vm = vload(sr);
            for (int jj = VL; jj < ATTN_BK; jj += VL) vm = vmax(vm, vload(sr + jj));
            float mx = mrow[r];
            for (int t = 0; t < VL; t++) mx = vm[t] > mx ? vm[t] : mx;
            if (mx == -INFINITY) { /* nothing attended so far: contributes nothing */
                for (int64_t jj = 0; jj < ATTN_BK; jj++) sr[jj] = 0.0f;
                continue;
            }
            float alpha = vexp(OPS_BCAST(mrow[r] - mx))[0];
            vf vmx = OPS_BCAST(mx), vs = vzero;
            for (int jj = 0; jj < ATTN_BK; jj += VL) {
                vf e = vexp(vload(sr + jj) - vmx);
                vstore(sr + jj, e);
                vs += e;
            }
            float sum = 0.0f;
            for (int t = 0; t < VL; t++) sum += vs[t];
            mrow[r] = mx;
            lrow[r] = lrow[r] * alpha + sum;
            if (alpha != 1.0f) {
                float *restrict orow = o + r * D;
                for (int64_t d = 0; d < D; d++) orow[d] *= alpha;
            }
        }

        /* o += P V, four query rows x two vectors of the head dimension at a
         * time in registers, then one vector, then single columns (rows past
         * nq accumulate into unused o rows) */
        for (int64_t r = 0; r < nq; r += 4) {
            const float *p0 = s + r * ATTN_BK;
            const float *p1 = r + 1 < nq ? p0 + ATTN_BK : p0;
            const float *p2 = r + 2 < nq ? p0 + 2 * ATTN_BK : p0;
            const float *p3 = r + 3 < nq ? p0 + 3 * ATTN_BK : p0;
            float *o0 = o + r * D, *o1 = o0 + D, *o2 = o1 + D, *o3 = o2 + D;
            const float *vb = v + j0 * ldv;
            int64_t d = 0;
            for (; d + 2 * VL <= D; d += 2 * VL) {
                vf c00 = vload(o0 + d), c01 = vload(o0 + d + VL), c10 = vload(o1 + d), c11 = vload(o1 + d + VL);
                vf c20 = vload(o2 + d), c21 = vload(o2 + d + VL), c30 = vload(o3 + d), c31 = vload(o3 + d + VL);
                const float *vp = vb + d;
                for (int64_t jj = 0; jj < nk; jj++, vp += ldv) {
                    vf v0 = vload(vp), v1 = vload(vp + VL);
                    vf a = OPS_BCAST(p0[jj]);
                    c00 = ATTN_VMAC(a, v0, c00);
                    c01 = ATTN_VMAC(a, v1, c01);
                    a = OPS_BCAST(p1[jj]);
                    c10 = ATTN_VMAC(a, v0, c10);
                    c11 = ATTN_VMAC(a, v1, c11);
                    a = OPS_BCAST(p2[jj]);
                    c20 = ATTN_VMAC(a, v0, c20);
                    c21 = ATTN_VMAC(a, v1, c21);
                    a = OPS_BCAST(p3[jj]);
                    c30 = ATTN_VMAC(a, v0, c30);
                    c31 = ATTN_VMAC(a, v1, c31);
                }
                vstore(o0 + d, c00);
                vstore(o0 + d + VL, c01);
                vstore(o1 + d, c10);
                vstore(o1 + d + VL, c11);
                vstore(o2 + d, c20);
                vstore(o2 + d + VL, c21);
                vstore(o3 + d, c30);
                vstore(o3 + d + VL, c31);
            }
            for (; d + VL <= D; d += VL) {
                vf c0 = vload(o0 + d), c1 = vload(o1 + d), c2 = vload(o2 + d), c3 = vload(o3 + d);
                const float *vp = vb + d;
                for (int64_t jj = 0; jj < nk; jj++, vp += ldv) {
                    vf v0 = vload(vp);
                    c0 = ATTN_VMAC(OPS_BCAST(p0[jj]), v0, c0);
                    c1 = ATTN_VMAC(OPS_BCAST(p1[jj]), v0, c1);
                    c2 = ATTN_VMAC(OPS_BCAST(p2[jj]), v0, c2);
                    c3 = ATTN_VMAC(OPS_BCAST(p3[jj]), v0, c3);
                }
                vstore(o0 + d, c0);
                vstore(o1 + d, c1);
                vstore(o2 + d, c2);
                vstore(o3 + d, c3);
            }
            for (; d < D; d++) {
                float c0 = o0[d], c1 = o1[d], c2 = o2[d], c3 = o3[d];
                const float *vp = vb + d;
                for (int64_t jj = 0; jj < nk; jj++, vp += ldv) {
                    c0 = ATTN_SMAC(p0[jj], *vp, c0);
                    c1 = ATTN_SMAC(p1[jj], *vp, c1);
                    c2 = ATTN_SMAC(p2[jj], *vp, c2);
                    c3 = ATTN_SMAC(p3[jj], *vp, c3);
                }
                o0[d] = c0;
                o1[d] = c1;
                o2[d] = c2;
                o3[d] = c3;
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
