/* GEMM benchmark: GFLOP/s of ld_gemm on square sizes and on the shapes the
 * models use, next to an FMA peak probe taken in the same run and, when
 * libopenblas.so.0 can be dlopen'ed, OpenBLAS cblas_sgemm on the same shapes.
 * Built by `make`, never run by the tests.
 *
 *     build/bench_gemm [--threads N] [--bf16] [--quick] [--no-openblas] [--only NAME] [--shape MxNxK[t]]
 *                      [--conv Cin,Cout,side]
 *     LEANDIFF_CPU=avx2 build/bench_gemm      # force a kernel path
 *
 * Shapes: "linear" rows are y = x W^T with W [N, K] row-major (as in the
 * models, B = W^T is column-major) in the weight dtype shown; "conv3x3" rows
 * are implicit GEMMs (M = Cout, N = H*W, K = 9*Cin) packed straight from
 * NCHW through ld_im2col_fill; OpenBLAS gets an explicit im2col matrix there
 * (its im2col time is not counted), or "-" when that matrix would exceed 1 GB.
 */
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "tensor/gemm.h"

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);

static sgemm_fn g_sgemm;
static set_threads_fn g_blas_threads;

enum { KIND_SQUARE, KIND_LINEAR, KIND_CONV };

typedef struct {
    const char *name;
    int kind;
    int64_t M, N, K;   /* square/linear */
    int64_t C, Cout, HW; /* conv: Cin, Cout, side */
    ld_dtype wdtype;
} shape;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill_random(float *x, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* CPU seconds used by all threads of the process: unlike wall time it does
 * not count time the threads spent descheduled by other load on the machine. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best wall seconds per call of fn over at least `min_time` (and >= 1 call
 * after a warm-up); *cpu gets the mean CPU seconds per call (the CPU time of
 * other threads is only brought up to date now and then, so single short
 * calls can under-count it; the mean over all calls does not). */
typedef void (*run_fn)(void *);
static double time_best(run_fn fn, void *arg, double min_time, int warm, double *cpu) {
    if (warm) fn(arg);
    double best = 1e30, t_start = now(), c_start = cpu_now();
    int reps = 0;
    do {
        double t0 = now();
        fn(arg);
        double t = now() - t0;
        if (t < best) best = t;
        reps++;
    } while (now() - t_start < min_time || reps < 1);
    *cpu = (cpu_now() - c_start) / reps;
    return best;
}

/* The FMA probe, also as GFLOP per CPU-second (one core's rate). */
static double probe(int threads, double *per_core) {
    double t0 = now(), c0 = cpu_now();
    double g = ld_cpu_peak_gflops(threads, 0.5);
    double t = now() - t0, c = cpu_now() - c0;
    *per_core = g * t / c;
    return g;
}

typedef struct {
    const shape *s;
    float *a, *c, *x, *col;
    void *w; /* [N, K] weights (linear/conv) or B [K, N] (square), in s->wdtype */
    float *wf; /* f32 copy of w for OpenBLAS */
    int64_t M, N, K;
} job;

static void run_ld(void *p) {
    job *j = p;
    const shape *s = j->s;
    if (s->kind == KIND_SQUARE) {
        ld_mat A = ld_mat_f32(j->a, j->K, 1), B = {s->wdtype, j->w, j->N, 1};
        ld_gemm(j->M, j->N, j->K, &A, &B, j->c, j->N, 0.0f, NULL, NULL);
    } else if (s->kind == KIND_LINEAR) {
        ld_mat A = ld_mat_f32(j->a, j->K, 1), B = {s->wdtype, j->w, 1, j->K};
        ld_gemm(j->M, j->N, j->K, &A, &B, j->c, j->N, 0.0f, NULL, NULL);
    } else {
        ld_im2col src = {j->x, s->C, s->HW, s->HW, 3, 3, 1, 1, 1, 1, 1, 1, s->HW, s->HW, 0};
        ld_gemm_bfill f = {ld_im2col_fill, &src};
        ld_mat A = {s->wdtype, j->w, j->K, 1};
        ld_gemm_fill_b(j->M, j->N, j->K, &A, &f, j->c, j->N, 0.0f, NULL, NULL);
    }
}

static void run_blas(void *p) {
    job *j = p;
    const shape *s = j->s;
    if (s->kind == KIND_SQUARE)
        g_sgemm(101, 111, 111, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->a, (int)j->K, j->wf, (int)j->N, 0.0f, j->c,
                (int)j->N);
    else if (s->kind == KIND_LINEAR)
        g_sgemm(101, 111, 112, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->a, (int)j->K, j->wf, (int)j->K, 0.0f, j->c,
                (int)j->N);
    else
        g_sgemm(101, 111, 111, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->wf, (int)j->K, j->col, (int)j->N, 0.0f,
                j->c, (int)j->N);
}

static void *make_weights(ld_dtype dt, const float *src, int64_t n) {
    if (dt == LD_F32) {
        float *w = malloc(sizeof(float) * (size_t)n);
        if (w) memcpy(w, src, sizeof(float) * (size_t)n);
        return w;
    }
    uint16_t *w = malloc(2 * (size_t)n);
    if (!w) return NULL;
    for (int64_t i = 0; i < n; i++) w[i] = dt == LD_F16 ? ld_f32_to_f16(src[i]) : ld_f32_to_bf16(src[i]);
    return w;
}

static const shape SHAPES[] = {
    {"square 512", KIND_SQUARE, 512, 512, 512, 0, 0, 0, LD_F32},
    {"square 1024", KIND_SQUARE, 1024, 1024, 1024, 0, 0, 0, LD_F32},
    {"square 2048", KIND_SQUARE, 2048, 2048, 2048, 0, 0, 0, LD_F32},
    {"unet linear 4096x640x640", KIND_LINEAR, 4096, 640, 640, 0, 0, 0, LD_F32},
    {"unet linear 4096x640x640 f16", KIND_LINEAR, 4096, 640, 640, 0, 0, 0, LD_F16},
    {"unet linear 1024x1280x1280", KIND_LINEAR, 1024, 1280, 1280, 0, 0, 0, LD_F32},
    {"unet linear 1024x1280x1280 f16", KIND_LINEAR, 1024, 1280, 1280, 0, 0, 0, LD_F16},
    {"unet geglu 4096x5120x640", KIND_LINEAR, 4096, 5120, 640, 0, 0, 0, LD_F32},
    {"unet ff-out 4096x640x2560", KIND_LINEAR, 4096, 640, 2560, 0, 0, 0, LD_F32},
    {"unet cross-kv 77x640x2048", KIND_LINEAR, 77, 640, 2048, 0, 0, 0, LD_F32},
    {"unet conv3x3 320ch 128^2", KIND_CONV, 0, 0, 0, 320, 320, 128, LD_F32},
    {"unet conv3x3 640ch 64^2", KIND_CONV, 0, 0, 0, 640, 640, 64, LD_F32},
    {"unet conv3x3 1280ch 32^2", KIND_CONV, 0, 0, 0, 1280, 1280, 32, LD_F32},
    {"vae conv3x3 512ch 128^2", KIND_CONV, 0, 0, 0, 512, 512, 128, LD_F32},
    {"vae conv3x3 512ch 256^2", KIND_CONV, 0, 0, 0, 512, 512, 256, LD_F32},
    {"vae conv3x3 256ch 512^2", KIND_CONV, 0, 0, 0, 256, 256, 512, LD_F32},
    {"vae conv3x3 128ch 1024^2", KIND_CONV, 0, 0, 0, 128, 128, 1024, LD_F32},
};

int main(int argc, char **argv) {
    int threads = 0, bf16 = 0, quick = 0, use_blas = 1;
    const char *only = NULL;
    shape custom = {"custom", KIND_SQUARE, 0, 0, 0, 0, 0, 0, LD_F32};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-openblas")) use_blas = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            long long m, n, k;
            char t = 'n';
            if (sscanf(argv[++i], "%lldx%lldx%lld%c", &m, &n, &k, &t) < 3 || m < 1 || n < 1 || k < 1) {
                fprintf(stderr, "--shape wants MxNxK (append t for B = W^T)\n");
                return 2;
            }
            custom = (shape){"custom", t == 't' ? KIND_LINEAR : KIND_SQUARE, m, n, k, 0, 0, 0, LD_F32};
            only = "custom";
        } else if (!strcmp(argv[i], "--conv") && i + 1 < argc) {
            long long c, o, hw;
            if (sscanf(argv[++i], "%lld,%lld,%lld", &c, &o, &hw) != 3 || c < 1 || o < 1 || hw < 1) {
                fprintf(stderr, "--conv wants Cin,Cout,side\n");
                return 2;
            }
            custom = (shape){"custom", KIND_CONV, 0, 0, 0, c, o, hw, LD_F32};
            only = "custom";
        }
        else {
            fprintf(stderr, "usage: %s [--threads N] [--bf16] [--quick] [--no-openblas] [--only SUBSTRING] [--shape MxNxK[t]] [--conv Cin,Cout,side]\n", argv[0]);
            return 2;
        }
    }
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
    if (bf16) ld_gemm_set_precision(LD_PRECISION_BF16);
    void *blas = use_blas ? dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL) : NULL;
    if (blas) {
        g_sgemm = (sgemm_fn)(uintptr_t)dlsym(blas, "cblas_sgemm");
        g_blas_threads = (set_threads_fn)(uintptr_t)dlsym(blas, "openblas_set_num_threads");
        if (g_blas_threads) g_blas_threads(threads);
    }
    const ld_cpu_info *ci = ld_cpu_info_get();
    double core0;
    double peak0 = probe(threads, &core0);
    printf("cpu: %s, path %s, kernel %s, %d threads\n", ci->model, ld_cpu_level_name(ld_cpu_level()),
           ld_gemm_kernel_name(), threads);
    printf("FMA probe: %.1f GFLOP/s, %.1f GFLOP per core-second\n", peak0, core0);
    printf("OpenBLAS: %s\n\n", g_sgemm ? "libopenblas.so.0 cblas_sgemm" : "not available");
    printf("GFLOP/s is wall-clock; 'per core-s' is GFLOP per CPU-second of all threads (immune to time-sharing\n"
           "with other processes) and its ratio to the probe's per core-second rate.\n\n");
    printf("| shape | M x N x K | leandiff GFLOP/s | ratio to probe | per core-s | core ratio | OpenBLAS GFLOP/s | "
           "OpenBLAS per core-s |\n|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    double min_time = quick ? 0.2 : 1.0;
    const size_t nshapes = sizeof SHAPES / sizeof SHAPES[0];
    for (size_t si = 0; si <= nshapes; si++) {
        const shape *s = si < nshapes ? &SHAPES[si] : &custom;
        if (!s->M && !s->C) continue;
        if (only && !strstr(s->name, only)) continue;
        job j = {.s = s};
        if (s->kind == KIND_CONV) {
            j.M = s->Cout;
            j.N = s->HW * s->HW;
            j.K = 9 * s->C;
        } else {
            j.M = s->M;
            j.N = s->N;
            j.K = s->K;
        }
        if (quick && (double)j.M * j.N * j.K > 3e10) continue;
        int64_t an = s->kind == KIND_CONV ? 0 : j.M * j.K;
        int64_t wn = j.N * j.K;
        if (s->kind == KIND_CONV) wn = j.M * j.K;
        j.a = an ? malloc(sizeof(float) * (size_t)an) : NULL;
        j.c = malloc(sizeof(float) * (size_t)(j.M * j.N));
        j.wf = malloc(sizeof(float) * (size_t)wn);
        if (s->kind == KIND_CONV) {
            j.x = malloc(sizeof(float) * (size_t)(s->C * s->HW * s->HW));
            fill_random(j.x, s->C * s->HW * s->HW, 7);
        }
        if (!j.c || !j.wf || (an && !j.a) || (s->kind == KIND_CONV && !j.x)) {
            printf("| %s | out of memory |\n", s->name);
            continue;
        }
        if (an) fill_random(j.a, an, 1);
        memset(j.c, 0, sizeof(float) * (size_t)(j.M * j.N)); /* page faults out of the timing */
        fill_random(j.wf, wn, 2);
        j.w = make_weights(s->wdtype, j.wf, wn);
        /* OpenBLAS sees the same (rounded) weights */
        if (s->wdtype != LD_F32) ld_convert_to_f32(j.wf, j.w, s->wdtype, 0, wn);
        double flops = 2.0 * j.M * j.N * j.K;
        int big = flops > 1e11;
        double cpu;
        double t = time_best(run_ld, &j, big ? 0 : min_time, !big, &cpu);
        double gf = flops / t * 1e-9, gc = flops / cpu * 1e-9;
        char blas_col[64] = "-", blas_core[64] = "-";
        if (g_sgemm) {
            int ok = 1;
            if (s->kind == KIND_CONV) {
                double bytes = 4.0 * j.K * j.N;
                j.col = bytes < 1e9 ? malloc((size_t)bytes) : NULL;
                if (j.col) {
                    ld_im2col src = {j.x, s->C, s->HW, s->HW, 3, 3, 1, 1, 1, 1, 1, 1, s->HW, s->HW, 0};
                    ld_im2col_fill(&src, 0, j.K, 0, j.N, j.col, j.N);
                } else {
                    ok = 0;
                }
            }
            if (ok) {
                double cb;
                double tb = time_best(run_blas, &j, big ? 0 : min_time, !big, &cb);
                snprintf(blas_col, sizeof blas_col, "%.1f", flops / tb * 1e-9);
                snprintf(blas_core, sizeof blas_core, "%.1f", flops / cb * 1e-9);
            }
        }
        printf("| %s | %lldx%lldx%lld | %.1f | %.2f | %.1f | %.2f | %s | %s |\n", s->name, (long long)j.M,
               (long long)j.N, (long long)j.K, gf, gf / peak0, gc, gc / core0, blas_col, blas_core);
        fflush(stdout);
        free(j.a);
        free(j.c);
        free(j.x);
        free(j.w);
        free(j.wf);
        free(j.col);
    }
    double core1;
    double peak1 = probe(threads, &core1);
    printf("\nFMA probe again at the end: %.1f GFLOP/s, %.1f per core-second (ratios above use the first probe)\n",
           peak1, core1);
    ld_gemm_release_buffers();
    if (blas) dlclose(blas);
    return 0;
}
