/* AVX2 + FMA GEMM micro-kernel (compiled with -mavx2 -mfma -mf16c, used when
 * base/cpu.h reports level avx2): a 6 x 16 tile in 12 ymm accumulators, per k
 * two vector loads of B and six broadcasts of A. Also the F16C f16 -> f32 and
 * bf16 -> f32 conversions and the 8x8 transposing gather used while packing,
 * and the online-softmax step of gemm_attention.c. Layouts: gemm_kernels.h.
 */
#include <immintrin.h>
#include <math.h>

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

/* 8 rows of 8 floats -> 8 columns, in registers. */
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
    }
}

/* nk <= 8 consecutive elements as f32, zeros after them (nothing read past). */
static inline __m256 load8(ld_dtype dt, const void *data, int64_t i, int64_t nk) {
    if (nk == 8) {
        if (dt == LD_F32) return _mm256_loadu_ps((const float *)data + i);
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)data + i));
        if (dt == LD_F16) return _mm256_cvtph_ps(h);
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    float t[8] = {0};
    convert_avx2(t, data, dt, i, nk);
    return _mm256_loadu_ps(t);
}

static void gather_t_avx2(float *tile, const void *data, ld_dtype dt, int64_t base, int64_t sx, int64_t kc,
                          int64_t n, int W) {
    const int64_t es = dt == LD_F32 ? 4 : 2;
    for (int64_t x0 = 0; x0 < n; x0 += 8) {
        const int64_t nx = n - x0 < 8 ? n - x0 : 8, wx = W - x0 < 8 ? W - x0 : 8;
        const __m256i sm = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)wx), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int64_t k0 = 0; k0 < kc; k0 += 8) {
            const int64_t nk = kc - k0 < 8 ? kc - k0 : 8;
            /* one line of each row ahead per 64 bytes read (ld_gemm_pack_ahead) */
            if ((k0 * es) % 64 == 0) {
                const int64_t ahead = ld_gemm_pack_ahead(k0, kc, n, sx);
                for (int64_t x = 0; x < nx; x++)
                    _mm_prefetch((const char *)data + (base + (x0 + x) * sx + ahead) * es, _MM_HINT_T0);
            }
            __m256 r[8];
            for (int64_t x = 0; x < 8; x++)
                r[x] = x < nx ? load8(dt, data, base + (x0 + x) * sx + k0, nk) : _mm256_setzero_ps();
            transpose8(r);
            for (int64_t k = 0; k < nk; k++) {
                if (wx == 8)
                    _mm256_storeu_ps(tile + (k0 + k) * W + x0, r[k]);
                else
                    _mm256_maskstore_ps(tile + (k0 + k) * W + x0, sm, r[k]);
            }
        }
    }
}

/* exp(x) for x <= 0 (see exp_neg512 in gemm_avx512.c); 2^n is built in the
 * exponent bits, n >= -126 after clamping; x below -87.3 gives exactly 0. */
static inline __m256 exp_neg256(__m256 x) {
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.0f / 720);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 120));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 24));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 6));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), live);
}

/* Online-softmax step down NR query columns, 8 at a time (ld_gemm_softmax_fn). */
static void softmax_avx2(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int c = 0; c < NR; c += 8) {
        __m256 mx = ninf;
        for (int64_t k = 0; k < nk; k++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(st + k * NR + c));
        const __m256 mold = _mm256_loadu_ps(m + c), mn = _mm256_max_ps(mold, mx);
        /* columns with nothing but -inf subtract 0 instead (their exps are 0 either way) */
        const __m256 ms = _mm256_andnot_ps(_mm256_cmp_ps(mn, ninf, _CMP_EQ_OQ), mn);
        __m256 sum = _mm256_setzero_ps();
        for (int64_t k = 0; k < nk; k++) {
            __m256 e = exp_neg256(_mm256_sub_ps(_mm256_loadu_ps(st + k * NR + c), ms));
            _mm256_storeu_ps(st + k * NR + c, e);
            sum = _mm256_add_ps(sum, e);
        }
        const __m256 alpha = exp_neg256(_mm256_sub_ps(mold, ms));
        _mm256_storeu_ps(l + c, _mm256_fmadd_ps(_mm256_loadu_ps(l + c), alpha, sum));
        _mm256_storeu_ps(m + c, mn);
        if (_mm256_movemask_ps(_mm256_cmp_ps(alpha, _mm256_set1_ps(1.0f), _CMP_NEQ_UQ))) /* else O^T stays */
            for (int64_t d = 0; d < dp; d++)
                _mm256_storeu_ps(ot + d * NR + c, _mm256_mul_ps(_mm256_loadu_ps(ot + d * NR + c), alpha));
    }
}

static const ld_gemm_kernel k_f32 = {
    .name = "avx2-f32 6x16", .mr = MR, .nr = 8 * NV, .mc = 120, .kc = 256, .nc = 512,
    .bf16 = 0, .micro = micro_f32_6x16, .convert = convert_avx2, .gather_t = gather_t_avx2,
    .softmax = softmax_avx2,
};

const ld_gemm_kernel *ld_gemm_kernel_avx2_f32(void) { return &k_f32; }
