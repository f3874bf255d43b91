/* Philox4x32-10 + Box-Muller normal generator (definition in rng.h). */
#include "sched/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ld_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0; /* the bump after the last round is never used */
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void ld_rng_init(ld_rng *r, uint64_t seed) {
    r->seed = seed;
    r->offset = 0;
}

void ld_rng_randn(ld_rng *r, float *out, int64_t n) {
    const double k = (double)2.3283064e-10f;
    const double k2 = (double)(float)(2.3283064e-10 * 6.2831855);
    const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    const uint32_t offset = r->offset++;
    /* Each element depends only on (seed, offset, i): safe to split across
     * threads in any way without changing a single value. */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        const uint32_t ctr[4] = {offset, 0, (uint32_t)i, 0};
        uint32_t g[4];
        ld_philox4x32_10(ctr, key, g);
        double u = (double)g[0] * k + k / 2;
        double v = (double)g[1] * k2 + k2 / 2;
        out[i] = (float)(sqrt(-2.0 * log(u)) * sin(v));
    }
}
