/* Attention on the GEMM micro-kernels (see gemm_attention.h), flash-attention
 * style with an online softmax, computed transposed so that nothing but the
 * inputs is ever packed.
 *   0. K (MR-key A panels of depth D) and V^T (MR-row A panels, depth one
 *      key block) of whole heads are packed once per call into a buffer the
 *      threads share, a group of heads of up to ATT_PACK_BYTES at a time
 *      (key blocks split between the threads, then a barrier). A head over
 *      ATT_PACK_HEAD_MAX (the VAE's 16384 keys x 512) packs each key block per
 *      query block instead, in the thread's scratch, with query blocks of
 *      ATT_BQ_UNPACKED*NR instead of 4*NR queries.
 * Then for one work item (batch b, head h, run of query blocks) the thread,
 * per query block,
 *   1. packs (Q*scale)^T as NR-query B panels of depth D;
 *   2. for each block of BK keys and each NR-query column block in turn
 *      (so that its BK x NR panel of S^T stays in L1 from the first product
 *      to the second): computes S^T = K (Q scale)^T with the micro-kernel
 *      (its stack entry where it has one: all key tiles in one call),
 *      adds the mask / causal / padding terms, runs the softmax step down
 *      each query column (vectorized across queries, ld_gemm_softmax_fn):
 *          mn = max(m, max_k s), p_k = exp(s_k - mn), alpha = exp(m - mn),
 *          l = l*alpha + sum_k p_k,  O^T = O^T * alpha,  m = mn
 *      (the O^T rescale is skipped when every alpha is 1); P^T is then
 *      already a B panel of depth nk, so O^T += V^T P^T runs on the packed
 *      V^T as it is;
 *   3. writes out = (O^T)^T / l (zeros for a query that sees no key).
 * During the last key block it prefetches the rows of out and of the next
 * query block's Q, and pack_kv prefetches K and V rows ahead: the heads are
 * strided column blocks.
 * With LD_PRECISION_BF16 (and a CPU with bf16 dot products) both products
 * run on the bf16 kernel: Q*scale, K, V and P are rounded to bf16 pairs when
 * packed, the scores, softmax and O accumulate in f32. The softmax step then
 * writes P^T straight as bf16 pairs (ld_gemm_softmax_pairs_fn), on AVX-512
 * with an exp of relative error below 4e-6 (the bf16 rounding of P is 2^-9).
 * Results depend on the shapes only, never on the thread count: each query's
 * keys are summed in the same blocks and order whoever computes them.
 * Per-thread scratch: about BK*(1.5*W + D + Dp) (no D + Dp when the heads
 * are packed in the shared buffer) + BQ*(D + Dp + 2) + W*max(D, BK) floats.
 */
#include "tensor/gemm_attention.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_kernels.h"

#define ATT_BK 256 /* keys per block (rounded up to a multiple of MR) */

static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static void softmax_portable(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp) {
    for (int q = 0; q < NR; q++) {
        float mx = -INFINITY;
        for (int64_t k = 0; k < nk; k++) mx = st[k * NR + q] > mx ? st[k * NR + q] : mx;
        const float mn = m[q] > mx ? m[q] : mx, ms = mn == -INFINITY ? 0.0f : mn;
        float sum = 0.0f;
        for (int64_t k = 0; k < nk; k++) {
            float e = expf(st[k * NR + q] - ms);
            st[k * NR + q] = e;
            sum += e;
        }
        const float alpha = expf(m[q] - ms);
        l[q] = l[q] * alpha + sum;
        m[q] = mn;
        if (alpha != 1.0f) /* else O^T stays as it is */
            for (int64_t d = 0; d < dp; d++) ot[d * NR + q] *= alpha;
    }
}

/* Packed operands are f32 for f32 kernels and bf16 pairs for bf16 kernels
 * (LD_PRECISION_BF16); their depth is rounded up to even for the pairs, or
 * to the kernel's kstep (AMX: 32), the rounding zero-padded. */
static inline int64_t esize(const ld_gemm_kernel *kr) { return kr->bf16 ? 2 : 4; }
static inline int64_t depth(const ld_gemm_kernel *kr, int64_t k) { return ld_gemm_depth(kr, k); }

/* The pad of a bf16-pair B panel of NR columns from depth k (rounded up to
 * even) to depth(kr, k), zeroed (A panels are padded by their packer). */
static void pad_b_panel(const ld_gemm_kernel *kr, uint16_t *panel, int64_t k, int NR) {
    const int64_t dk = depth(kr, k), done = rup(k, 2);
    if (kr->bf16 && dk > done) memset(panel + done * NR, 0, sizeof(uint16_t) * (size_t)((dk - done) * NR));
}

/* np tiles of MR rows against one B panel (A panels astride bytes apart, C
 * tiles contiguous at ld NR): the kernel's stack entry, else one micro call
 * a tile. */
static void run_stack(const ld_gemm_kernel *kr, int64_t np, int64_t kc, const char *a, int64_t astride,
                      const void *b, float *c, int load) {
    if (kr->stack) {
        kr->stack(np, kc, a, astride, b, c, load);
        return;
    }
    for (int64_t t = 0; t < np; t++) kr->micro(kc, a + t * astride, b, c + t * kr->mr * kr->nr, kr->nr, load);
}

typedef struct {
    char *qp, *kp, *vp; /* packed (Q scale)^T, K and V^T */
    float *st, *ot, *m, *l, *tmp, *tile;
    uint16_t *pp; /* P^T as bf16 pairs (bf16 kernels) */
} att_scratch;

/* n floats from *p, rounded up to a 64-byte boundary first. */
static float *take(float **p, int64_t n) {
    float *r = (float *)(((uintptr_t)*p + 63) & ~(uintptr_t)63);
    *p = r + n;
    return r;
}

/* Per-thread scratch; LK = keys whose K and V^T the thread packs itself
 * (one block, or 0 when the heads' K and V^T are packed into shared
 * buffers). */
static size_t scratch_floats(int64_t BQ, int64_t BK, int64_t LK, int64_t D, int64_t Dp, int64_t W) {
    const int64_t DK = D > BK ? D : BK;
    return (size_t)(BQ * D + LK * D + BK * W + BK * W / 2 + LK * Dp + BQ * Dp + 2 * BQ + DK + DK * W + 10 * 16);
}

static att_scratch carve(float *base, int64_t BQ, int64_t BK, int64_t LK, int64_t D, int64_t Dp, int64_t W) {
    att_scratch a;
    float *p = base;
    const int64_t DK = D > BK ? D : BK;
    a.qp = (char *)take(&p, BQ * D);
    a.kp = (char *)take(&p, LK * D);
    a.st = take(&p, BK * W);
    a.pp = (uint16_t *)take(&p, BK * W / 2);
    a.vp = (char *)take(&p, LK * Dp);
    a.ot = take(&p, BQ * Dp);
    a.m = take(&p, BQ);
    a.l = take(&p, BQ);
    a.tmp = take(&p, DK);
    a.tile = take(&p, DK * W);
    return a;
}

/* Mask, causal and key-padding terms on one S^T panel (keys j0..j0+nk,
 * queries i0..i0+nc, nc <= NR). */
static void extra_terms(const ld_attn_params *p, int64_t b, int64_t Lk, int64_t i0, int64_t nc, int64_t j0,
                        int64_t nk, int NR, float *st) {
    for (int64_t k = 0; k < nk; k++) {
        float *row = st + k * NR;
        const int64_t j = j0 + k;
        if (p->key_keep && !p->key_keep[b * Lk + j]) {
            for (int q = 0; q < NR; q++) row[q] = -INFINITY;
            continue;
        }
        if (p->mask) {
            const float *mk = p->mask + b * p->mask_b + i0 * p->mask_q + j;
            for (int64_t q = 0; q < nc; q++) row[q] += mk[q * p->mask_q];
        }
        if (p->causal)
            for (int64_t q = 0; q < nc; q++)
                if (j > i0 + q) row[q] = -INFINITY;
    }
}

/* Rows of D floats (stride ld) into the cache ahead of use: the heads of
 * q/k/v/out are strided column blocks whose rows the hardware prefetchers do
 * not fetch early enough. */
static void prefetch_rows(const float *base, int64_t ld, int64_t n, int64_t D, int write) {
    for (int64_t r = 0; r < n; r++) {
        const float *row = base + r * ld;
        for (int64_t d = 0; d < D; d += 16) {
            if (write)
                __builtin_prefetch(row + d, 1, 3);
            else
                __builtin_prefetch(row + d, 0, 3);
        }
        if (write)
            __builtin_prefetch(row + D - 1, 1, 3);
        else
            __builtin_prefetch(row + D - 1, 0, 3);
    }
}

/* What every work item of one call shares. */
typedef struct {
    const ld_gemm_kernel *kr;
    const ld_attn_params *p;
    int64_t ldq, ldk, ldv, ldo, Lq, Lk, D, Dp, BQ, BK;
    int packed; /* K and V^T of whole heads are packed once, shared by the threads */
} att_job;

/* keys ahead of the one being packed whose rows are prefetched */
#define ATT_PREFETCH_KEYS 32

/* Keys [j0, j0+nk) of k, v (< jlim exist): K as MR-key panels of depth D
 * into kp, V^T as MR-row panels of depth nk into vp (panel d0 at element
 * d0*depth(nk)). */
static void pack_kv(const att_job *J, const float *k, const float *v, int64_t j0, int64_t nk, int64_t jlim, char *kp,
                    char *vp, float *tile, float *tmp) {
    const ld_gemm_kernel *kr = J->kr;
    const int MR = kr->mr;
    const int64_t es = esize(kr), dD = depth(kr, J->D), dk = depth(kr, nk);
    if (j0 == 0) {
        const int64_t n = jlim < ATT_PREFETCH_KEYS ? jlim : ATT_PREFETCH_KEYS;
        prefetch_rows(k, J->ldk, n, J->D, 0);
        prefetch_rows(v, J->ldv, n, J->D, 0);
    }
    for (int64_t r = 0; r < rup(nk, MR); r += MR) {
        const int64_t jp = j0 + r + ATT_PREFETCH_KEYS, np = jlim - jp < MR ? jlim - jp : MR;
        if (np > 0) {
            prefetch_rows(k + jp * J->ldk, J->ldk, np, J->D, 0);
            prefetch_rows(v + jp * J->ldv, J->ldv, np, J->D, 0);
        }
        ld_gemm_pack_a_panels(kr, 0, kp + r * dD * es, (size_t)(MR * dD * es), LD_F32, k, (j0 + r) * J->ldk, 1,
                              J->ldk, J->D, nk - r < MR ? nk - r : MR, tile, tmp);
    }
    ld_gemm_pack_a_panels(kr, 0, vp, (size_t)(MR * dk * es), LD_F32, v, j0 * J->ldv, J->ldv, 1, nk, J->D, tile, tmp);
}

/* One block of nq <= BQ queries starting at i0 of batch b (q, out: this
 * block's rows; k, v: the head's). With J->packed, w->kp and w->vp already
 * hold K and V^T of every key block (block j0 at element j0*D and j0*Dp,
 * packed with depth min(BK, Lk - j0) even where causal masking uses fewer
 * keys); else each block is packed here. Each NR-query column block goes
 * through all of step 2 before the next one, so its S^T panel (BK x NR) is
 * still in L1 for the softmax and the second product. During the last key
 * block the rows of out and the nq_next rows of q_next (the next block of
 * the work item) are prefetched. */
static void attend_block(const att_job *J, float *out, const float *q, const float *k, const float *v, int64_t b,
                         int64_t i0, int64_t nq, const float *q_next, int64_t nq_next, att_scratch *w) {
    const ld_gemm_kernel *kr = J->kr;
    const ld_attn_params *p = J->p;
    const int MR = kr->mr, NR = kr->nr;
    const int64_t D = J->D, Dp = J->Dp, BK = J->BK, Lk = J->Lk;
    const int64_t nqp = rup(nq, NR), es = esize(kr), dD = depth(kr, D);
    ld_gemm_softmax_fn softmax = kr->softmax ? kr->softmax : softmax_portable;
    /* 1. (Q * scale)^T, NR-query panels of depth D */
    const float scale = p->scale; /* a local: t might alias *p for all the compiler knows */
    for (int64_t c = 0; c < nq; c += NR) {
        float *t = kr->bf16 ? w->tile : (float *)(w->qp + c * dD * es);
        ld_gemm_gather(kr, LD_F32, q, c * J->ldq, 1, J->ldq, D, nq - c < NR ? nq - c : NR, NR, t, w->tmp);
        #pragma omp simd
        for (int64_t i = 0; i < D * NR; i++) t[i] *= scale;
        if (kr->bf16) ld_gemm_finish_panel(kr, 0, t, D, NR, w->qp + c * dD * es);
    }
    for (int64_t i = 0; i < nqp; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    memset(w->ot, 0, sizeof(float) * (size_t)(nqp * Dp));
    int64_t jend = Lk;
    if (p->causal && i0 + nq < jend) jend = i0 + nq; /* later keys are masked for every query here */
    const int64_t steps = nqp / NR;
    for (int64_t j0 = 0; j0 < jend; j0 += BK) {
        const int64_t nk = jend - j0 < BK ? jend - j0 : BK, nkp = rup(nk, MR);
        const char *kp = J->packed ? w->kp + j0 * dD * es : w->kp, *vp = J->packed ? w->vp + j0 * Dp * es : w->vp;
        const int64_t vdepth = depth(kr, J->packed ? (Lk - j0 < BK ? Lk - j0 : BK) : nk); /* V^T panel depth */
        if (!J->packed) pack_kv(J, k, v, j0, nk, jend, w->kp, w->vp, w->tile, w->tmp);
        for (int64_t c = 0; c < nqp; c += NR) {
            if (j0 + BK >= jend) {
                const int64_t s = c / NR, o0 = s * nq / steps, n0 = s * nq_next / steps;
                prefetch_rows(out + o0 * J->ldo, J->ldo, (s + 1) * nq / steps - o0, D, 1);
                if (q_next) prefetch_rows(q_next + n0 * J->ldq, J->ldq, (s + 1) * nq_next / steps - n0, D, 0);
            }
            /* 2a. S^T = K (Q scale)^T for this column block */
            run_stack(kr, nkp / MR, D, kp, MR * dD * es, w->qp + c * dD * es, w->st, 0);
            /* 2b. extra terms, then the softmax step down each query column;
             * bf16 kernels get P^T straight as bf16 pairs (an odd nk pads
             * them with zeros), f32 ones use it in place */
            if (p->mask || p->causal || p->key_keep)
                extra_terms(p, b, Lk, i0 + c, nq - c < NR ? nq - c : NR, j0, nk, NR, w->st);
            const void *pt = w->st;
            if (kr->bf16) {
                if (kr->softmax_pairs) {
                    kr->softmax_pairs(w->st, nk, NR, w->m + c, w->l + c, w->ot + c * Dp, Dp, w->pp);
                } else {
                    softmax(w->st, nk, NR, w->m + c, w->l + c, w->ot + c * Dp, Dp);
                    ld_gemm_finish_panel(kr, 0, w->st, nk, NR, w->pp);
                }
                pad_b_panel(kr, w->pp, nk, NR);
                pt = w->pp;
            } else {
                softmax(w->st, nk, NR, w->m + c, w->l + c, w->ot + c * Dp, Dp);
            }
            /* 2c. O^T += V^T P^T (over the padded depth: the pad is zeros) */
            run_stack(kr, Dp / MR, depth(kr, nk), vp, MR * vdepth * es, pt, w->ot + c * Dp, 1);
        }
    }
    /* 3. out = O / l: each column block of O^T turned into query rows in
     * w->tile by the kernel's transposing gather, then scaled row by row */
    for (int64_t c = 0; c < nq; c += NR) {
        const int64_t nc = nq - c < NR ? nq - c : NR;
        ld_gemm_gather(kr, LD_F32, w->ot + c * Dp, 0, 1, NR, nc, D, (int)D, w->tile, w->tmp);
        for (int64_t i = 0; i < nc; i++) {
            float *dst = out + (c + i) * J->ldo;
            const float *o = w->tile + i * D;
            if (w->l[c + i] > 0.0f) {
                const float inv = 1.0f / w->l[c + i];
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) dst[d] = o[d] * inv;
            } else {
                memset(dst, 0, sizeof(float) * (size_t)D);
            }
        }
    }
}

/* Heads whose packed K and V^T take up to ATT_PACK_HEAD_MAX bytes are
 * packed whole, in groups of up to ATT_PACK_BYTES (but at least one head),
 * small enough that the group is still in the caches while the threads
 * read it (16 MB groups ran the 10 heads of 4096 keys 12-16 % slower than
 * one head at a time). One head of 4096 keys and D = 64 takes 2 MB in f32.
 * Larger heads pack one key block per query block instead: a whole packed
 * VAE head (16384 keys x 512, 64 MB) would be streamed from memory by every
 * query block, 2x slower. */
#define ATT_PACK_BYTES ((int64_t)2 << 20)
#define ATT_PACK_HEAD_MAX ((int64_t)16 << 20)
/* NR-query column blocks per query block when each query block packs every
 * key block itself (a head over ATT_PACK_HEAD_MAX): twice the usual 4,
 * which halves the packing per query; 16 gains little more. */
#define ATT_BQ_UNPACKED 8
/* Work items per thread and group of heads. With 4, a head of 4096 queries
 * went in runs of 3 query blocks and the threads waited for each other at
 * the end of every head: 12 (runs of one block) ran the self-attention at
 * 64^2 (KOALA, DiffNeXt) 4-8 % faster in f32 and 3-10 % in bf16, the
 * others within the noise (bench_attention, Zen 5-class, 2 threads). */
#define ATT_ITEMS_PER_THREAD 12

int ld_gemm_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                      const ld_attn_params *p) {
    if (B <= 0 || H <= 0 || Lq <= 0 || D <= 0) return 1;
    if (Lk < 0) Lk = 0;
    /* the tile that pads O^T (D rows x query columns) least; bf16 products
     * with LD_PRECISION_BF16 where the CPU has them (else f32) */
    const ld_gemm_kernel *kr = NULL;
    if (ld_gemm_get_precision() == LD_PRECISION_BF16) kr = ld_gemm_kernel_bf16_for(D, Lq, D);
    if (!kr) kr = ld_gemm_kernel_f32_for(D, Lq);
    const int64_t W = kr->mr > kr->nr ? kr->mr : kr->nr;
    const int64_t Dp = rup(D, kr->mr), BH = B * H;
    int64_t BK = rup(ATT_BK, kr->mr);
    if (kr->bf16 && BK % 2) BK += kr->mr; /* even, so a block's pair depth stays within it */
    const int64_t LKall = rup(Lk > 0 ? Lk : 1, BK), nkb = LKall / BK;
    /* a head's packed K (MR-key panels of depth D) and V^T (block j0 at j0*Dp) */
    const int64_t kbytes = rup(LKall * depth(kr, D) * esize(kr), 64), hbytes = kbytes + rup(LKall * Dp * esize(kr), 64);
    int64_t G = ATT_PACK_BYTES / hbytes; /* heads packed at once; 0: one block per query block */
    if (G > BH) G = BH;
    if (G < 1 && hbytes <= ATT_PACK_HEAD_MAX) G = 1;
    /* queries per block; more where each block packs every key block itself */
    const int64_t BQ = (G > 0 ? 4 : ATT_BQ_UNPACKED) * kr->nr, nqb = (Lq + BQ - 1) / BQ;
    const att_job J = {.kr = kr, .p = p, .ldq = ldq, .ldk = ldk, .ldv = ldv, .ldo = ldo, .Lq = Lq, .Lk = Lk, .D = D,
                       .Dp = Dp, .BQ = BQ, .BK = BK, .packed = G > 0};
    const int64_t group = J.packed ? G : BH;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    /* work items: (batch, head, run of query blocks), ATT_ITEMS_PER_THREAD
     * of them per thread in each group, so that the threads finish a group
     * together */
    int64_t chunks = (ATT_ITEMS_PER_THREAD * nt + group - 1) / group;
    if (chunks > nqb) chunks = nqb;
    if (chunks < 1) chunks = 1;
    const int64_t per_chunk = (nqb + chunks - 1) / chunks;
    chunks = (nqb + per_chunk - 1) / per_chunk;
    if (group * chunks < nt) nt = (int)(group * chunks);
    const size_t per = scratch_floats(BQ, BK, J.packed ? 0 : BK, D, Dp, W);
    float *scratch = aligned_alloc(64, (size_t)rup((int64_t)(per * (size_t)nt * sizeof(float)), 64));
    char *shared = J.packed ? aligned_alloc(64, (size_t)(G * hbytes)) : NULL;
    if (!scratch || (J.packed && !shared)) {
        free(scratch);
        free(shared);
        return 0;
    }
    #pragma omp parallel num_threads(nt)
    {
        att_scratch w = carve(scratch + per * (size_t)omp_get_thread_num(), BQ, BK, J.packed ? 0 : BK, D, Dp, W);
        for (int64_t g0 = 0; g0 < BH; g0 += group) {
            const int64_t ng = BH - g0 < group ? BH - g0 : group;
            if (J.packed) {
                /* every key block of the group's heads, once, into the shared buffer */
                #pragma omp for schedule(dynamic)
                for (int64_t t = 0; t < ng * nkb; t++) {
                    const int64_t bh = g0 + t / nkb, b = bh / H, h = bh % H, j0 = t % nkb * BK;
                    if (j0 >= Lk) continue;
                    char *kp = shared + t / nkb * hbytes;
                    pack_kv(&J, k + b * Lk * ldk + h * D, v + b * Lk * ldv + h * D, j0, Lk - j0 < BK ? Lk - j0 : BK,
                            Lk, kp + j0 * depth(kr, D) * esize(kr), kp + kbytes + j0 * Dp * esize(kr), w.tile, w.tmp);
                }
            }
            #pragma omp for schedule(dynamic)
            for (int64_t it = 0; it < ng * chunks; it++) {
                const int64_t bh = g0 + it / chunks, b = bh / H, h = bh % H, qb0 = (it % chunks) * per_chunk;
                const int64_t qb1 = qb0 + per_chunk < nqb ? qb0 + per_chunk : nqb;
                const float *qh = q + b * Lq * ldq + h * D, *kh = k + b * Lk * ldk + h * D, *vh = v + b * Lk * ldv + h * D;
                float *oh = out + b * Lq * ldo + h * D;
                if (J.packed) {
                    w.kp = shared + it / chunks * hbytes;
                    w.vp = w.kp + kbytes;
                }
                for (int64_t qb = qb0; qb < qb1; qb++) {
                    const int64_t i0 = qb * BQ, nq = Lq - i0 < BQ ? Lq - i0 : BQ;
                    const int64_t nq_next = qb + 1 < qb1 ? (Lq - i0 - BQ < BQ ? Lq - i0 - BQ : BQ) : 0;
                    attend_block(&J, oh + i0 * ldo, qh + i0 * ldq, kh, vh, b, i0, nq,
                                 nq_next ? qh + (i0 + BQ) * ldq : NULL, nq_next, &w);
                }
            }
        }
    }
    free(shared);
    free(scratch);
    return 1;
}
