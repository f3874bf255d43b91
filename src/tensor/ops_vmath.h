/* Vector math for the kernels compiled once per instruction set (included by
 * ops_act_kernel.h, not a public header). The
 * including file defines OPS_VBYTES (bytes per vector: 16, 32 or 64) and
 * OPS_BCAST(x) (a vector of x). Uses the GCC/Clang vector extension.
 *
 * Only plain IEEE operations (no fused multiply-add), so every lane gives the
 * same bits whatever the vector width: results do not depend on which
 * instruction set or which split of the data computed them. */
#ifndef LD_TENSOR_OPS_VMATH_H
#define LD_TENSOR_OPS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(OPS_VBYTES)));
typedef int32_t vi __attribute__((vector_size(OPS_VBYTES)));
typedef uint32_t vu __attribute__((vector_size(OPS_VBYTES)));
#define VL ((int)(OPS_VBYTES / sizeof(float)))
static const vf vzero = {0};

static inline vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* lane-wise m ? a : b for a comparison mask m */
static inline vf vselect(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

static inline vf vmax(vf a, vf b) { return vselect(a > b, a, b); }

/* The kernels below work on VN vectors at once, every step on all of them
 * before the next: their long dependency chains (polynomials, exp) then
 * overlap instead of leaving the floating-point units waiting on latency
 * (GELU ran 1.8x faster with 4 than with 1 on a Zen 5 core, and exp, SiLU
 * and GELU 1.3-1.6x faster again with 8, on AVX2 as on AVX-512; 16 was no
 * better). Each lane still sees the same operations, so the results are the
 * same bits as one at a time. */
#define VN 8
#define VN_EACH _Pragma("GCC unroll 8") for (int l = 0; l < VN; l++)
/* gcc kept vexp_n and verfc_n out of line, their VN vectors passing through
 * the stack: inlined, SiLU went 0.36 -> 0.29 ns and GELU 0.71 -> 0.59 ns per
 * element (one Zen 5 core), the same bits */
#define VM_INLINE static inline __attribute__((always_inline))

/* x[l] = exp(x[l]), Cephes-style: x = n ln2 + r with |r| <= ln2/2, a
 * degree-6 polynomial, times 2^n; about 1 ulp. x below -87.3 (incl. -inf)
 * gives exactly 0; x is clamped at 88 from above (exp(88) = 1.65e38).
 * n = round(x log2 e) comes from adding 1.5 * 2^23, which leaves n in the
 * low bits of the sum (two additions instead of a floor by conversions). */
VM_INLINE void vexp_n(vf *x) {
    const vf lo = OPS_BCAST(-87.33654f), hi = OPS_BCAST(88.0f), magic = OPS_BCAST(12582912.0f);
    vi under[VN];
    vf t[VN], fn[VN], r[VN], y[VN];
    VN_EACH {
        under[l] = x[l] < lo;
        x[l] = vselect(under[l], lo, x[l]);
    }
    VN_EACH x[l] = vselect(x[l] > hi, hi, x[l]);
    VN_EACH t[l] = x[l] * OPS_BCAST(1.44269504088896341f) + magic;
    VN_EACH fn[l] = t[l] - magic;
    VN_EACH r[l] = x[l] - fn[l] * OPS_BCAST(0.693359375f);
    VN_EACH r[l] = r[l] - fn[l] * OPS_BCAST(-2.12194440e-4f);
    VN_EACH y[l] = OPS_BCAST(1.9875691500e-4f) * r[l] + OPS_BCAST(1.3981999507e-3f);
    VN_EACH y[l] = y[l] * r[l] + OPS_BCAST(8.3334519073e-3f);
    VN_EACH y[l] = y[l] * r[l] + OPS_BCAST(4.1665795894e-2f);
    VN_EACH y[l] = y[l] * r[l] + OPS_BCAST(1.6666665459e-1f);
    VN_EACH y[l] = y[l] * r[l] + OPS_BCAST(5.0000001201e-1f);
    VN_EACH y[l] = y[l] * r[l] * r[l] + r[l] + OPS_BCAST(1.0f);
    /* 2^n: the sum's bits are those of 1.5 * 2^23 plus n; shifting n + 127 into the exponent drops the rest */
    VN_EACH x[l] = (vf)((vi)(y[l] * (vf)(((vu)t[l] + 127u) << 23)) & ~under[l]);
}

/* x[l] = erfc(x[l]) with relative error below ~2e-7 everywhere (Chebyshev
 * fit of erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), z = |x|;
 * erfc(-z) = 2 - erfc(z)). */
VM_INLINE void verfc_n(vf *x) {
    static const float c[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f};
    vi neg[VN];
    vf z[VN], t[VN], p[VN];
    VN_EACH {
        neg[l] = x[l] < vzero;
        z[l] = vselect(neg[l], -x[l], x[l]);
    }
    VN_EACH t[l] = OPS_BCAST(1.0f) / (OPS_BCAST(1.0f) + OPS_BCAST(0.5f) * z[l]);
    VN_EACH p[l] = OPS_BCAST(c[0]);
    _Pragma("GCC unroll 10") for (int i = 1; i < 10; i++) VN_EACH p[l] = p[l] * t[l] + OPS_BCAST(c[i]);
    VN_EACH p[l] = p[l] - z[l] * z[l];
    vexp_n(p);
    VN_EACH {
        vf r = t[l] * p[l];
        x[l] = vselect(neg[l], OPS_BCAST(2.0f) - r, r);
    }
}

#endif
