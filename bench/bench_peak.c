/* The denominator of every "ratio to peak": prints, on 1 thread and on all
 * threads, the FMA probe of `leandiff bench` (ld_cpu_peak_gflops, median of
 * 5), the measured clock and the theoretical limit it implies (cpu_theory.h),
 * and the FMA instructions per cycle the probe reached; on a CPU with AMX
 * also the bf16 tile unit's probe and limit. bench/peak.sh runs
 * it next to ../shared/tools/fma_peak.c in the same minute. With --cores it
 * also bounces a cache line between every pair of the CPUs it may run on and
 * prints the round trips: cores that share an L3 pass a line far faster than
 * cores on different L3s (CCDs) or sockets, where every line one thread
 * writes and another reads crosses between caches (docs/performance.md).
 *
 *     build/bench_peak [--threads N] [--seconds 0.3] [--cores]
 */
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/cpu_theory.h"
#include "tensor/gemm.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of 5 runs of a probe (GFLOP/s). */
static double median5(double (*probe)(int threads, double seconds), int threads, double seconds) {
    double r[5];
    for (int i = 0; i < 5; i++) r[i] = probe(threads, seconds);
    qsort(r, 5, sizeof r[0], cmp_double);
    return r[2];
}

static void row(int threads, double seconds) {
    const double g = median5(ld_cpu_peak_gflops, threads, seconds);
    ld_cpu_theory t;
    ld_cpu_theory_get(threads, &t);
    printf("%7d %12.1f %9.2f %5d %5d %14.1f %8.1f%% %12.2f\n", threads, g, t.clock_ghz, t.lanes, t.fma_pipes,
           t.gflops, t.gflops > 0 ? 100 * g / t.gflops : 0, ld_cpu_fma_per_cycle(&t, g));
}

/* The AMX bf16 tile unit's probe and limit (tensor/gemm.h), where the CPU
 * has AMX: bf16 products run there, not on the FMA pipes above. */
static void amx_rows(int threads, double seconds) {
    if (!ld_cpu_has_amx()) return;
    printf("amx bf16 tiles: %7s %12s %14s %9s\n", "threads", "probe GFLOP/s", "theory GFLOP/s", "of theory");
    for (int n = 1; n <= threads; n += threads > 1 ? threads - 1 : 1) {
        const double g = median5(ld_gemm_amx_peak_gflops, n, seconds);
        const double th = ld_gemm_amx_theory_gflops(n, ld_cpu_clock_ghz(n, 0.1));
        printf("                %7d %12.1f %14.1f %8.1f%%\n", n, g, th, th > 0 ? 100 * g / th : 0);
    }
}

/* ---- core-to-core round trips ---- */

enum { BOUNCES = 20000, MAX_CPUS = 16 };

typedef struct {
    _Alignas(64) atomic_int turn; /* odd: the other thread's move */
    int cpu, ok;
} bounce;

static int pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s) == 0;
}

static void *answer(void *arg) {
    bounce *b = arg;
    b->ok = pin(b->cpu);
    atomic_store(&b->turn, 0); /* ready, pinned or not */
    for (int i = 0; i < BOUNCES; i++) {
        while (atomic_load_explicit(&b->turn, memory_order_acquire) != 2 * i + 1) {
        }
        atomic_store_explicit(&b->turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

/* Median round trip in ns of a line bounced between CPUs a (this thread)
 * and c; negative if either thread could not be pinned. */
static double round_trip(int a, int c) {
    double r[3];
    for (int k = 0; k < 3; k++) {
        static bounce b;
        atomic_store(&b.turn, -1);
        b.cpu = c;
        b.ok = 0;
        pthread_t t;
        if (!pin(a) || pthread_create(&t, NULL, answer, &b)) return -1;
        while (atomic_load(&b.turn) != 0) {
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < BOUNCES; i++) {
            atomic_store_explicit(&b.turn, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&b.turn, memory_order_acquire) != 2 * i + 2) {
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_join(t, NULL);
        if (!b.ok) return -1;
        r[k] = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / BOUNCES;
    }
    qsort(r, 3, sizeof r[0], cmp_double);
    return r[1];
}

static void cores(void) {
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine)) {
        printf("core-to-core: cannot read this process's CPUs\n");
        return;
    }
    int cpu[MAX_CPUS], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < MAX_CPUS; c++)
        if (CPU_ISSET(c, &mine)) cpu[n++] = c;
    if (n < 2) {
        printf("core-to-core: only one CPU to run on\n");
        return;
    }
    printf("core-to-core round trip of a cache line, ns (median of 3 x %d)%s\n%5s", BOUNCES,
           n == MAX_CPUS ? ", first 16 CPUs" : "", "cpu");
    for (int j = 0; j < n; j++) printf(" %6d", cpu[j]);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%5d", cpu[i]);
        for (int j = 0; j < n; j++) {
            const double ns = j <= i ? 0 : round_trip(cpu[i], cpu[j]);
            if (j <= i) printf(" %6s", "-");
            else if (ns < 0) printf(" %6s", "n/a");
            else printf(" %6.0f", ns);
        }
        printf("\n");
    }
    sched_setaffinity(0, sizeof mine, &mine);
}

int main(int argc, char **argv) {
    int threads = omp_get_num_procs();
    double seconds = 0.3;
    int show_cores = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--cores")) show_cores = 1;
        else {
            fprintf(stderr, "usage: bench_peak [--threads N] [--seconds S] [--cores]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 1024 || !(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "bench_peak: --threads must be 1..1024 and --seconds in (0, 60]\n");
        return 2;
    }
    const ld_cpu_info *ci = ld_cpu_info_get();
    printf("cpu %s (%s), path %s\n", ci->model, ci->id, ld_cpu_level_name(ld_cpu_level()));
    printf("%7s %12s %9s %5s %5s %14s %9s %12s\n", "threads", "probe GFLOP/s", "clock GHz", "lanes", "pipes",
           "theory GFLOP/s", "of theory", "FMA/cycle");
    row(1, seconds);
    if (threads > 1) row(threads, seconds);
    amx_rows(threads, seconds);
    if (show_cores) cores();
    return 0;
}
