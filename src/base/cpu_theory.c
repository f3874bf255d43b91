/* The machine's theoretical FMA limit from a measured clock (see
 * cpu_theory.h). The clock loop is four dependent adds per iteration in
 * inline assembly, so the compiler can neither fold nor vectorize it. */
#include "base/cpu_theory.h"

#include "base/cpu.h"

#include <omp.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs n (a multiple of 4) dependent adds; 0 where there is no loop. The
 * added value is a register, not an immediate: Intel cores since Golden
 * Cove (Sapphire Rapids) fold chains of immediate adds at rename, several
 * per cycle, and the clock read 13.7 GHz there. */
static int add_chain(long n) {
    long x = 0, one = 1;
#if defined(__x86_64__)
    __asm__ volatile("1:\n\t"
                     "add %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\t"
                     "sub $4, %1\n\tjnz 1b\n"
                     : "+r"(x), "+r"(n)
                     : "r"(one)
                     : "cc");
    return 1;
#elif defined(__aarch64__)
    __asm__ volatile("1:\n\t"
                     "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
                     "subs %1, %1, #4\n\tb.ne 1b\n"
                     : "+r"(x), "+r"(n)
                     : "r"(one)
                     : "cc");
    return 1;
#else
    (void)n;
    (void)x;
    (void)one;
    return 0;
#endif
}

double ld_cpu_clock_ghz(int threads, double seconds) {
    if (threads <= 0) threads = omp_get_num_procs();
    if (seconds <= 0) seconds = 0.05;
    if (!add_chain(4)) return 0;
    double sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        const long round = 4000000; /* about 1 ms */
        add_chain(round * 10);      /* warm up: let the clock ramp */
        long done = 0;
        double t0 = now_seconds(), t = t0;
        while (t - t0 < seconds) {
            add_chain(round);
            done += round;
            t = now_seconds();
        }
        sum += t > t0 ? (double)done / (t - t0) * 1e-9 : 0;
    }
    return sum / threads;
}

void ld_cpu_theory_get(int threads, ld_cpu_theory *t) {
    if (threads <= 0) threads = omp_get_num_procs();
    t->threads = threads;
    switch (ld_cpu_level()) {
    case LD_CPU_AVX512: t->lanes = 16; break;
    case LD_CPU_AVX2: t->lanes = 8; break;
    case LD_CPU_NEON: t->lanes = 4; break;
    default: t->lanes = 1; break;
    }
    t->fma_pipes = 2;
    t->clock_ghz = ld_cpu_clock_ghz(threads, 0.1);
    t->gflops = threads * t->fma_pipes * t->lanes * 2.0 * t->clock_ghz;
}

double ld_cpu_fma_per_cycle(const ld_cpu_theory *t, double probe_gflops) {
    double d = t->threads * t->lanes * 2.0 * t->clock_ghz;
    return d > 0 ? probe_gflops / d : 0;
}
