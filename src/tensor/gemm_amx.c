/* AMX bf16 GEMM micro-kernel (Intel Sapphire Rapids and later; compiled with
 * the AMX and AVX-512 flags, used only when base/cpu.h reports AMX usable).
 *
 * A 32 x 32 tile of C is held in four 16 x 16 f32 tile registers (tmm0-3);
 * per 32 values of k, two tiles of A (rows 0-15 and 16-31, tmm4-5) and two
 * of B (columns 0-15 and 16-31, tmm6-7) feed four TDPBF16PS, each doing
 * 16 x 16 x 32 multiply-adds (the last k block adds the biases to the
 * stored tile, micro_bias). B is the common bf16-pair panel (gemm_kernels.h):
 * with NR = 32 its pair row p is 128 bytes, and 16 pair rows are a B tile
 * as TDPBF16PS wants it (K/2 rows of 16 column pairs). An A tile wants each
 * row's 32 k contiguous, so after packing, each A panel is turned from
 * pairs [p][i][2] into [k/32][i][32] (relayout_a: per 32 k, two 16 x 16
 * transposes of pairs), or packed so straight from a k-contiguous source
 * (pack_a). Every k block is a multiple of 32 deep (kstep), so
 * no tile reads past a panel. The tile configuration is loaded once per
 * thread. Each C element is summed over k in increasing order, 32 at a
 * time, whatever the threads. Packing, conversion and the rest come from
 * the AVX-512 bf16 kernel.
 */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "tensor/gemm_kernels.h"
#include "tensor/simd_avx512.h"

enum { AMR = 32, ANR = 32, AK = 32 };

/* The LDTILECFG operand (palette 1). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static _Thread_local int t_configured;

/* All eight tiles 16 rows x 64 bytes: C 16 x 16 f32, A 16 x 32 bf16, B 16
 * pair rows x 16 columns. A constant: gcc 12 does not see that LDTILECFG
 * reads its operand and dropped the stores of a configuration built on the
 * stack (the probe's copy faulted). */
static const tile_config g_config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

static void configure(void) {
    _tile_loadconfig(&g_config);
    t_configured = 1;
}

/* A block of 32 k: [16 pairs][32 rows] -> [32 rows][16 pairs] (u32). */
static void relayout_a_amx(void *panel, int64_t kcp) {
    uint32_t *p = panel;
    _Alignas(64) uint32_t tmp[AMR * AK / 2];
    for (int64_t kb = 0; kb < kcp / AK; kb++, p += AMR * AK / 2) {
        for (int h = 0; h < 2; h++) {
            __m512 r[16];
            for (int q = 0; q < 16; q++) r[q] = _mm512_loadu_ps((const float *)(p + q * AMR + h * 16));
            transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_storeu_ps((float *)(tmp + (h * 16 + i) * 16), r[i]);
        }
        memcpy(p, tmp, sizeof tmp);
    }
}

/* The first n of 16 lanes (none for n <= 0). */
static inline __mmask16 mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
}

/* ld_gemm_pack_pairs_fn for A in the kernel's layout [k/32][row][32], from a
 * source whose k is contiguous (activations, filters): each row converted
 * straight to bf16 (round to nearest even, as the pair packers), rows from
 * n on and k from kc to the next multiple of 32 zero. Other strides: 0. */
static int pack_a_amx(uint16_t *dst, const void *data, ld_dtype dt, int64_t base, int64_t sk, int64_t sx, int64_t kc,
                      int64_t n, int W) {
    if (sk != 1 || W != AMR || (dt != LD_F32 && dt != LD_F16 && dt != LD_BF16)) return 0;
    const int64_t nkb = (kc + AK - 1) / AK;
    for (int64_t i = 0; i < AMR; i++) {
        const int64_t row = base + i * sx;
        for (int64_t kb = 0; kb < nkb; kb++) {
            uint16_t *d = dst + (kb * AMR + i) * AK;
            if (i >= n) {
                _mm512_storeu_si512((void *)d, _mm512_setzero_si512());
                continue;
            }
            const int64_t k0 = kb * AK, left = kc - k0;
            const __m512 lo = load16(dt, data, row + k0, mask16(left));
            const __m512 hi = load16(dt, data, row + k0 + 16, mask16(left - 16));
            _mm512_storeu_si512((void *)d, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
    return 1;
}

static void micro_amx(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) {
    if (!t_configured) configure();
    const char *a = a_, *b = b_;
    const int64_t sc = ldc * (int64_t)sizeof(float);
    float *c1 = c + 16 * ldc;
    if (load) {
        _tile_loadd(0, c, sc);
        _tile_loadd(1, c + 16, sc);
        _tile_loadd(2, c1, sc);
        _tile_loadd(3, c1 + 16, sc);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t k = 0; k < kc; k += AK, a += AMR * AK * 2, b += ANR * AK * 2) {
        _tile_loadd(4, a, AK * 2);
        _tile_loadd(6, b, ANR * 4);
        _tile_loadd(7, b + 64, ANR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(5, a + 16 * AK * 2, AK * 2);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, sc);
    _tile_stored(1, c + 16, sc);
    _tile_stored(2, c1, sc);
    _tile_stored(3, c1 + 16, sc);
}

/* Six accumulators (tmm0-5) against the same two inputs: TDPBF16PS has a
 * latency of several issue slots, and four chains did not fill them. */
double ld_gemm_amx_probe(long reps, float *sink) {
    (void)sink; /* the tiles' sums are never stored: the instructions cannot be dropped */
    if (!t_configured) configure();
    _Alignas(64) uint16_t ones[16 * 32]; /* bf16 1.0: each rep adds 32 to every sum, which stays finite */
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3f80;
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    for (long r = 0; r < reps; r++) {
        _tile_dpbf16ps(0, 6, 7);
        _tile_dpbf16ps(1, 6, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_dpbf16ps(3, 6, 7);
        _tile_dpbf16ps(4, 6, 7);
        _tile_dpbf16ps(5, 6, 7);
    }
    return (double)reps * 6 * 16 * 16 * 32 * 2;
}

/* ld_gemm_micro_bias_fn: the tile, then its biases added while its rows
 * are in L1 (sum, then bn, then bm: bias_rows' order and bits). */
static void micro_amx_bias(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int load, const float *bn,
                           const float *bm) {
    micro_amx(kc, a, b, c, ldc, load);
    const __m512 n0 = bn ? _mm512_loadu_ps(bn) : _mm512_setzero_ps(), n1 = bn ? _mm512_loadu_ps(bn + 16) : n0;
    for (int i = 0; i < AMR; i++) {
        float *r = c + i * ldc;
        __m512 r0 = _mm512_loadu_ps(r), r1 = _mm512_loadu_ps(r + 16);
        if (bn) {
            r0 = _mm512_add_ps(r0, n0);
            r1 = _mm512_add_ps(r1, n1);
        }
        if (bm) {
            const __m512 m = _mm512_set1_ps(bm[i]);
            r0 = _mm512_add_ps(r0, m);
            r1 = _mm512_add_ps(r1, m);
        }
        _mm512_storeu_ps(r, r0);
        _mm512_storeu_ps(r + 16, r1);
    }
}

static ld_gemm_kernel k_amx;
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void make_kernel(void) {
    k_amx = *ld_gemm_kernel_avx512_bf16();
    k_amx.name = "amx-bf16 32x32";
    k_amx.mr = AMR;
    k_amx.nr = ANR;
    /* deep k blocks: every block costs a load and a store of each C tile,
     * whose 16 rows are a row of C apart (a page each for wide products);
     * 2048 (K up to 3072 in one block) ran the U-Net's products 1.0-1.6x
     * faster than 512 (bench_gemm, 2 threads, the shapes of docs/performance.md) */
    k_amx.mc = 256;
    k_amx.kc = 2048;
    k_amx.nc = 1024;
    k_amx.micro = micro_amx;
    k_amx.micro_bias = micro_amx_bias;
    k_amx.stack = NULL;
    k_amx.kstep = AK;
    k_amx.relayout_a = relayout_a_amx;
    k_amx.pack_a = pack_a_amx;
}

const ld_gemm_kernel *ld_gemm_kernel_amx_bf16(void) {
    pthread_once(&k_once, make_kernel);
    return &k_amx;
}
