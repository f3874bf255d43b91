/* Multi-head scaled-dot-product attention (contract in ops.h). The work is
 * done by the flash-attention kernel on the GEMM micro-kernels
 * (gemm_attention.h): blocked, online softmax, one score block per thread,
 * results independent of the thread count. */
#include "tensor/gemm_attention.h"
#include "tensor/ops_internal.h"
#include "base/flops.h"

#include <string.h>

void ld_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                  int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, const ld_attn_params *p) {
    if (B <= 0 || H <= 0 || Lq <= 0 || D <= 0) return;
    LD_FLOPS_COUNT(LD_FLOPS_ATTENTION, Lk > 0 ? 4 * B * H * Lq * Lk * D : 0, B * H, Lq, Lk, D);
    if (ld_gemm_attention(out, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, p)) return;
    /* Its scratch (per thread, and the packed K and V of a few heads) could not be allocated: leave a defined result. */
    ld_log_error("attention: cannot allocate the kernel's scratch memory; output set to zero");
    for (int64_t r = 0; r < B * Lq; r++) memset(out + r * ldo, 0, (size_t)(H * D) * sizeof(float));
}

#define ATT_SLICE_FLOPS ((int64_t)1 << 32)
#define ATT_SLICE_ROUND 32
/* rows of a head per slice at least, by default: a head this large packs
 * its keys once per query block of gemm_attention.c (384 rows with the
 * AVX-512 8x48 tile), which a slice of fewer rows would cut short; 4 such
 * blocks also split evenly between 2 or 4 threads */
#define ATT_SLICE_MIN_ROWS 1536

/* Slices are whole heads (all query rows of as many heads of one batch entry
 * as fit in slice_flops), so that each head's K and V are packed once; only
 * a head larger than a slice is cut into runs of query rows (by default at
 * least ATT_SLICE_MIN_ROWS: 1536 rows of the VAE's 16384 keys x 512 are 52
 * GFLOP, about 0.25 s on one Zen 5 core in bf16). */
ld_status ld_attention_checked(ld_ctx *ctx, const char *where, int64_t slice_flops, float *out, int64_t ldo,
                               const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                               int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, const ld_attn_params *p) {
    LD_TRY(ld_check_cancel(ctx, where));
    if (B <= 0 || H <= 0 || Lq <= 0 || D <= 0) return LD_OK;
    int64_t min_rows = ATT_SLICE_ROUND;
    if (slice_flops <= 0) {
        slice_flops = ATT_SLICE_FLOPS;
        min_rows = ATT_SLICE_MIN_ROWS;
    }
    const int64_t per_row = 4 * (Lk > 0 ? Lk : 1) * D, per_head = per_row * Lq;
    if (p->causal || per_head * H * B <= slice_flops) {
        ld_attention(out, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, p);
        return ld_check_cancel(ctx, where);
    }
    int64_t heads = slice_flops / per_head, rows = Lq;
    if (heads < 1) {
        heads = 1;
        rows = (slice_flops / per_row + ATT_SLICE_ROUND - 1) / ATT_SLICE_ROUND * ATT_SLICE_ROUND;
        if (rows < min_rows) rows = min_rows;
    }
    /* one batch entry, run of heads and run of query rows at a time; a per-query mask moves with the rows. A
     * remainder shorter than min_rows joins the run before it: on its own it packed the head's K and V again for
     * a few rows (WuerstchenDiffNeXt at 64²: 4032 + 64 rows a head, the 64-row calls at 77 GFLOP/s in f32) */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h0 = 0; h0 < H; h0 += heads)
            for (int64_t i0 = 0, n; i0 < Lq; i0 += n) {
                n = Lq - i0 < rows ? Lq - i0 : rows;
                if (Lq - i0 - n < min_rows) n = Lq - i0;
                const int64_t nh = H - h0 < heads ? H - h0 : heads;
                ld_attn_params ps = *p;
                if (p->mask) ps.mask = p->mask + b * p->mask_b + i0 * p->mask_q;
                if (p->key_keep) ps.key_keep = p->key_keep + b * Lk;
                ld_attention(out + (b * Lq + i0) * ldo + h0 * D, ldo, q + (b * Lq + i0) * ldq + h0 * D, ldq,
                             k + b * Lk * ldk + h0 * D, ldk, v + b * Lk * ldv + h0 * D, ldv, 1, nh, n, Lk, D, &ps);
                LD_TRY(ld_check_cancel(ctx, where));
            }
    return LD_OK;
}
