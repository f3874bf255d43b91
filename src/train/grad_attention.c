/* Attention for training (see grad_ops.h): a forward that also saves each
 * query row's log-sum-exp, and a blocked backward that rebuilds the
 * probabilities of one block of scores from it (flash-attention style), so
 * the Lq x Lk score matrix is never held. Each work item is done by one
 * thread on the packed kernels (single-threaded inside the parallel region)
 * in a fixed order: results do not depend on the thread count.
 *
 * With S = scale * q k^T, P = exp(S - lse), out = P v:
 *     dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(dout * out)),
 *     dq = scale * dS k,  dk = scale * dS^T q.
 * The backward makes one pass (FlashAttention-2's order): a work item is a
 * group of keys of one head (one group up to 1024 keys, at most 4 groups a
 * head, their sizes set by Lk alone); it packs the head's q and dout once,
 * then for each block of 64 keys walks the queries in blocks of ~256, so
 * the block's scores, P and dS stay in L2 while dv, dk (summed over the
 * query blocks) and dq (summed over the key blocks) take their part. Five
 * products per block instead of the seven of a pass for dk, dv and another
 * for dq, which recomputed the scores. dq of a head's later key groups goes
 * to partial sums, added in group order, so the number of work items (and
 * the bits) does not depend on the thread count.
 *
 * The forward's softmax runs down the columns of its [keys][queries] block,
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
#include <string.h>

#define FWD_ROWS 64 /* queries per forward item: its [keys][queries] block stays in L2 (1 MB for 4096 keys) */
/* Rows of a score block per call of the vector exp: its calls then cover whole groups of vectors (128
 * floats on AVX-512; a row of 64 alone would be padded to one). */
#define EXP_ROWS 32

static float *thread_scratch(int64_t per_thread, int *nthreads) {
    *nthreads = omp_get_max_threads();
    return grad_scratch_get(sizeof(float) * (size_t)per_thread * (size_t)*nthreads);
}

/* The softmax of one [keys][queries] block in place (see the top). The
 * extreme raw score is found before scaling (the largest for scale >= 0,
 * the smallest for scale < 0; rounding is monotonic, so scale times it is
 * the largest product: the same bits as the maximum of the scaled scores),
 * which saves writing the block once. */
static void softmax_block(float *St, int64_t Lk, int64_t nq, float scale, float *mx, double *sum, float *lse_out) {
    const int up = scale >= 0.0f;
    for (int64_t i = 0; i < nq; i++) mx[i] = up ? -INFINITY : INFINITY, sum[i] = 0.0;
    for (int64_t j = 0; j < Lk; j++) {
        const float *s = St + j * nq;
        if (up) {
            #pragma omp simd
            for (int64_t i = 0; i < nq; i++) mx[i] = s[i] > mx[i] ? s[i] : mx[i];
        } else {
            #pragma omp simd
            for (int64_t i = 0; i < nq; i++) mx[i] = s[i] < mx[i] ? s[i] : mx[i];
        }
    }
    for (int64_t i = 0; i < nq; i++) mx[i] *= scale;
    for (int64_t j0 = 0; j0 < Lk; j0 += EXP_ROWS) { /* exp over EXP_ROWS rows at once: whole groups of vectors */
        const int64_t j1 = Lk - j0 < EXP_ROWS ? Lk : j0 + EXP_ROWS;
        for (int64_t j = j0; j < j1; j++) {
            float *s = St + j * nq;
            #pragma omp simd
            for (int64_t i = 0; i < nq; i++) s[i] = s[i] * scale - mx[i];
        }
        ops_act_serial(OPS_ACT_EXP, St + j0 * nq, St + j0 * nq, (j1 - j0) * nq);
        for (int64_t j = j0; j < j1; j++) {
            const float *s = St + j * nq;
            #pragma omp simd
            for (int64_t i = 0; i < nq; i++) sum[i] += s[i];
        }
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
    ld_gemm_packing_for(&ps, Lk, nq0, 0);
    ld_gemm_packing_for(&po, nq0, D, 0);
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

/* ---- backward ---- */

#define BWD_KEYS 64      /* keys per block: dk and dv of a block stay in L1 across the query blocks */
#define BWD_QUERIES 256  /* queries per block: its scores, probabilities and dS stay in L2 */
#define BWD_GROUP 1024   /* keys per work item at least; dq of items past a head's first go to partial sums */
#define BWD_GROUPS 4     /* work items per head at most: the partial sums take (BWD_GROUPS - 1) x dq */

/* The kernels of the backward's products and the bytes of each operand,
 * the same for every item of a call. */
typedef struct {
    ld_gemm_packing ps; /* S = Q K_j^T and dP = dO V_j^T: queries x keys, depth D */
    ld_gemm_packing pt; /* dv_j += P^T dO and dk_j += dS^T Q: keys x D, depth queries */
    ld_gemm_packing pq; /* dq += dS K_j: queries x D, depth keys */
    int64_t qb;         /* queries per block: a multiple of ps's panel height and even */
    size_t qa, qbb, kt, kj, pa, dsq; /* packed bytes: Q as A, Q as B, K_j^T, K_j, P^T, dS (64-byte steps) */
    size_t sb, tile_at, per; /* score block bytes; where the packing tile starts; bytes per thread */
} bwd_plan;

static size_t up64(size_t bytes) { return (bytes + 63) / 64 * 64; }

static void bwd_plan_for(bwd_plan *pl, int64_t Lq, int64_t Lk, int64_t D) {
    const int64_t nk0 = Lk < BWD_KEYS ? Lk : BWD_KEYS, nq0 = Lq < BWD_QUERIES ? Lq : BWD_QUERIES;
    ld_gemm_packing_for(&pl->ps, nq0, nk0, 0);
    ld_gemm_packing_for(&pl->pt, nk0, D, 0);
    ld_gemm_packing_for(&pl->pq, nq0, D, 0);
    const int64_t mr2 = pl->ps.kr->mr % 2 ? 2 * pl->ps.kr->mr : pl->ps.kr->mr;
    pl->qb = BWD_QUERIES / mr2 * mr2;
    if (pl->qb < mr2) pl->qb = mr2;
    pl->qa = up64(ld_gemm_packed_a_bytes(&pl->ps, Lq, D));
    pl->qbb = up64(ld_gemm_packed_b_bytes(&pl->pt, Lq, D));
    pl->kt = up64(ld_gemm_packed_b_bytes(&pl->ps, D, BWD_KEYS));
    pl->kj = up64(ld_gemm_packed_b_bytes(&pl->pq, BWD_KEYS, D));
    pl->pa = up64(ld_gemm_packed_a_bytes(&pl->pt, BWD_KEYS, pl->qb));
    pl->dsq = up64(ld_gemm_packed_a_bytes(&pl->pq, pl->qb, BWD_KEYS));
    pl->sb = up64(sizeof(float) * (size_t)(pl->qb * BWD_KEYS));
    int64_t tf = ld_gemm_packed_tile_floats(&pl->ps, D);
    const int64_t t2 = ld_gemm_packed_tile_floats(&pl->pt, Lq > pl->qb ? Lq : pl->qb);
    const int64_t t3 = ld_gemm_packed_tile_floats(&pl->pq, BWD_KEYS);
    if (t2 > tf) tf = t2;
    if (t3 > tf) tf = t3;
    /* Q and dO as A and as B, K_j^T, V_j^T, K_j, the two score blocks, P^T, dS^T, dS, the tile */
    pl->tile_at = 2 * pl->qa + 2 * pl->qbb + 2 * pl->kt + pl->kj + 2 * pl->sb + 2 * pl->pa + pl->dsq;
    pl->per = up64(pl->tile_at + sizeof(float) * (size_t)tf);
}

/* Keys [g0, g1) of head (b, h) against all queries: dk and dv of those keys,
 * and their part of dq into dqo (row stride lddq), summed onto it. One
 * thread; every sum in a fixed order. */
static void bwd_item(const bwd_plan *pl, char *ws, const float *dout, int64_t ldo, const float *lse_bh,
                     const float *rd, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                     int64_t ldv, int64_t b, int64_t h, int64_t g0, int64_t g1, int64_t Lq, int64_t Lk, int64_t D,
                     float scale, float *dqo, int64_t lddq, float *dk, float *dv) {
    char *QA = ws, *OA = QA + pl->qa, *QB = OA + pl->qa, *OB = QB + pl->qbb, *KT = OB + pl->qbb, *VT = KT + pl->kt;
    char *KJ = VT + pl->kt, *PA = KJ + pl->kj + 2 * pl->sb, *SA = PA + pl->pa, *SQ = SA + pl->pa;
    float *S = (float *)(KJ + pl->kj), *dP = (float *)((char *)S + pl->sb), *tile = (float *)(ws + pl->tile_at);
    const float *qh = q + b * Lq * ldq + h * D, *oh = dout + b * Lq * ldo + h * D;
    const ld_mat Q = ld_mat_f32(qh, ldq, 1), dO = ld_mat_f32(oh, ldo, 1);
    const int need_dp = dk || dqo;
    ld_gemm_pack_a(&pl->ps, QA, &Q, Lq, D, tile);
    if (need_dp) ld_gemm_pack_a(&pl->ps, OA, &dO, Lq, D, tile);
    if (dk) ld_gemm_pack_b(&pl->pt, QB, &Q, Lq, D, tile);
    if (dv) ld_gemm_pack_b(&pl->pt, OB, &dO, Lq, D, tile);
    const size_t apan = ld_gemm_packed_a_bytes(&pl->ps, 1, D), bpan = ld_gemm_packed_b_bytes(&pl->pt, Lq, 1);
    const size_t kpan = ld_gemm_packed_b_bytes(&pl->ps, D, 1); /* K_j^T and V_j^T panels */
    for (int64_t j0 = g0; j0 < g1; j0 += BWD_KEYS) {
        const int64_t nk = g1 - j0 < BWD_KEYS ? g1 - j0 : BWD_KEYS;
        const float *kj = k + (b * Lk + j0) * ldk + h * D, *vj = v + (b * Lk + j0) * ldv + h * D;
        const ld_mat Kt = ld_mat_f32(kj, 1, ldk), Vt = ld_mat_f32(vj, 1, ldv), Kj = ld_mat_f32(kj, ldk, 1);
        ld_gemm_pack_b(&pl->ps, KT, &Kt, D, nk, tile);
        if (need_dp) ld_gemm_pack_b(&pl->ps, VT, &Vt, D, nk, tile);
        if (dqo) ld_gemm_pack_b(&pl->pq, KJ, &Kj, nk, D, tile);
        float *dkj = dk ? dk + (b * Lk + j0) * ldk + h * D : NULL, *dvj = dv ? dv + (b * Lk + j0) * ldv + h * D : NULL;
        for (int64_t i0 = 0; i0 < Lq; i0 += pl->qb) {
            const int64_t nq = Lq - i0 < pl->qb ? Lq - i0 : pl->qb;
            const size_t ai = ld_gemm_packed_a_bytes(&pl->ps, i0, D), bi = ld_gemm_packed_b_bytes(&pl->pt, i0, 1);
            ld_gemm_packed_run_in(&pl->ps, nq, nk, D, QA + ai, apan, KT, kpan, S, nk, 0);
            for (int64_t i = 0; i < nq; i++) { /* P = exp(scale S - lse), the exp over the whole block */
                float *p = S + i * nk;
                const float l = lse_bh[i0 + i];
                #pragma omp simd
                for (int64_t j = 0; j < nk; j++) p[j] = scale * p[j] - l;
            }
            ops_act_serial(OPS_ACT_EXP, S, S, nq * nk);
            if (dvj) {
                const ld_mat Pt = ld_mat_f32(S, 1, nk);
                ld_gemm_pack_a(&pl->pt, PA, &Pt, nk, nq, tile);
                ld_gemm_packed_run_in(&pl->pt, nk, D, nq, PA, ld_gemm_packed_a_bytes(&pl->pt, 1, nq), OB + bi, bpan,
                                      dvj, ldv, 1);
            }
            if (!need_dp) continue;
            ld_gemm_packed_run_in(&pl->ps, nq, nk, D, OA + ai, apan, VT, kpan, dP, nk, 0);
            for (int64_t i = 0; i < nq; i++) { /* dS = P (dP - rowdot), scaled */
                float *d = dP + i * nk;
                const float *p = S + i * nk, r = rd[i0 + i];
                #pragma omp simd
                for (int64_t j = 0; j < nk; j++) d[j] = scale * p[j] * (d[j] - r);
            }
            if (dkj) {
                const ld_mat dSt = ld_mat_f32(dP, 1, nk);
                ld_gemm_pack_a(&pl->pt, SA, &dSt, nk, nq, tile);
                ld_gemm_packed_run_in(&pl->pt, nk, D, nq, SA, ld_gemm_packed_a_bytes(&pl->pt, 1, nq), QB + bi, bpan,
                                      dkj, ldk, 1);
            }
            if (dqo) {
                const ld_mat dS = ld_mat_f32(dP, nk, 1);
                ld_gemm_pack_a(&pl->pq, SQ, &dS, nq, nk, tile);
                ld_gemm_packed_run(&pl->pq, nq, D, nk, SQ, KJ, dqo + i0 * lddq, lddq, 1);
            }
        }
    }
}

int ld_attention_backward(const float *dout, int64_t ldo, const float *out, const float *lse, const float *q,
                          int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H,
                          int64_t Lq, int64_t Lk, int64_t D, float scale, float *dq, float *dk, float *dv) {
    if ((!dq && !dk && !dv) || B < 1 || H < 1 || Lq < 1 || Lk < 1) return 1; /* nothing to add */
    bwd_plan pl;
    bwd_plan_for(&pl, Lq, Lk, D);
    /* work items: groups of keys of one head; their number depends on Lk alone, not on the thread count */
    int64_t groups = (Lk + BWD_GROUP - 1) / BWD_GROUP;
    if (groups > BWD_GROUPS) groups = BWD_GROUPS;
    const int64_t gsize = ((Lk + groups - 1) / groups + BWD_KEYS - 1) / BWD_KEYS * BWD_KEYS, items = B * H * groups;
    /* rowdot[(b*H + h)*Lq + i] = dout_i . out_i over the head's D columns */
    float *rowdot = grad_scratch_get(sizeof(float) * (size_t)(B * H * Lq));
    float *part = dq && groups > 1 ? grad_scratch_get(sizeof(float) * (size_t)(B * H * (groups - 1) * Lq * D)) : NULL;
    char *ws = grad_scratch_get(pl.per * (size_t)omp_get_max_threads());
    if (!rowdot || !ws || (dq && groups > 1 && !part)) {
        grad_scratch_put(rowdot);
        grad_scratch_put(part);
        grad_scratch_put(ws);
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
    if (part) memset(part, 0, sizeof(float) * (size_t)(B * H * (groups - 1) * Lq * D));

    const ld_precision prec = ld_gemm_get_precision(); /* per thread: handed to the workers */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        ld_gemm_set_precision(prec);
        const int64_t bh = it / groups, g = it % groups, b = bh / H, h = bh % H;
        const int64_t g0 = g * gsize, g1 = Lk - g0 < gsize ? Lk : g0 + gsize;
        /* the first group sums onto dq itself, the others into their partial sums (added below in order) */
        float *dqo = !dq ? NULL : g == 0 ? dq + b * Lq * ldq + h * D : part + ((bh * (groups - 1)) + g - 1) * Lq * D;
        bwd_item(&pl, ws + pl.per * (size_t)omp_get_thread_num(), dout, ldo, lse + bh * Lq, rowdot + bh * Lq, q, ldq,
                 k, ldk, v, ldv, b, h, g0, g1, Lq, Lk, D, scale, dqo, g == 0 ? ldq : D, dk, dv);
    }
    if (part) {
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < B * H * Lq; r++) {
            const int64_t bh = r / Lq, b = bh / H, h = bh % H, i = r % Lq;
            float *d = dq + (b * Lq + i) * ldq + h * D;
            for (int64_t g = 1; g < groups; g++) {
                const float *p = part + ((bh * (groups - 1)) + g - 1) * Lq * D + i * D;
                for (int64_t e = 0; e < D; e++) d[e] += p[e];
            }
        }
    }
    grad_scratch_put(rowdot);
    grad_scratch_put(part);
    grad_scratch_put(ws);
    return 1;
}
