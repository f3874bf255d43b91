/* Attention for training (see grad_ops.h): a forward that also saves each
 * query row's log-sum-exp, and the blocked backward that rebuilds the
 * probabilities of one block of rows from it (flash-attention style), so the
 * Lq x Lk score matrix is never held. Each work item (batch, head, block) is
 * done by one thread with ld_gemm (single-threaded inside the parallel
 * region) in a fixed order: results do not depend on the thread count.
 *
 * With S = scale * q k^T, P = exp(S - lse), out = P v:
 *     dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(dout * out)),
 *     dq = scale * dS k,  dk = scale * dS^T q. */
#include "train/grad_ops.h"

#include "tensor/ops_internal.h"
#include "train/grad_scratch.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define ROWS 256 /* query (or key) rows per work item: long enough to amortize packing the other operand */

static float *thread_scratch(int64_t per_thread, int *nthreads) {
    *nthreads = omp_get_max_threads();
    return grad_scratch_get(sizeof(float) * (size_t)per_thread * (size_t)*nthreads);
}

int ld_attention_train_forward(float *out, int64_t ldo, float *lse, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq,
                               int64_t Lk, int64_t D, float scale) {
    const int64_t nblk = (Lq + ROWS - 1) / ROWS, items = B * H * nblk;
    int nt;
    float *scratch = thread_scratch(ROWS * Lk, &nt);
    if (!scratch) return 0;
    const ld_precision prec = ld_gemm_get_precision(); /* per thread: handed to the workers */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        ld_gemm_set_precision(prec);
        const int64_t b = it / (H * nblk), h = it / nblk % H, i0 = it % nblk * ROWS;
        const int64_t rows = Lq - i0 < ROWS ? Lq - i0 : ROWS;
        float *S = scratch + (size_t)omp_get_thread_num() * ROWS * Lk;
        ld_mat A = ld_mat_f32(q + (b * Lq + i0) * ldq + h * D, ldq, 1);
        ld_mat Kt = ld_mat_f32(k + b * Lk * ldk + h * D, 1, ldk);
        ld_gemm(rows, Lk, D, &A, &Kt, S, Lk, 0.0f, NULL, NULL);
        for (int64_t r = 0; r < rows; r++) {
            float *s = S + r * Lk, m = -INFINITY;
            for (int64_t j = 0; j < Lk; j++) {
                s[j] *= scale;
                if (s[j] > m) m = s[j];
            }
            for (int64_t j = 0; j < Lk; j++) s[j] -= m;
            ops_act_serial(OPS_ACT_EXP, s, s, Lk);
            double sum = 0;
            for (int64_t j = 0; j < Lk; j++) sum += s[j];
            const float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < Lk; j++) s[j] *= inv;
            lse[(b * H + h) * Lq + i0 + r] = m + (float)log(sum);
        }
        ld_mat P = ld_mat_f32(S, Lk, 1), V = ld_mat_f32(v + b * Lk * ldv + h * D, ldv, 1);
        ld_gemm(rows, D, Lk, &P, &V, out + (b * Lq + i0) * ldo + h * D, ldo, 0.0f, NULL, NULL);
    }
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
    /* pass 1: dk and dv, one block of keys against all queries */
    if (dk || dv) {
        const int64_t nblk = (Lk + ROWS - 1) / ROWS, items = B * H * nblk;
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            ld_gemm_set_precision(prec);
            const int64_t b = it / (H * nblk), h = it / nblk % H, j0 = it % nblk * ROWS;
            const int64_t rows = Lk - j0 < ROWS ? Lk - j0 : ROWS;
            float *Pt = scratch + (size_t)omp_get_thread_num() * 2 * ROWS * span, *dPt = Pt + ROWS * Lq;
            const float *lse_bh = lse + (b * H + h) * Lq, *rd = rowdot + (b * H + h) * Lq;
            ld_mat Kb = ld_mat_f32(k + (b * Lk + j0) * ldk + h * D, ldk, 1);
            ld_mat Qt = ld_mat_f32(q + b * Lq * ldq + h * D, 1, ldq);
            ld_gemm(rows, Lq, D, &Kb, &Qt, Pt, Lq, 0.0f, NULL, NULL);
            for (int64_t r = 0; r < rows; r++) {
                float *p = Pt + r * Lq;
                for (int64_t i = 0; i < Lq; i++) p[i] = scale * p[i] - lse_bh[i];
                ops_act_serial(OPS_ACT_EXP, p, p, Lq);
            }
            ld_mat P = ld_mat_f32(Pt, Lq, 1), dO = ld_mat_f32(dout + b * Lq * ldo + h * D, ldo, 1);
            if (dv) ld_gemm(rows, D, Lq, &P, &dO, dv + (b * Lk + j0) * ldv + h * D, ldv, 1.0f, NULL, NULL);
            if (!dk) continue;
            ld_mat Vb = ld_mat_f32(v + (b * Lk + j0) * ldv + h * D, ldv, 1);
            ld_mat dOt = ld_mat_f32(dout + b * Lq * ldo + h * D, 1, ldo);
            ld_gemm(rows, Lq, D, &Vb, &dOt, dPt, Lq, 0.0f, NULL, NULL);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < Lq; i++)
                    dPt[r * Lq + i] = scale * Pt[r * Lq + i] * (dPt[r * Lq + i] - rd[i]);
            ld_mat dS = ld_mat_f32(dPt, Lq, 1), Q = ld_mat_f32(q + b * Lq * ldq + h * D, ldq, 1);
            ld_gemm(rows, D, Lq, &dS, &Q, dk + (b * Lk + j0) * ldk + h * D, ldk, 1.0f, NULL, NULL);
        }
    }

    /* pass 2: dq, one block of queries against all keys */
    if (dq) {
        const int64_t nblk = (Lq + ROWS - 1) / ROWS, items = B * H * nblk;
        #pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            ld_gemm_set_precision(prec);
            const int64_t b = it / (H * nblk), h = it / nblk % H, i0 = it % nblk * ROWS;
            const int64_t rows = Lq - i0 < ROWS ? Lq - i0 : ROWS;
            float *S = scratch + (size_t)omp_get_thread_num() * 2 * ROWS * span, *dP = S + ROWS * Lk;
            const float *lse_bh = lse + (b * H + h) * Lq + i0, *rd = rowdot + (b * H + h) * Lq + i0;
            ld_mat Qb = ld_mat_f32(q + (b * Lq + i0) * ldq + h * D, ldq, 1);
            ld_mat Kt = ld_mat_f32(k + b * Lk * ldk + h * D, 1, ldk);
            ld_gemm(rows, Lk, D, &Qb, &Kt, S, Lk, 0.0f, NULL, NULL);
            ld_mat dOb = ld_mat_f32(dout + (b * Lq + i0) * ldo + h * D, ldo, 1);
            ld_mat Vt = ld_mat_f32(v + b * Lk * ldv + h * D, 1, ldv);
            ld_gemm(rows, Lk, D, &dOb, &Vt, dP, Lk, 0.0f, NULL, NULL);
            for (int64_t r = 0; r < rows; r++) {
                float *p = S + r * Lk;
                for (int64_t j = 0; j < Lk; j++) p[j] = scale * p[j] - lse_bh[r];
                ops_act_serial(OPS_ACT_EXP, p, p, Lk);
                for (int64_t j = 0; j < Lk; j++) dP[r * Lk + j] = scale * p[j] * (dP[r * Lk + j] - rd[r]);
            }
            ld_mat dS = ld_mat_f32(dP, Lk, 1), K = ld_mat_f32(k + b * Lk * ldk + h * D, ldk, 1);
            ld_gemm(rows, D, Lk, &dS, &K, dq + (b * Lq + i0) * ldq + h * D, ldq, 1.0f, NULL, NULL);
        }
    }
    grad_scratch_put(rowdot);
    grad_scratch_put(scratch);
    return 1;
}
