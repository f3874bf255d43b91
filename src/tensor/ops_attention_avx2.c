/* The attention block kernel (ops_attention_kernel.h) compiled for AVX2+FMA;
 * ops_attention.c calls it when the CPU has both. */
#include "tensor/ops_internal.h"

#include <immintrin.h>

#define ATTN_KERNEL attn_block_avx2
#define OPS_VBYTES 32
#define OPS_BCAST(x) _mm256_set1_ps(x)
#define ATTN_VMAC(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define ATTN_SMAC(a, b, c) fmaf((a), (b), (c))
#include "tensor/ops_attention_kernel.h"

void ops_attn_block_avx2(float *restrict out, int64_t ldo, const float *restrict q, int64_t ldq,
                         const float *restrict k, int64_t ldk, const float *restrict v, int64_t ldv, int64_t Lk,
                         int64_t D, int64_t i0, int64_t nq, const ld_attn_params *p, const float *mask,
                         const uint8_t *keep, float *restrict scratch) {
    attn_block_avx2(out, ldo, q, ldq, k, ldk, v, ldv, Lk, D, i0, nq, p, mask, keep, scratch);
}
