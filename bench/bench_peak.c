/* The denominator of every "ratio to peak": prints, on 1 thread and on all
 * threads, the FMA probe of `leandiff bench` (ld_cpu_peak_gflops, median of
 * 5), the measured clock and the theoretical limit it implies (cpu_theory.h),
 * and the FMA instructions per cycle the probe reached. bench/peak.sh runs
 * it next to ../shared/tools/fma_peak.c in the same minute.
 *
 *     build/bench_peak [--threads N] [--seconds 0.3]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/cpu_theory.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void row(int threads, double seconds) {
    double r[5];
    for (int i = 0; i < 5; i++) r[i] = ld_cpu_peak_gflops(threads, seconds);
    qsort(r, 5, sizeof r[0], cmp_double);
    ld_cpu_theory t;
    ld_cpu_theory_get(threads, &t);
    printf("%7d %12.1f %9.2f %5d %5d %14.1f %8.1f%% %12.2f\n", threads, r[2], t.clock_ghz, t.lanes, t.fma_pipes,
           t.gflops, t.gflops > 0 ? 100 * r[2] / t.gflops : 0, ld_cpu_fma_per_cycle(&t, r[2]));
}

int main(int argc, char **argv) {
    int threads = omp_get_num_procs();
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 1024 || !(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "bench_peak: --threads must be 1..1024 and --seconds in (0, 60]\n");
        return 2;
    }
    const ld_cpu_info *ci = ld_cpu_info_get();
    printf("cpu %s (%s family 0x%x), path %s\n", ci->model, ci->vendor[0] ? ci->vendor : "no cpuid", ci->family,
           ld_cpu_level_name(ld_cpu_level()));
    printf("%7s %12s %9s %5s %5s %14s %9s %12s\n", "threads", "probe GFLOP/s", "clock GHz", "lanes", "pipes",
           "theory GFLOP/s", "of theory", "FMA/cycle");
    row(1, seconds);
    if (threads > 1) row(threads, seconds);
    return 0;
}
