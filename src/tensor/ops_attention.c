/* Multi-head scaled-dot-product attention (see ops.h), blocked with an
 * online softmax: only one ATTN_BQ x ATTN_BK score block per thread exists.
 *
 * Work items are (batch, head, block of ATTN_BQ queries), split over the
 * threads with a static schedule; each item is computed by one thread in a
 * fixed order, so the result does not depend on the thread count. The inner
 * kernel (ops_attention_kernel.h) is compiled for portable C here and for
 * AVX2+FMA / AVX-512 in ops_attention_avx2.c / _avx512.c; the path is the
 * one base/cpu.h puts in force (ld_cpu_level). Per-thread scratch: (D + ATTN_BQ) * ATTN_BK +
 * ATTN_BQ * (D + 2) floats. */
#include "tensor/ops_internal.h"
#include "tensor/gemm_attention.h"

#include "base/cpu.h"

#include <omp.h>
#include <stdlib.h>

#define ATTN_KERNEL attn_block_portable
#define OPS_VBYTES 16
#define OPS_BCAST(x) ((vf){(x), (x), (x), (x)})
#define ATTN_VMAC(a, b, c) ((a) * (b) + (c))
#define ATTN_SMAC(a, b, c) ((a) * (b) + (c))
#include "tensor/ops_attention_kernel.h"

typedef void (*attn_kernel_fn)(float *restrict, int64_t, const float *restrict, int64_t, const float *restrict,
                               int64_t, const float *restrict, int64_t, int64_t, int64_t, int64_t, int64_t,
                               const ld_attn_params *, const float *, const uint8_t *, float *restrict);

static attn_kernel_fn pick_kernel(void) {
#if defined(__x86_64__) || defined(__i386__)
    ld_cpu_level_t level = ld_cpu_level();
    if (level >= LD_CPU_AVX512) return ops_attn_block_avx512;
    if (level >= LD_CPU_AVX2) return ops_attn_block_avx2;
#endif
    return attn_block_portable;
}

void ld_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                  int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, const ld_attn_params *p) {
    if (B <= 0 || H <= 0 || Lq <= 0 || D <= 0) return;
    /* The GEMM micro-kernels (gemm_attention.h, 2-3x faster); the kernel below if its scratch cannot be had. */
    if (ld_gemm_attention(out, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, p)) return;
    attn_kernel_fn kernel = pick_kernel();
    int64_t nqb = (Lq + ATTN_BQ - 1) / ATTN_BQ, items = B * H * nqb;
    size_t per_thread = (size_t)((D + ATTN_BQ) * ATTN_BK + ATTN_BQ * (D + 2));
    int nth = omp_get_max_threads();
    if (items < nth) nth = (int)items;
    float *scratch = malloc((size_t)nth * per_thread * sizeof(float));
    if (!scratch) { /* documented scratch could not be had: leave a defined result */
        ld_log_error("attention: cannot allocate %zu bytes of scratch", (size_t)nth * per_thread * sizeof(float));
        for (int64_t r = 0; r < B * Lq; r++) memset(out + r * ldo, 0, (size_t)(H * D) * sizeof(float));
        return;
    }
    #pragma omp parallel num_threads(nth)
    {
        float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
        #pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int64_t b = it / (H * nqb), h = it / nqb % H, i0 = (it % nqb) * ATTN_BQ;
            int64_t nq = Lq - i0 < ATTN_BQ ? Lq - i0 : ATTN_BQ;
            const float *mask = p->mask ? p->mask + b * p->mask_b : NULL;
            const uint8_t *keep = p->key_keep ? p->key_keep + b * Lk : NULL;
            kernel(out + b * Lq * ldo + h * D, ldo, q + b * Lq * ldq + h * D, ldq, k + b * Lk * ldk + h * D, ldk,
                   v + b * Lk * ldv + h * D, ldv, Lk, D, i0, nq, p, mask, keep, mine);
        }
    }
    free(scratch);
}
