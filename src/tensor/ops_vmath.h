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

/* exp(x), Cephes-style: x = n ln2 + r with |r| <= ln2/2, a degree-6
 * polynomial, times 2^n; about 1 ulp. x below -87.3 (incl. -inf) gives
 * exactly 0; x is clamped at 88 from above (exp(88) = 1.65e38). */
static inline vf vexp(vf x) {
    const vf lo = OPS_BCAST(-87.33654f), hi = OPS_BCAST(88.0f);
    vi under = x < lo;
    x = vselect(under, lo, x);
    x = vselect(x > hi, hi, x);
    vf fx = x * OPS_BCAST(1.44269504088896341f) + OPS_BCAST(0.5f);
    vi n = __builtin_convertvector(fx, vi); /* truncation; make it floor */
    n += (vi)(__builtin_convertvector(n, vf) > fx);
    vf fn = __builtin_convertvector(n, vf);
    vf r = x - fn * OPS_BCAST(0.693359375f);
    r = r - fn * OPS_BCAST(-2.12194440e-4f);
    vf y = OPS_BCAST(1.9875691500e-4f);
    y = y * r + OPS_BCAST(1.3981999507e-3f);
    y = y * r + OPS_BCAST(8.3334519073e-3f);
    y = y * r + OPS_BCAST(4.1665795894e-2f);
    y = y * r + OPS_BCAST(1.6666665459e-1f);
    y = y * r + OPS_BCAST(5.0000001201e-1f);
    y = y * r * r + r + OPS_BCAST(1.0f);
    vf scale = (vf)((n + 127) << 23);
    return (vf)((vi)(y * scale) & ~under);
}

/* erfc(x) with relative error below ~2e-7 everywhere (Chebyshev fit of
 * erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), z = |x|; erfc(-z) = 2 - erfc(z)). */
static inline vf verfc(vf x) {
    vi neg = x < vzero;
    vf z = vselect(neg, -x, x);
    vf t = OPS_BCAST(1.0f) / (OPS_BCAST(1.0f) + OPS_BCAST(0.5f) * z);
    vf p = OPS_BCAST(0.17087277f);
    p = p * t + OPS_BCAST(-0.82215223f);
    p = p * t + OPS_BCAST(1.48851587f);
    p = p * t + OPS_BCAST(-1.13520398f);
    p = p * t + OPS_BCAST(0.27886807f);
    p = p * t + OPS_BCAST(-0.18628806f);
    p = p * t + OPS_BCAST(0.09678418f);
    p = p * t + OPS_BCAST(0.37409196f);
    p = p * t + OPS_BCAST(1.00002368f);
    p = p * t + OPS_BCAST(-1.26551223f);
    vf r = t * vexp(p - z * z);
    return vselect(neg, OPS_BCAST(2.0f) - r, r);
}

#endif
