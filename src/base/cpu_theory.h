/* The theoretical FMA limit of this machine, to check the probe against.
 *
 *     ld_cpu_theory t;
 *     ld_cpu_theory_get(2, &t);        // clock of 2 busy threads, lanes of the path in force
 *     printf("%.0f GFLOP/s\n", t.gflops);
 *
 * theory = threads x FMA pipes x fp32 lanes x 2 flops x clock. The clock is
 * measured (a chain of dependent register adds, one per cycle on every x86-64
 * and aarch64 core, run on each thread at once); the lanes follow the SIMD
 * path in force (avx512 16, avx2 8, neon 4, portable 1); the pipes are an
 * assumption, 2 (every x86-64 core since Haswell and Zen 1, and the common
 * aarch64 cores). A CPU that runs 512-bit FMAs at half width (Zen 4) does the
 * work of one such pipe: its probe then reads half the theory, which
 * `fma_per_cycle` (the probe over threads x lanes x clock) shows as 1.
 */
#ifndef LD_BASE_CPU_THEORY_H
#define LD_BASE_CPU_THEORY_H

typedef struct {
    int threads;
    int lanes;        /* fp32 lanes of the widest FMA of the path in force */
    int fma_pipes;    /* assumed */
    double clock_ghz; /* measured; 0 where this build cannot measure it */
    double gflops;    /* threads * fma_pipes * lanes * 2 * clock_ghz */
} ld_cpu_theory;

/* Mean clock of `threads` threads (0 = all) each running a dependent add
 * chain for about `seconds`; 0 when the architecture has no measuring loop. */
double ld_cpu_clock_ghz(int threads, double seconds);

void ld_cpu_theory_get(int threads, ld_cpu_theory *t);

/* FMA instructions per cycle per thread that a probe figure implies (for
 * the lanes of `t`): 2 on full-width cores, 1 on half-width ones. */
double ld_cpu_fma_per_cycle(const ld_cpu_theory *t, double probe_gflops);

#endif
