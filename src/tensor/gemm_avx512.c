/* AVX-512 GEMM micro-kernels (compiled with -mavx512f/bw/dq/vl/bf16, used
 * only when base/cpu.h reports level avx512):
 *   - f32: 14 rows x 32 columns held in 28 zmm accumulators; per k, two
 *     vector loads of B and 14 broadcasts of A feed 28 FMAs; and an 8 x 48
 *     variant that gemm.c picks when it pads the matrix less;
 *   - bf16: the same tiles with vdpbf16ps, each instruction doing two k steps
 *     (operands packed as bf16 pairs, f32 accumulation; the broadcast A pair
 *     goes second, which Zen 4 runs at the full rate);
 *   - for each kernel a stack entry (ld_gemm_stack_fn) for attention's
 *     short products, and a micro_bias entry that adds the biases to the
 *     last k block's sums before storing them, on the same tile code;
 * the packing helpers: f16 -> f32 with vcvtph2ps, bf16 -> f32 by shifting,
 * f32 -> bf16 pairs with vcvtne2ps2bf16, a 16x16 transposing gather, and
 * straight source -> bf16 pair packing (pack_pairs); and the vectorized
 * online-softmax step used by gemm_attention.c (also writing P^T as bf16
 * pairs directly, for the bf16 kernels). Layouts are described in
 * gemm_kernels.h.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "tensor/gemm_kernels.h"
#include "tensor/simd_avx512.h"

/* The two entries of a kernel whose tile code is NAME##_tile: the
 * micro-kernel, and ld_gemm_stack_fn with the row stride a constant (no
 * address arithmetic per tile). */
#define DEFINE_ENTRIES(NAME, MR, NV)                                                             \
    static void NAME(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int load) { \
        NAME##_tile(kc, a, b, c, ldc, load, NULL, NULL);                                         \
    }                                                                                            \
    static void NAME##_bias(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int load, \
                            const float *bn, const float *bm) {                                  \
        NAME##_tile(kc, a, b, c, ldc, load, bn, bm);                                             \
    }                                                                                            \
    static void NAME##_stack(int64_t np, int64_t kc, const void *a, int64_t astride, const void *b, float *c, \
                             int load) {                                                         \
        for (int64_t t = 0; t < np; t++)                                                         \
            NAME##_tile(kc, (const char *)a + t * astride, b, c + t * MR * 16 * NV, 16 * NV, load, NULL, NULL); \
    }

/* The tile's epilogue: the biases added to the sums in registers (NULL: none;
 * constant NULL in the plain entries, where this vanishes). */
#define TILE_BIASES(MR, NV)                                                                      \
    if (bn) {                                                                                    \
        __m512 bv[NV];                                                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(bn + 16 * v); \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = _mm512_add_ps(acc[i][v], bv[v]); \
    }                                                                                            \
    if (bm)                                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                  \
            const __m512 bi = _mm512_set1_ps(bm[i]);                                             \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = _mm512_add_ps(acc[i][v], bi); \
        }

/* C tile of MR rows x NV 16-float vectors; a: MR floats per k, b: 16*NV per k. */
#define DEFINE_F32_KERNEL(NAME, MR, NV)                                                          \
    static inline __attribute__((always_inline)) void NAME##_tile(int64_t kc, const void *a_, const void *b_, \
                                                                  float *c, int64_t ldc, int load, \
                                                                  const float *bn, const float *bm) { \
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
        TILE_BIASES(MR, NV)                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);                               \
    }                                                                                            \
    DEFINE_ENTRIES(NAME, MR, NV)

/* Same tile with bf16 pairs: a holds MR uint32 (2 x bf16) per k pair, b holds
 * NV vectors of 16 pairs. */
#define DEFINE_BF16_KERNEL(NAME, MR, NV)                                                         \
    static inline __attribute__((always_inline)) void NAME##_tile(int64_t kc, const void *a_, const void *b_, \
                                                                  float *c, int64_t ldc, int load, \
                                                                  const float *bn, const float *bm) { \
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
                    acc[i][v] = _mm512_dpbf16_ps(acc[i][v], bv[v], ai);                          \
            }                                                                                    \
        }                                                                                        \
        TILE_BIASES(MR, NV)                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                 \
                _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);                               \
    }                                                                                            \
    DEFINE_ENTRIES(NAME, MR, NV)

DEFINE_F32_KERNEL(micro_f32_14x32, 14, 2)
DEFINE_BF16_KERNEL(micro_bf16_14x32, 14, 2)
DEFINE_F32_KERNEL(micro_f32_8x48, 8, 3)
DEFINE_BF16_KERNEL(micro_bf16_8x48, 8, 3)

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
    } else if (dt == LD_F32) {
        const float *s = (const float *)src + offset;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(s + i));
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, s + i));
        }
    } else {
        ld_convert_to_f32(dst, src, dt, offset, n);
    }
}

/* Two k rows of 16 columns -> 16 interleaved bf16 pairs (vcvtne2ps2bf16 then
 * a word permute), for x in 16-column steps; W = 14 uses masks. */
static void to_pairs_avx512(const float *tile, int64_t ld, int64_t kc, int W, uint16_t *dst) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t p = 0; p < (kc + 1) / 2; p++) {
        const float *r0 = tile + 2 * p * ld, *r1 = r0 + ld;
        const int odd = 2 * p + 1 >= kc;
        for (int x = 0; x < W; x += 16) {
            const int nx = W - x < 16 ? W - x : 16;
            const __mmask16 m = (__mmask16)((1u << nx) - 1);
            __m512 a = _mm512_maskz_loadu_ps(m, r0 + x);
            __m512 b = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, r1 + x);
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* words 0..15 = a, 16..31 = b */
            h = _mm512_permutexvar_epi16(idx, h);           /* a0 b0 a1 b1 ... */
            const __mmask32 sm = nx == 16 ? 0xffffffffu : (__mmask32)((1u << (2 * nx)) - 1);
            _mm512_mask_storeu_epi16(dst + (p * W + x) * 2, sm, h);
        }
    }
}

/* nx <= 16 rows (the rest read as 0) of f32, f16 or bf16 (dt is a
 * constant where this is inlined): unmasked loads, prefetched ahead, all in
 * registers; each row is prefetched ahead (ld_gemm_pack_ahead: the 16 rows
 * are up to 16 streams kilobytes apart, a weight's rows or a token's
 * channels), near its end the row `next` further on. */
static inline __attribute__((always_inline)) void gather_t_fast(float *tile, const void *data, ld_dtype dt,
                                                                int64_t base, int64_t sx, int64_t kc, int64_t nx,
                                                                int W, int64_t x0, __mmask16 xm, int64_t next) {
    const int64_t es = dt == LD_F32 ? 4 : 2;
    const char *src = (const char *)data + base * es;
    int64_t k0 = 0;
    for (; k0 + 16 <= kc; k0 += 16) {
        const int64_t ahead = ld_gemm_pack_ahead(k0, kc, next, sx);
        __m512 r[16];
#pragma GCC unroll 16
        for (int x = 0; x < 16; x++) {
            if (x < nx) {
                const char *row = src + (x * sx + k0) * es;
                _mm_prefetch(src + (x * sx + ahead) * es, _MM_HINT_T0);
                r[x] = dt == LD_F32 ? _mm512_loadu_ps(row)
                       : dt == LD_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)row))
                                      : _mm512_castsi512_ps(_mm512_slli_epi32(
                                            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)row)), 16));
            } else {
                r[x] = _mm512_setzero_ps();
            }
        }
        transpose16(r);
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) _mm512_mask_storeu_ps(tile + (k0 + k) * W + x0, xm, r[k]);
    }
    if (k0 < kc) {
        const __mmask16 km = (__mmask16)((1u << (kc - k0)) - 1);
        __m512 r[16];
#pragma GCC unroll 16
        for (int x = 0; x < 16; x++) r[x] = x < nx ? load16(dt, data, base + x * sx + k0, km) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t k = 0; k < kc - k0; k++) _mm512_mask_storeu_ps(tile + (k0 + k) * W + x0, xm, r[k]);
    }
}

static void gather_t_avx512(float *tile, const void *data, ld_dtype dt, int64_t base, int64_t sx, int64_t kc,
                            int64_t n, int W) {
    for (int64_t x0 = 0; x0 < n; x0 += 16) {
        const int64_t nx = n - x0 < 16 ? n - x0 : 16;
        const __mmask16 xm = W - x0 >= 16 ? 0xffff : (__mmask16)((1u << (W - x0)) - 1);
        const int64_t b = base + x0 * sx;
        if (dt == LD_F32)
            gather_t_fast(tile, data, LD_F32, b, sx, kc, nx, W, x0, xm, n);
        else if (dt == LD_F16)
            gather_t_fast(tile, data, LD_F16, b, sx, kc, nx, W, x0, xm, n);
        else
            gather_t_fast(tile, data, LD_BF16, b, sx, kc, nx, W, x0, xm, n);
    }
}

/* Rows read ahead by gather_rows (rows are often kilobytes apart). */
#define ROWS_AHEAD 8

/* ld_gemm_gather_rows_fn: a panel's rows (n <= 48 contiguous elements each)
 * with masked loads and stores inline, instead of a conversion call per row. */
static void gather_rows_avx512(float *tile, const void *data, ld_dtype dt, int64_t base, int64_t sk, int64_t kc,
                               int64_t n, int W) {
    for (int64_t x0 = 0; x0 < n; x0 += 16) {
        const __mmask16 m = n - x0 >= 16 ? 0xffff : (__mmask16)((1u << (n - x0)) - 1);
        for (int64_t k = 0; k < kc; k++) {
            const int64_t ahead = base + (k + ROWS_AHEAD) * sk + x0;
            _mm_prefetch((const char *)data + ahead * (dt == LD_F32 ? 4 : 2), _MM_HINT_T0);
            _mm512_mask_storeu_ps(tile + k * W + x0, m, load16(dt, data, base + k * sk + x0, m));
        }
    }
}

/* 32 consecutive source elements (nk <= 32 of them, the rest read as 0)
 * rounded to 16 bf16 pairs, as the bits of one vector. */
static inline __m512 load_pairs32(ld_dtype dt, const void *data, int64_t i, int64_t nk) {
    const __mmask32 m = nk >= 32 ? 0xffffffffu : (__mmask32)((1u << nk) - 1);
    if (dt == LD_BF16) return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, (const uint16_t *)data + i));
    const __m512 lo = load16(dt, data, i, (__mmask16)m), hi = load16(dt, data, i + 16, (__mmask16)(m >> 16));
    return _mm512_castsi512_ps((__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* k contiguous: 16 columns x 32 k become 16 vectors of 16 pairs, one 16x16
 * transpose of 32-bit pairs turns them into 16 rows of pair index p. */
static void pack_pairs_kmajor(uint32_t *dst, const void *data, ld_dtype dt, int64_t base, int64_t sx, int64_t kc,
                              int64_t n, int W) {
    const int64_t es = dt == LD_F32 ? 4 : 2;
    for (int x0 = 0; x0 < W; x0 += 16) {
        const int nw = W - x0 < 16 ? W - x0 : 16;
        const __mmask16 sm = nw == 16 ? 0xffff : (__mmask16)((1u << nw) - 1);
        const int64_t nx = n - x0 < 0 ? 0 : n - x0 < 16 ? n - x0 : 16;
        for (int64_t k0 = 0; k0 < kc; k0 += 32) {
            const int64_t nk = kc - k0 < 32 ? kc - k0 : 32;
            /* ahead in each column, near its end in the next panel's (the
             * columns of activations are kilobytes apart, often in memory) */
            const int64_t off = ld_gemm_pack_ahead(k0, kc, n, sx);
            for (int64_t x = 0; x < nx; x++) {
                const char *ahead = (const char *)data + (base + (x0 + x) * sx + off) * es;
                _mm_prefetch(ahead, _MM_HINT_T0);
                if (es == 4) _mm_prefetch(ahead + 64, _MM_HINT_T0);
            }
            __m512 r[16];
            for (int64_t x = 0; x < 16; x++)
                r[x] = x < nx ? load_pairs32(dt, data, base + (x0 + x) * sx + k0, nk) : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t t = 0; t < (nk + 1) / 2; t++) _mm512_mask_storeu_ps(dst + (k0 / 2 + t) * W + x0, sm, r[t]);
        }
    }
}

/* x contiguous, panels of 8 (the 8 x 48 kernel's A panels: attention's
 * V^T): two k rows of 8 columns -> 8 interleaved pairs, one 32-byte store;
 * half-width operations, 2.3x faster than the 512-bit path below. */
static void pack_pairs_xmajor8(uint16_t *dst, const void *data, ld_dtype dt, int64_t base, int64_t sk, int64_t kc,
                               int64_t n) {
    const __m256i idx = _mm256_set_epi16(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
    const __mmask8 m = n >= 8 ? 0xff : n <= 0 ? 0 : (__mmask8)((1u << n) - 1);
    for (int64_t p = 0; p < (kc + 1) / 2; p++) {
        const int64_t r0 = base + 2 * p * sk, r1 = r0 + sk;
        const __m256 a = _mm512_castps512_ps256(load16(dt, data, r0, m));
        const __m256 b = 2 * p + 1 >= kc ? _mm256_setzero_ps() : _mm512_castps512_ps256(load16(dt, data, r1, m));
        _mm256_storeu_si256((__m256i *)(dst + p * 16),
                            _mm256_permutexvar_epi16(idx, (__m256i)_mm256_cvtne2ps_pbh(b, a)));
    }
}

/* x contiguous: two k rows of 16 columns -> 16 interleaved pairs. */
static void pack_pairs_xmajor(uint16_t *dst, const void *data, ld_dtype dt, int64_t base, int64_t sk, int64_t kc,
                              int64_t n, int W) {
    if (W == 8) {
        pack_pairs_xmajor8(dst, data, dt, base, sk, kc, n);
        return;
    }
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t p = 0; p < (kc + 1) / 2; p++) {
        const int64_t r0 = base + 2 * p * sk, r1 = r0 + sk;
        const int odd = 2 * p + 1 >= kc;
        for (int x = 0; x < W; x += 16) {
            const int nw = W - x < 16 ? W - x : 16;
            const int64_t nx = n - x < 0 ? 0 : n - x < nw ? n - x : nw;
            const __mmask16 m = (__mmask16)((1u << nx) - 1);
            __m512 a = load16(dt, data, r0 + x, m);
            __m512 b = odd ? _mm512_setzero_ps() : load16(dt, data, r1 + x, m);
            __m512i h = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            const __mmask32 sm = nw == 16 ? 0xffffffffu : (__mmask32)((1u << (2 * nw)) - 1);
            _mm512_mask_storeu_epi16(dst + (p * W + x) * 2, sm, h);
        }
    }
}

static int pack_pairs_avx512(uint16_t *dst, const void *data, ld_dtype dt, int64_t base, int64_t sk, int64_t sx,
                             int64_t kc, int64_t n, int W) {
    if (dt != LD_F32 && dt != LD_F16 && dt != LD_BF16) return 0;
    if (sk == 1 && sx != 1) {
        pack_pairs_kmajor((uint32_t *)dst, data, dt, base, sx, kc, n, W);
        return 1;
    }
    if (sx == 1) {
        pack_pairs_xmajor(dst, data, dt, base, sk, kc, n, W);
        return 1;
    }
    return 0;
}

/* x rounded to the nearest integer (ties to even) for |x| < 2^22, by adding
 * and subtracting 1.5 * 2^23: two adds on either FMA port, where
 * vrndscaleps is two uops on one port on Intel cores; the same bits. */
static inline __m512 round_small512(__m512 x) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    return _mm512_sub_ps(_mm512_add_ps(x, magic), magic);
}

/* exp(x) for x <= 0: x = n ln2 + r, |r| <= ln2/2, Taylor to r^6 (about
 * 1 ulp), times 2^n with vscalefps; x below -87.3 (and -inf) gives exactly 0. */
static inline __m512 exp_neg512(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
    __m512 n = round_small512(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.0f / 720);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f / 120));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f / 24));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f / 6));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.5f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(y, n));
}

/* exp(s - ms) for the bf16 kernels' P, whose bf16 rounding (relative 2^-9)
 * dwarfs this one's error (below 4e-6 relative): t = s*log2(e) - msl with
 * msl = ms*log2(e) in one fused step, t = n + r with |r| <= 1/2, 2^r by a
 * degree-4 polynomial (Chebyshev nodes), times 2^n with vscalefps. t is
 * clamped at -160 first, which makes -inf and anything below 2^-150 exactly 0. */
static inline __m512 exp_bf16_512(__m512 s, __m512 msl) {
    __m512 t = _mm512_max_ps(_mm512_fmsub_ps(s, _mm512_set1_ps(1.44269504088896341f), msl), _mm512_set1_ps(-160.0f));
    const __m512 n = round_small512(t);
    const __m512 r = _mm512_sub_ps(t, n);
    __m512 y = _mm512_set1_ps(0.00966636837f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.0559219755f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.240223497f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.693121016f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

/* The online-softmax step on NV vectors of 16 query columns at once (the
 * columns c.. of an NR-wide S^T panel: st, m, l, ot point at column c), so
 * each row gives NV independent max / exp / sum chains. pp == NULL: P^T is
 * written in place in f32 (exp_neg512, ld_gemm_softmax_fn); else as bf16
 * pairs into pp (exp_bf16_512, ld_gemm_softmax_pairs_fn), two rows at a
 * time, rounded and interleaved as to_pairs_avx512 does. Per column the
 * operations and their order are those of a plain column loop. */
static inline __attribute__((always_inline)) void softmax_cols(float *st, int64_t nk, int NR, float *m, float *l,
                                                               float *ot, int64_t dp, uint16_t *pp, const int NV) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), l2e = _mm512_set1_ps(1.44269504088896341f);
    __m512 mx[4], mx1[4], mn[4], ms[4], msl[4], sum[4];
    for (int v = 0; v < NV; v++) mx[v] = mx1[v] = ninf;
    int64_t k = 0;
    for (; k + 2 <= nk; k += 2) /* max is exact: two chains per vector, any order */
        for (int v = 0; v < NV; v++) {
            mx[v] = _mm512_max_ps(mx[v], _mm512_loadu_ps(st + k * NR + 16 * v));
            mx1[v] = _mm512_max_ps(mx1[v], _mm512_loadu_ps(st + (k + 1) * NR + 16 * v));
        }
    for (; k < nk; k++)
        for (int v = 0; v < NV; v++) mx[v] = _mm512_max_ps(mx[v], _mm512_loadu_ps(st + k * NR + 16 * v));
    for (int v = 0; v < NV; v++) {
        mn[v] = _mm512_max_ps(_mm512_loadu_ps(m + 16 * v), _mm512_max_ps(mx[v], mx1[v]));
        /* columns with nothing but -inf subtract 0 instead (their exps are 0 either way) */
        ms[v] = _mm512_mask_mov_ps(mn[v], _mm512_cmp_ps_mask(mn[v], ninf, _CMP_EQ_OQ), _mm512_setzero_ps());
        msl[v] = _mm512_mul_ps(ms[v], l2e);
        sum[v] = _mm512_setzero_ps();
    }
    if (!pp) {
        for (k = 0; k < nk; k++)
            for (int v = 0; v < NV; v++) {
                const __m512 e = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(st + k * NR + 16 * v), ms[v]));
                _mm512_storeu_ps(st + k * NR + 16 * v, e);
                sum[v] = _mm512_add_ps(sum[v], e);
            }
    } else {
        const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                             6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (k = 0; k < nk; k += 2)
            for (int v = 0; v < NV; v++) {
                const __m512 e0 = exp_bf16_512(_mm512_loadu_ps(st + k * NR + 16 * v), msl[v]);
                __m512 e1 = _mm512_setzero_ps();
                sum[v] = _mm512_add_ps(sum[v], e0);
                if (k + 1 < nk) {
                    e1 = exp_bf16_512(_mm512_loadu_ps(st + (k + 1) * NR + 16 * v), msl[v]);
                    sum[v] = _mm512_add_ps(sum[v], e1);
                }
                _mm512_storeu_si512((void *)(pp + (k / 2 * NR + 16 * v) * 2),
                                    _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
            }
    }
    /* l, m, and O^T times alpha, skipped when every alpha is 1 (the running
     * max did not move; x * 1 is x anyway) */
    __m512 alpha[4];
    int moved = 0;
    for (int v = 0; v < NV; v++) {
        alpha[v] = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(m + 16 * v), ms[v]));
        _mm512_storeu_ps(l + 16 * v, _mm512_fmadd_ps(_mm512_loadu_ps(l + 16 * v), alpha[v], sum[v]));
        _mm512_storeu_ps(m + 16 * v, mn[v]);
        moved |= _mm512_cmp_ps_mask(alpha[v], _mm512_set1_ps(1.0f), _CMP_NEQ_UQ) != 0;
    }
    if (moved)
        for (int64_t d = 0; d < dp; d++)
            for (int v = 0; v < NV; v++)
                _mm512_storeu_ps(ot + d * NR + 16 * v, _mm512_mul_ps(_mm512_loadu_ps(ot + d * NR + 16 * v), alpha[v]));
}

/* NR = 48 and 32 (the AVX-512 tiles) in one pass, other widths 16 columns at a time. */
static inline __attribute__((always_inline)) void softmax_any(float *st, int64_t nk, int NR, float *m, float *l,
                                                              float *ot, int64_t dp, uint16_t *pp) {
    if (NR == 48) {
        softmax_cols(st, nk, NR, m, l, ot, dp, pp, 3);
    } else if (NR == 32) {
        softmax_cols(st, nk, NR, m, l, ot, dp, pp, 2);
    } else {
        for (int c = 0; c < NR; c += 16)
            softmax_cols(st + c, nk, NR, m + c, l + c, ot + c, dp, pp ? pp + 2 * c : NULL, 1);
    }
}

/* ld_gemm_softmax_fn */
static void softmax_avx512(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp) {
    softmax_any(st, nk, NR, m, l, ot, dp, NULL);
}

/* ld_gemm_softmax_pairs_fn: the shorter exp above for P (alpha keeps the f32 one) */
static void softmax_pairs_avx512(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp,
                                 uint16_t *pp) {
    softmax_any(st, nk, NR, m, l, ot, dp, pp);
}

static const ld_gemm_kernel k_f32 = {
    .name = "avx512-f32 14x32", .mr = 14, .nr = 32, .mc = 126, .kc = 256, .nc = 512,
    .bf16 = 0, .micro = micro_f32_14x32, .micro_bias = micro_f32_14x32_bias, .stack = micro_f32_14x32_stack, .convert = convert_avx512, .gather_t = gather_t_avx512, .gather_rows = gather_rows_avx512,
    .softmax = softmax_avx512,
};

static const ld_gemm_kernel k_bf16 = {
    .name = "avx512-bf16 14x32", .mr = 14, .nr = 32, .mc = 126, .kc = 512, .nc = 512,
    .bf16 = 1, .micro = micro_bf16_14x32, .micro_bias = micro_bf16_14x32_bias, .stack = micro_bf16_14x32_stack, .convert = convert_avx512, .to_pairs = to_pairs_avx512,
    .pack_pairs = pack_pairs_avx512, .gather_t = gather_t_avx512, .gather_rows = gather_rows_avx512, .softmax = softmax_avx512,
    .softmax_pairs = softmax_pairs_avx512,
};

/* 8 x 48 tiles (24 accumulators, three loads of B per k): no padding waste
 * when M is a multiple of 8 but not of 14 (channel counts 128, 256, ...). */
static const ld_gemm_kernel k_f32_8x48 = {
    .name = "avx512-f32 8x48", .mr = 8, .nr = 48, .mc = 128, .kc = 256, .nc = 480,
    .bf16 = 0, .micro = micro_f32_8x48, .micro_bias = micro_f32_8x48_bias, .stack = micro_f32_8x48_stack, .convert = convert_avx512, .gather_t = gather_t_avx512, .gather_rows = gather_rows_avx512,
    .softmax = softmax_avx512,
};

static const ld_gemm_kernel k_bf16_8x48 = {
    .name = "avx512-bf16 8x48", .mr = 8, .nr = 48, .mc = 128, .kc = 512, .nc = 480,
    .bf16 = 1, .micro = micro_bf16_8x48, .micro_bias = micro_bf16_8x48_bias, .stack = micro_bf16_8x48_stack, .convert = convert_avx512, .to_pairs = to_pairs_avx512,
    .pack_pairs = pack_pairs_avx512, .gather_t = gather_t_avx512, .gather_rows = gather_rows_avx512, .softmax = softmax_avx512,
    .softmax_pairs = softmax_pairs_avx512,
};

const ld_gemm_kernel *ld_gemm_kernel_avx512_f32(void) { return &k_f32; }
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16(void) { return &k_bf16; }
const ld_gemm_kernel *ld_gemm_kernel_avx512_f32_alt(void) { return &k_f32_8x48; }
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16_alt(void) { return &k_bf16_8x48; }
