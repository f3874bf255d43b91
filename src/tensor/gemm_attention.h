/* Multi-head attention on the GEMM micro-kernels (flash-attention style):
 * same contract and layouts as ld_attention in ops.h, which calls it first.
 *
 *     if (!ld_gemm_attention(out, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, &p))
 *         ... own fallback ...
 *
 * Work items are (batch, head, block of queries); each is computed by one
 * thread in a fixed order, so results do not depend on the thread count.
 * Returns 0 without touching out when its scratch cannot be allocated.
 */
#ifndef LD_TENSOR_GEMM_ATTENTION_H
#define LD_TENSOR_GEMM_ATTENTION_H

#include "tensor/ops.h"

int ld_gemm_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                      const ld_attn_params *p);

#endif
