/* AVX2 + FMA GEMM micro-kernel (compiled with -mavx2 -mfma -mf16c, used when
 * base/cpu.h reports level avx2): a 6 x 16 tile in 12 ymm accumulators, per k
 * two vector loads of B and six broadcasts of A. Also the F16C f16 -> f32 and
 * bf16 -> f32 conversions used while packing. Layouts: gemm_kernels.h.
 */
#include <immintrin.h>

#include "tensor/gemm_kernels.h"

#define MR 6
#define NV 2 /* 8-float vectors per row: NR = 16 */

static void micro_f32_6x16(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) {
    const float *a = a_, *b = b_;
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] = load ? _mm256_loadu_ps(c + i * ldc + 8 * v) : _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += MR, b += 8 * NV) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(c + i * ldc + 8 * v, acc[i][v]);
}

static void convert_avx2(float *dst, const void *src, ld_dtype dt, int64_t offset, int64_t n) {
    int64_t i = 0;
    if (dt == LD_F16) {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < n; i++) dst[i] = ld_f16_to_f32(s[i]);
    } else if (dt == LD_BF16) {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (; i + 8 <= n; i += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(w, 16));
        }
        for (; i < n; i++) dst[i] = ld_bf16_to_f32(s[i]);
    } else {
        ld_convert_to_f32(dst, src, dt, offset, n);
    }
}

static const ld_gemm_kernel k_f32 = {
    .name = "avx2-f32 6x16", .mr = MR, .nr = 8 * NV, .mc = 120, .kc = 256, .nc = 1024,
    .bf16 = 0, .micro = micro_f32_6x16, .convert = convert_avx2,
};

const ld_gemm_kernel *ld_gemm_kernel_avx2_f32(void) { return &k_f32; }
