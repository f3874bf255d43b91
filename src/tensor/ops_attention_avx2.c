/* The attention block kernel (ops_attention_kernel.h) compiled for AVX2+FMA;
 * ops_attention.c calls it when the CPU has both. */
#include "tensor/ops_internal.h"

#define ATTN_KERNEL ops_attn_block_avx2_impl
#define ATTN_MAC(a, b, c) fmaf((a), (b), (c))
#include "tensor/ops_attention_kernel.h"

void ops_attn_block_avx2(float *restrict out, int64_t ldo, const float *restrict q, int64_t ldq,
                         const float *restrict k, int64_t ldk, const float *restrict v, int64_t ldv, int64_t Lk,
                         int64_t D, int64_t i0, int64_t nq, const ld_attn_params *p, const float *mask,
                         const uint8_t *keep, float *restrict scratch) {
    ops_attn_block_avx2_impl(out, ldo, q, ldq, k, ldk, v, ldv, Lk, D, i0, nq, p, mask, keep, scratch);
}
