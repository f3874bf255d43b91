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
    LD_FLOPS_COUNT(LD_FLOPS_ATTENTION, Lk > 0 ? 4 * B * H * Lq * Lk * D : 0);
    if (ld_gemm_attention(out, ldo, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, p)) return;
    /* Its per-thread scratch (a few hundred KB) could not be allocated: leave a defined result. */
    ld_log_error("attention: cannot allocate the kernel's scratch memory; output set to zero");
    for (int64_t r = 0; r < B * Lq; r++) memset(out + r * ldo, 0, (size_t)(H * D) * sizeof(float));
}
