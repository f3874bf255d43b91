/* Attention for training (see grad_ops.h): a forward that also saves each
 * query row's log-sum-exp, and the blocked backward that rebuilds the
 * probabilities of one block of rows from it (flash-attention style), so the
 * Lq x Lk score matrix is never held. Each work item (batch, head, block) is
 * done by one thread with ld_gemm (single-threaded inside the parallel
 * region) in a fixed order: results do not depend on the thread count.
 *
 * With S = scale * q k^T, P = exp(S - lse), out = P v:
 *     dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(dout * out)),
 *     dq = scale * dS k,  dk = scale * dS^T q.
 * Each score block is laid out so that its long side is the depth of the
 * products that read it: [keys][queries of the block] where out and dq sum
 * over keys, [queries][keys of the block] where dv and dk sum over queries.
 * The GEMM then packs it with plain row copies; packing it transposed (rows
 * 4-16 KB apart, all in one L1 set) cost as much as the products did. The
 * forward's softmax runs down the columns of its [keys][queries] block,
 * vectorized across the queries, with the operations of a row-wise one
 * (max, exp(s - max), a double sum in key order). The forward packs each
 * head's K and V once for all its query blocks (tensor/gemm_packed.h, the
 * same bits as ld_gemm). */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"
#include "tensor/gemm_packed.h"
#include "train/grad_scratch.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define ROWS 256 /* keys (or queries) per work item: long enough to amortize packing the other operand */
#define FWD_ROWS 64 /* queries per forward item: its [keys][queries] block stays in L2 (1 MB for 4096 keys) */

static float *thread_scratch(int64_t per_thread, int *nthreads) {
    *nthreads = omp_get_max_threads();
    return grad_scratch_get(sizeof(float) * (size_t)per_thread * (size_t)*nthreads);
}

/* The softmax of one [keys][queries] block in place (see the top). */
static void softmax_block(float *St, int64_t Lk, int64_t nq, float scale, float *mx, double *sum, float *lse_out) {
    for (int64_t i = 0; i < nq; i++) mx[i] = -INFINITY, sum[i] = 0.0;
    for (int64_t j = 0; j < Lk; j++) {
        float *s = St + j * nq;
        #pragma omp simd
        for (int64_t i = 0; i < nq; i++) {
            s[i] *= scale;
            mx[i] = s[i] > mx[i] ? s[i] : mx[i];
        }
    }
    for (int64_t j = 0; j < Lk; j++) {
        float *s = St + j * nq;
        #pragma omp simd
        for (int64_t i = 0; i < nq; i++) s[i] -= mx[i];
        ops_act_serial(OPS_ACT_EXP, s, s, nq);
        #pragma omp simd
        for (int64_t i = 0; i < nq; i++) sum[i] += s[i];
    }
    float *inv = mx + FWD_ROWS;
    for (int64_t i = 0; i < nq; i++) {
        inv[i] = (float)(1.0 / sum[i]);
        lse_out[i] = mx[i] + (float)log(sum[i]);
    }
    for (int64_t j = 0; j < Lk; j++) {
        float *s = St + j * nq;
        #pragma omp simd
        for (int64_t i = 0; i < nq; i++) s[i] *= inv[i];
    }
}

int ld_attention_train_forward(float *out, int64_t ldo, float *lse, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq,
                               int64_t Lk, int64_t D, float scale) {
    const int64_t nblk = (Lq + FWD_ROWS - 1) / FWD_ROWS, items = B * H * nblk, nq0 = Lq < FWD_ROWS ? Lq : FWD_ROWS;
    /* K and V of every head packed once (their kernels: S^T = K Q^T is Lk x nq, out = P V is nq x D) */
    ld_gemm_packing ps, po;
    ld_gemm_packing_for(&ps, Lk, nq0);
    ld_gemm_packing_for(&po, nq0, D);
    const size_t kb = ld_gemm_packed_a_bytes(&ps, Lk, D), vb = ld_gemm_packed_b_bytes(&po, Lk, D);
    const size_t qb = ld_gemm_packed_b_bytes(&ps, D, FWD_ROWS), pb = ld_gemm_packed_a_bytes(&po, FWD_ROWS, Lk);
    const int64_t tile = ld_gemm_packed_tile_floats(&po, Lk) + ld_gemm_packed_tile_floats(&ps, D);
    /* per thread: the block, the maxima and the double sums, Q^T and P packed, a packing tile (64-byte steps) */
    const int64_t per =
        (FWD_ROWS * Lk + 4 * FWD_ROWS + (int64_t)((qb + pb) / sizeof(float)) + 32 + tile + 15) / 16 * 16;
    int nt;
    float *scratch = thread_scratch(per, &nt);
    const int pack_kv = ld_gemm_packed_ok(Lk, nq0, D);
    char *kv = pack_kv ? grad_scratch_get((kb + vb) * (size_t)(B * H)) : NULL;
    if (!scratch || (pack_kv && !kv)) {
        grad_scratch_put(scratch);
        grad_scratch_put(kv);
        return 0;
    }
    const ld_precision prec = ld_gemm_get_precision(); /* per thread: handed to the workers */
    if (kv) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * H; bh++) {
            const int64_t b = bh / H, h = bh % H;
            float *t = scratch + (size_t)omp_get_thread_num() * per + FWD_ROWS * Lk + 4 * FWD_ROWS;
            ld_mat K = ld_mat_f32(k + b * Lk * ldk + h * D, ldk, 1), V = ld_mat_f32(v + b * Lk * ldv + h * D, ldv, 1);
            ld_gemm_pack_a(&ps, kv + (size_t)bh * (kb + vb), &K, Lk, D, t);
            ld_gemm_pack_b(&po, kv + (size_t)bh * (kb + vb) + kb, &V, Lk, D, t);
        }
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        ld_gemm_set_precision(prec);
        const int64_t b = it / (H * nblk), h = it / nblk % H, i0 = it % nblk * FWD_ROWS, bh = b * H + h;
        const int64_t nq = Lq - i0 < FWD_ROWS ? Lq - i0 : FWD_ROWS;
        float *St = scratch + (size_t)omp_get_thread_num() * per, *mx = St + FWD_ROWS * Lk;
        double *sum = (double *)(mx + 2 * FWD_ROWS);
        ld_mat Qt = ld_mat_f32(q + (b * Lq + i0) * ldq + h * D, 1, ldq);
        ld_mat P = ld_mat_f32(St, 1, nq);
        float *o = out + (b * Lq + i0) * ldo + h * D;
        if (kv && ld_gemm_packed_ok(Lk, nq, D)) { /* the same bits as ld_gemm below (gemm_packed.h) */
            char *qp = (char *)(mx + 4 * FWD_ROWS), *pp = qp + (qb + 63) / 64 * 64;
            float *t = (float *)(pp + (pb + 63) / 64 * 64);
            const char *kp = kv + (size_t)bh * (kb + vb);
            ld_gemm_pack_b(&ps, qp, &Qt, D, nq, t);
            ld_gemm_packed_run(&ps, Lk, nq, D, kp, qp, St, nq, 0);
            softmax_block(St, Lk, nq, scale, mx, sum, lse + bh * Lq + i0);
            ld_gemm_pack_a(&po, pp, &P, nq, Lk, t);
            ld_gemm_packed_run(&po, nq, D, Lk, pp, kp + kb, o, ldo, 0);
            continue;
        }
        ld_mat K = ld_mat_f32(k + b * Lk * ldk + h * D, ldk, 1), V = ld_mat_f32(v + b * Lk * ldv + h * D, ldv, 1);
        ld_gemm(Lk, nq, D, &K, &Qt, St, nq, 0.0f, NULL, NULL);
        softmax_block(St, Lk, nq, scale, mx, sum, lse + bh * Lq + i0);
        ld_gemm(nq, D, Lk, &P, &V, o, ldo, 0.0f, NULL, NULL);
    }
    grad_scratch_put(kv);
    grad_scratch_put(scratch);
    return 1;
}

int ld_attention_backward(const float *dout, int64_t ldo, const float *out, const float *lse, const float *q,
                          int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H,
                          int64_t Lq, int64_t Lk, int64_t D, float scale, float *dq, float *dk, float *dv) {
    /* rowdot[(b*H + h)*Lq + i] = dout_i . out_i over the head's D columns */
    float *rowdot = grad_scratch_get(sizeof(float) * (size_t)(B * H * Lq));
    int nt;
    const int64_t span = Lq > Lk ? Lq : Lk;
    float *scratch = thread_scratch(2 * ROWS * span, &nt);
    if (!rowdot || !scratch) {
        grad_scratch_put(rowdot);
        grad_scratch_put(scratch);
        return 0;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * H * Lq; r++) {
        const int64_t b = r / (H * Lq), h = r / Lq % H, i = r % Lq;
        const float *a = dout + (b * Lq + i) * ldo + h * D, *o = out + (b * Lq + i) * ldo + h * D;
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)a[d] * o[d];
        rowdot[r] = (float)s;
    }

    const ld_precision prec = ld_gemm_get_precision(); /* per thread: handed to the workers */
    /* pass 1: dk and dv, one block of keys against all queries; blocks [Lq][nk] */
    if (dk || dv) {
        const int64_t nblk = (Lk + ROWS - 1) / ROWS, items = B * H * nblk;
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            ld_gemm_set_precision(prec);
            const int64_t b = it / (H * nblk), h = it / nblk % H, j0 = it % nblk * ROWS;
            const int64_t nk = Lk - j0 < ROWS ? Lk - j0 : ROWS;
            float *P = scratch + (size_t)omp_get_thread_num() * 2 * ROWS * span, *dP = P + ROWS * Lq;
            const float *lse_bh = lse + (b * H + h) * Lq, *rd = rowdot + (b * H + h) * Lq;
            const float *qh = q + b * Lq * ldq + h * D, *oh = dout + b * Lq * ldo + h * D;
            ld_mat Q = ld_mat_f32(qh, ldq, 1), Kt = ld_mat_f32(k + (b * Lk + j0) * ldk + h * D, 1, ldk);
            ld_gemm(Lq, nk, D, &Q, &Kt, P, nk, 0.0f, NULL, NULL);
            for (int64_t i = 0; i < Lq; i++) {
                float *p = P + i * nk;
                const float l = lse_bh[i];
                #pragma omp simd
                for (int64_t j = 0; j < nk; j++) p[j] = scale * p[j] - l;
                ops_act_serial(OPS_ACT_EXP, p, p, nk);
            }
            ld_mat Pt = ld_mat_f32(P, 1, nk), dO = ld_mat_f32(oh, ldo, 1);
            if (dv) ld_gemm(nk, D, Lq, &Pt, &dO, dv + (b * Lk + j0) * ldv + h * D, ldv, 1.0f, NULL, NULL);
            if (!dk) continue;
            ld_mat Vt = ld_mat_f32(v + (b * Lk + j0) * ldv + h * D, 1, ldv);
            ld_gemm(Lq, nk, D, &dO, &Vt, dP, nk, 0.0f, NULL, NULL);
            for (int64_t i = 0; i < Lq; i++) {
                float *d = dP + i * nk;
                const float *p = P + i * nk, r = rd[i];
                #pragma omp simd
                for (int64_t j = 0; j < nk; j++) d[j] = scale * p[j] * (d[j] - r);
            }
            ld_mat dSt = ld_mat_f32(dP, 1, nk);
            ld_gemm(nk, D, Lq, &dSt, &Q, dk + (b * Lk + j0) * ldk + h * D, ldk, 1.0f, NULL, NULL);
        }
    }

    /* pass 2: dq, one block of queries against all keys; blocks [Lk][nq] */
    if (dq) {
        const int64_t nblk = (Lq + ROWS - 1) / ROWS, items = B * H * nblk;
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            ld_gemm_set_precision(prec);
            const int64_t b = it / (H * nblk), h = it / nblk % H, i0 = it % nblk * ROWS;
            const int64_t nq = Lq - i0 < ROWS ? Lq - i0 : ROWS;
            float *Pt = scratch + (size_t)omp_get_thread_num() * 2 * ROWS * span, *dPt = Pt + ROWS * Lk;
            const float *lse_b = lse + (b * H + h) * Lq + i0, *rd = rowdot + (b * H + h) * Lq + i0;
            const float *kh = k + b * Lk * ldk + h * D;
            ld_mat K = ld_mat_f32(kh, ldk, 1), Qt = ld_mat_f32(q + (b * Lq + i0) * ldq + h * D, 1, ldq);
            ld_gemm(Lk, nq, D, &K, &Qt, Pt, nq, 0.0f, NULL, NULL);
            ld_mat V = ld_mat_f32(v + b * Lk * ldv + h * D, ldv, 1);
            ld_mat dOt = ld_mat_f32(dout + (b * Lq + i0) * ldo + h * D, 1, ldo);
            ld_gemm(Lk, nq, D, &V, &dOt, dPt, nq, 0.0f, NULL, NULL);
            for (int64_t j = 0; j < Lk; j++) {
                float *p = Pt + j * nq, *d = dPt + j * nq;
                #pragma omp simd
                for (int64_t i = 0; i < nq; i++) p[i] = scale * p[i] - lse_b[i];
                ops_act_serial(OPS_ACT_EXP, p, p, nq);
                #pragma omp simd
                for (int64_t i = 0; i < nq; i++) d[i] = scale * p[i] * (d[i] - rd[i]);
            }
            ld_mat dS = ld_mat_f32(dPt, 1, nq);
            ld_gemm(nq, D, Lk, &dS, &K, dq + (b * Lq + i0) * ldq + h * D, ldq, 1.0f, NULL, NULL);
        }
    }
    grad_scratch_put(rowdot);
    grad_scratch_put(scratch);
    return 1;
}
