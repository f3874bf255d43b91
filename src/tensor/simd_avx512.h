/* AVX-512 helpers shared by the AVX-512 kernels (gemm_avx512.c) and the AMX
 * kernel (gemm_amx.c): a 16 x 16 transpose of 32-bit elements in registers
 * and a masked load of 16 f32/f16/bf16 values as f32. Include only from
 * files compiled with AVX-512 flags. */
#ifndef LD_TENSOR_SIMD_AVX512_H
#define LD_TENSOR_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* 16 rows of 16 floats -> 16 columns, in registers (see the derivation in
 * docs/performance.md: unpack within 128-bit lanes, shuffle_ps, then two
 * rounds of 128-bit lane shuffles). */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        __m512 p0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44), p1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
        __m512 q0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44), q1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(p0, q0, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(p0, q0, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(p1, q1, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(p1, q1, 0xDD);
    }
}

/* Up to 16 consecutive elements as f32 (masked: nothing read past them). */
static inline __m512 load16(ld_dtype dt, const void *data, int64_t i, __mmask16 m) {
    if (dt == LD_F32) return _mm512_maskz_loadu_ps(m, (const float *)data + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)data + i);
    if (dt == LD_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#endif
