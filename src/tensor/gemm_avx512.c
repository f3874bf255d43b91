/* AVX-512 GEMM micro-kernels (compiled with -mavx512f/bw/dq/vl/bf16, used
 * only when base/cpu.h reports level avx512):
 *   - f32: 14 rows x 32 columns held in 28 zmm accumulators; per k, two
 *     vector loads of B and 14 broadcasts of A feed 28 FMAs;
 *   - bf16: the same tile with vdpbf16ps, each instruction doing two k steps
 *     (operands packed as bf16 pairs, f32 accumulation);
 * and the packing helpers: f16 -> f32 with vcvtph2ps, bf16 -> f32 by shifting,
 * f32 -> bf16 with vcvtneps2bf16. Layouts are described in gemm_kernels.h.
 */
#include <immintrin.h>
#include <string.h>

#include "tensor/gemm_kernels.h"

/* C tile of MR rows x NV 16-float vectors; a: MR floats per k, b: 16*NV per k. */
#define DEFINE_F32_KERNEL(NAME, MR, NV)                                                          \
    static void NAME(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) { \
        const float *a = a_, *b = b_;                                                            \
        __m512 acc[MR][NV];                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                acc[i][v] = load ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();  \
        for (int64_t k = 0; k < kc; k++, a += MR, b += 16 * NV) {                                \
            __m512 bv[NV];                                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + 16 * v); \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                              \
                __m512 ai = _mm512_set1_ps(a[i]);                                                \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                             \
                    acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);                           \
            }                                                                                    \
        }                                                                                        \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);                               \
    }

/* Same tile with bf16 pairs: a holds MR uint32 (2 x bf16) per k pair, b holds
 * NV vectors of 16 pairs. */
#define DEFINE_BF16_KERNEL(NAME, MR, NV)                                                         \
    static void NAME(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) { \
        const int32_t *a = a_;                                                                   \
        const uint16_t *b = b_;                                                                  \
        __m512 acc[MR][NV];                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                acc[i][v] = load ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();  \
        const int64_t kp = (kc + 1) / 2;                                                         \
        for (int64_t p = 0; p < kp; p++, a += MR, b += 32 * NV) {                                \
            __m512bh bv[NV];                                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + 32 * v));                \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                              \
                __m512bh ai = (__m512bh)_mm512_set1_epi32(a[i]);                                 \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                             \
                    acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);                          \
            }                                                                                    \
        }                                                                                        \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);                               \
    }

DEFINE_F32_KERNEL(micro_f32_14x32, 14, 2)
DEFINE_BF16_KERNEL(micro_bf16_14x32, 14, 2)

static void convert_avx512(float *dst, const void *src, ld_dtype dt, int64_t offset, int64_t n) {
    int64_t i = 0;
    if (dt == LD_F16) {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
        for (; i < n; i++) dst[i] = ld_f16_to_f32(s[i]);
    } else if (dt == LD_BF16) {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (; i + 16 <= n; i += 16) {
            __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i)));
            _mm512_storeu_si512((void *)(dst + i), _mm512_slli_epi32(w, 16));
        }
        for (; i < n; i++) dst[i] = ld_bf16_to_f32(s[i]);
    } else {
        ld_convert_to_f32(dst, src, dt, offset, n);
    }
}

static void to_bf16_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    for (; i < n; i++) dst[i] = ld_f32_to_bf16(src[i]);
}

static const ld_gemm_kernel k_f32 = {
    .name = "avx512-f32 14x32", .mr = 14, .nr = 32, .mc = 126, .kc = 256, .nc = 1024,
    .bf16 = 0, .micro = micro_f32_14x32, .convert = convert_avx512,
};

static const ld_gemm_kernel k_bf16 = {
    .name = "avx512-bf16 14x32", .mr = 14, .nr = 32, .mc = 126, .kc = 512, .nc = 1024,
    .bf16 = 1, .micro = micro_bf16_14x32, .convert = convert_avx512, .to_bf16 = to_bf16_avx512,
};

const ld_gemm_kernel *ld_gemm_kernel_avx512_f32(void) { return &k_f32; }
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16(void) { return &k_bf16; }
