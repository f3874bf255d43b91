/* NEON (aarch64) GEMM micro-kernel, compiled only on aarch64 (used when
 * base/cpu.h reports level neon): an 8 x 12 tile in 24 q-register
 * accumulators; per k, three vector loads of B, two of A, and 24 FMAs by
 * lane. Layouts: gemm_kernels.h. Not exercised on x86 build machines.
 */
#include "tensor/gemm_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define MR 8
#define NR 12

static void micro_f32_8x12(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) {
    const float *a = a_, *b = b_;
    float32x4_t acc[MR][3];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 3; v++) acc[i][v] = load ? vld1q_f32(c + i * ldc + 4 * v) : vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < kc; k++, a += MR, b += NR) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define ROW(I, AV, L)                                   \
    acc[I][0] = vfmaq_laneq_f32(acc[I][0], b0, AV, L);  \
    acc[I][1] = vfmaq_laneq_f32(acc[I][1], b1, AV, L);  \
    acc[I][2] = vfmaq_laneq_f32(acc[I][2], b2, AV, L);
        ROW(0, a0, 0) ROW(1, a0, 1) ROW(2, a0, 2) ROW(3, a0, 3)
        ROW(4, a1, 0) ROW(5, a1, 1) ROW(6, a1, 2) ROW(7, a1, 3)
#undef ROW
    }
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 3; v++) vst1q_f32(c + i * ldc + 4 * v, acc[i][v]);
}

static const ld_gemm_kernel k_f32 = {
    .name = "neon-f32 8x12", .mr = MR, .nr = NR, .mc = 128, .kc = 256, .nc = 1536,
    .bf16 = 0, .micro = micro_f32_8x12,
};

const ld_gemm_kernel *ld_gemm_kernel_neon_f32(void) { return &k_f32; }

#endif
