/* Portable standard-normal generator: Philox4x32-10 + Box-Muller, the
 * "NV"/"cuda" RNG of AUTOMATIC1111 (rng_philox.py) and stable-diffusion.cpp
 * (--rng cuda). The same seed gives the same numbers on every machine and
 * for every thread count. The numbers follow rng_philox.py exactly (Box-Muller
 * in double, as numpy promotes it); stable-diffusion.cpp evaluates the same
 * formula in float, so its values can differ from these in the last bits.
 *
 * Definition. Call number c (0, 1, 2, ... one per ld_rng_randn call) fills
 * element i (0-based, row-major) of its output from
 *     Philox4x32-10(counter = {c, 0, i, 0}, key = {seed & 0xffffffff, seed >> 32})
 * taking the first two output words x, y and
 *     u = x * K + K / 2,  v = y * K2 + K2 / 2        (in double)
 *     out = (float)(sqrt(-2 ln u) * sin v)
 * with K = (float)2.3283064e-10 (2^-32 rounded to float32) and
 * K2 = (float)(2.3283064e-10 * 6.2831855), both widened to double, as
 * rng_philox.py computes them (numpy promotes uint32 * float32 to float64).
 * Only the double-precision log/sin of the C library enter, and the final
 * rounding to float32 hides their sub-ulp differences between libms.
 *
 *     ld_rng r; ld_rng_init(&r, seed);
 *     ld_rng_randn(&r, latents, 4 * 128 * 128);   // call 0: initial latents
 *     ld_rng_randn(&r, noise, n);                 // call 1: first ancestral step
 */
#ifndef LD_SCHED_RNG_H
#define LD_SCHED_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t seed;
    uint32_t offset; /* number of ld_rng_randn calls so far */
} ld_rng;

void ld_rng_init(ld_rng *r, uint64_t seed);
/* n <= 2^32 values (counter word 2 holds the element index). */
void ld_rng_randn(ld_rng *r, float *out, int64_t n);

/* The Philox4x32-10 block function (exposed for the known-answer tests). */
void ld_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

#endif
