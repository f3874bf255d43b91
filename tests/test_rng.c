/* Philox4x32-10 normal generator: Random123 known-answer vectors, an
 * independent plain implementation of the whole definition in rng.h,
 * independence from the thread count, call offsets, and moments. */
#include "sched/rng.h"
#include "test_util.h"

#include <omp.h>

/* Plain reference: 32x32->64 multiply done by 16-bit halves, rounds written
 * as the Random123 paper states them (bump the key *before* rounds 2..10). */
static uint32_t mulhi32(uint32_t a, uint32_t b, uint32_t *lo) {
    uint32_t a0 = a & 0xffff, a1 = a >> 16, b0 = b & 0xffff, b1 = b >> 16;
    uint64_t p00 = (uint64_t)a0 * b0, p01 = (uint64_t)a0 * b1, p10 = (uint64_t)a1 * b0, p11 = (uint64_t)a1 * b1;
    uint64_t mid = (p00 >> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    *lo = (uint32_t)((p00 & 0xffff) | ((mid & 0xffff) << 16));
    return (uint32_t)(p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16));
}

static void naive_philox(uint32_t c[4], uint32_t k[2]) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k[0] += 0x9E3779B9u;
            k[1] += 0xBB67AE85u;
        }
        uint32_t lo0, lo1;
        uint32_t hi0 = mulhi32(0xD2511F53u, c[0], &lo0);
        uint32_t hi1 = mulhi32(0xCD9E8D57u, c[2], &lo1);
        uint32_t y0 = hi1 ^ c[1] ^ k[0], y1 = lo1, y2 = hi0 ^ c[3] ^ k[1], y3 = lo0;
        c[0] = y0, c[1] = y1, c[2] = y2, c[3] = y3;
    }
}

static float naive_randn(uint64_t seed, uint32_t call, uint32_t i) {
    uint32_t c[4] = {call, 0, i, 0}, k[2] = {(uint32_t)(seed & 0xffffffffu), (uint32_t)(seed >> 32)};
    naive_philox(c, k);
    float kf = 2.3283064e-10f, k2f = (float)(2.3283064e-10 * 6.2831855);
    double u = c[0] * (double)kf + (double)(kf / 2);
    double v = c[1] * (double)k2f + (double)(k2f / 2);
    return (float)(sqrt(-2.0 * log(u)) * sin(v));
}

static void known_answers(void) {
    static const uint32_t kat[3][10] = {
        /* counter[4], key[2], expected[4]: Random123 kat_vectors, philox4x32 10 */
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        uint32_t out[4], c[4], k[2];
        ld_philox4x32_10(kat[t], kat[t] + 4, out);
        CHECK(!memcmp(out, kat[t] + 6, sizeof out), "KAT %d: %08x %08x %08x %08x", t, out[0], out[1], out[2], out[3]);
        memcpy(c, kat[t], sizeof c);
        memcpy(k, kat[t] + 4, sizeof k);
        naive_philox(c, k);
        CHECK(!memcmp(c, kat[t] + 6, sizeof c), "naive KAT %d", t);
    }
}

int main(void) {
    known_answers();

    /* library vs the plain implementation, several seeds (incl. high bits) and calls */
    const uint64_t seeds[] = {0, 1, 42, 0xffffffffull, 0x123456789abcdefull, UINT64_MAX};
    enum { N = 4099 };
    static float a[N], b[N];
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        ld_rng r;
        ld_rng_init(&r, seeds[s]);
        for (uint32_t call = 0; call < 3; call++) {
            ld_rng_randn(&r, a, N);
            int bad = 0;
            for (uint32_t i = 0; i < N; i++)
                if (a[i] != naive_randn(seeds[s], call, i)) bad++;
            CHECK(bad == 0, "seed %llu call %u: %d values differ from the plain implementation",
                  (unsigned long long)seeds[s], call, bad);
        }
    }

    /* thread-count independence on a large (parallel) request */
    int64_t big = 1 << 20;
    float *x1 = malloc(sizeof(float) * big), *x2 = malloc(sizeof(float) * big);
    ld_rng r1, r2;
    omp_set_num_threads(1);
    ld_rng_init(&r1, 42);
    ld_rng_randn(&r1, x1, big);
    omp_set_num_threads(4);
    ld_rng_init(&r2, 42);
    ld_rng_randn(&r2, x2, big);
    CHECK(!memcmp(x1, x2, sizeof(float) * big), "1 thread and 4 threads give different numbers");
    /* a shorter request is a prefix of a longer one (element i only depends on i) */
    ld_rng_init(&r1, 42);
    ld_rng_randn(&r1, a, N);
    CHECK(!memcmp(a, x1, sizeof a), "prefix property");
    /* the next call continues with new numbers */
    ld_rng_randn(&r1, b, N);
    CHECK(memcmp(a, b, sizeof a) != 0 && r1.offset == 2, "second call repeats the first");

    /* moments of N(0,1) over 2^20 samples: mean, variance, 4th moment, tails */
    double m1 = 0, m2 = 0, m4 = 0;
    int64_t tail = 0, nonfinite = 0;
    for (int64_t i = 0; i < big; i++) {
        double v = x1[i];
        if (!isfinite(v)) nonfinite++;
        m1 += v;
        m2 += v * v;
        m4 += v * v * v * v;
        if (fabs(v) > 1.959964) tail++;
    }
    CHECK(nonfinite == 0, "%lld non-finite values", (long long)nonfinite);
    m1 /= big, m2 /= big, m4 /= big;
    double tail_frac = (double)tail / big;
    printf("mean %.5f var %.5f m4 %.4f P(|x|>1.96) %.5f\n", m1, m2, m4, tail_frac);
    CHECK(fabs(m1) < 0.005, "mean %g", m1);
    CHECK(fabs(m2 - 1) < 0.01, "variance %g", m2);
    CHECK(fabs(m4 - 3) < 0.05, "fourth moment %g", m4);
    CHECK(fabs(tail_frac - 0.05) < 0.002, "two-sided 5%% tail %g", tail_frac);
    free(x1);
    free(x2);
    return test_finish();
}
