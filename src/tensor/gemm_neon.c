/* NEON (aarch64) GEMM micro-kernel, compiled only on aarch64 (used when
 * base/cpu.h reports level neon): an 8 x 12 tile in 24 q-register
 * accumulators; per k, three vector loads of B, two of A, and 24 FMAs by
 * lane. Packing helpers: f16/bf16 -> f32 conversion 4 lanes at a time and
 * the transposing gather of weight panels (4 x 4 register transposes); both
 * are exact, so the packed panels equal the portable ones bit for bit.
 * Layouts: gemm_kernels.h. Tested under qemu by tools/cross-test-arm64.sh.
 */
#include "tensor/gemm_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

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

/* 4 f16 / bf16 values to f32 (exact). */
static inline float32x4_t f16x4_to_f32(const uint16_t *s) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s))); }
static inline float32x4_t bf16x4_to_f32(const uint16_t *s) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(s), 16)); }

static void convert_neon(float *dst, const void *src, ld_dtype dt, int64_t offset, int64_t n) {
    int64_t i = 0;
    const uint16_t *s = (const uint16_t *)src + offset;
    if (dt == LD_F16) {
        for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, f16x4_to_f32(s + i));
        for (; i < n; i++) dst[i] = ld_f16_to_f32(s[i]);
    } else if (dt == LD_BF16) {
        for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, bf16x4_to_f32(s + i));
        for (; i < n; i++) dst[i] = ld_bf16_to_f32(s[i]);
    } else {
        ld_convert_to_f32(dst, src, dt, offset, n);
    }
}

/* nk <= 4 consecutive elements from data[i] as f32, zeros after them
 * (nothing read past them). */
static inline float32x4_t load4(ld_dtype dt, const void *data, int64_t i, int64_t nk) {
    if (nk == 4) {
        if (dt == LD_F16) return f16x4_to_f32((const uint16_t *)data + i);
        if (dt == LD_BF16) return bf16x4_to_f32((const uint16_t *)data + i);
        return vld1q_f32((const float *)data + i);
    }
    float t[4] = {0};
    convert_neon(t, data, dt, i, nk);
    return vld1q_f32(t);
}

/* ld_gemm_gather_t_fn: tile[k*W + x] = f32(data[base + x*sx + k]), in 4 x 4
 * blocks: 4 rows of 4 k values loaded, transposed in registers, stored as 4
 * k rows. W (8 or 12) is a multiple of 4, so a partial block of columns
 * (x >= n, filled with zeros here) still lies inside the tile. */
static void gather_t_neon(float *tile, const void *data, ld_dtype dt, int64_t base, int64_t sx, int64_t kc,
                          int64_t n, int W) {
    const float32x4_t zero = vdupq_n_f32(0.0f);
    for (int64_t x0 = 0; x0 < n; x0 += 4) {
        const int64_t nx = n - x0 < 4 ? n - x0 : 4;
        for (int64_t k0 = 0; k0 < kc; k0 += 4) {
            const int64_t nk = kc - k0 < 4 ? kc - k0 : 4;
            float32x4_t r[4];
            for (int64_t x = 0; x < 4; x++) r[x] = x < nx ? load4(dt, data, base + (x0 + x) * sx + k0, nk) : zero;
            const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
            const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
            float32x4_t c[4];
            c[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
            c[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
            c[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
            c[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
            if (W - x0 >= 4) {
                for (int64_t k = 0; k < nk; k++) vst1q_f32(tile + (k0 + k) * W + x0, c[k]);
            } else { /* a row width that is not a multiple of 4: nothing past it */
                for (int64_t k = 0; k < nk; k++) {
                    float v[4];
                    vst1q_f32(v, c[k]);
                    memcpy(tile + (k0 + k) * W + x0, v, sizeof(float) * (size_t)(W - x0));
                }
            }
        }
    }
}

static const ld_gemm_kernel k_f32 = {
    .name = "neon-f32 8x12", .mr = MR, .nr = NR, .mc = 128, .kc = 256, .nc = 1536,
    .bf16 = 0, .micro = micro_f32_8x12, .convert = convert_neon, .gather_t = gather_t_neon,
};

const ld_gemm_kernel *ld_gemm_kernel_neon_f32(void) { return &k_f32; }

#endif
