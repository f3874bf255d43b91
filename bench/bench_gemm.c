/* GEMM benchmark: GFLOP/s of ld_gemm on square sizes and on the shapes the
 * models use, next to an FMA peak probe taken in the same run and, when
 * libopenblas.so.0 can be dlopen'ed, OpenBLAS cblas_sgemm on the same shapes.
 * Built by `make`, never run by the tests.
 *
 *     build/bench_gemm [--threads N] [--bf16] [--quick] [--no-openblas] [--only NAME] [--shape MxNxK[t]]
 *                      [--conv Cin,Cout,side] [--ref-peak GFLOPS]
 *     LEANDIFF_CPU=avx2 build/bench_gemm      # force a kernel path
 *
 * Shapes: "linear" rows are y = x W^T with W [N, K] row-major (as in the
 * models, B = W^T is column-major) in the weight dtype shown; "1x1" rows are
 * the pointwise convolutions of Stage B/C, W [M = Cout, K = Cin] times the
 * NCHW activation [K, N = H*W]; "conv3x3" rows are implicit GEMMs (M = Cout,
 * N = H*W, K = 9*Cin) packed straight from NCHW through ld_im2col_fill;
 * OpenBLAS gets an explicit im2col matrix there (its im2col time is not
 * counted), or "-" when that matrix would exceed 1 GB. The model rows are
 * the products that carry most of the FLOPs of each model at 1024x1024
 * (the U-Net at batch 2 as a CFG step, the others at batch 1), recorded
 * from `leandiff bench` runs; the share of the model's GEMM FLOPs is in
 * the row name.
 *
 * Denominators, all from this run: the FMA probe of `leandiff bench`, the
 * theoretical limit (base/cpu_theory.h: threads x 2 FMA pipes x lanes x 2 x
 * measured clock; with --bf16 on a CPU with AVX-512 BF16 dot products, which
 * do two multiply-adds per fp32 lane, twice that), and with --ref-peak the
 * figure of ../shared/tools/fma_peak.c measured just before.
 */
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/cpu_theory.h"
#include "tensor/gemm.h"

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);

static sgemm_fn g_sgemm;
static set_threads_fn g_blas_threads;

/* TO_CH: a linear layer written back channel-major, a 1x1 product whose
 * B(k, p) = x[p*K + k] is token-major (ld_linear_to_channels). */
enum { KIND_SQUARE, KIND_LINEAR, KIND_POINTWISE, KIND_CONV, KIND_WGRAD, KIND_TO_CH };

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
    } else if (s->kind == KIND_WGRAD) {
        ld_mat A = {LD_F32, j->a, 1, j->M}, B = {s->wdtype, j->w, j->N, 1};
        ld_gemm(j->M, j->N, j->K, &A, &B, j->c, j->N, 0.0f, NULL, NULL);
    } else if (s->kind == KIND_POINTWISE) {
        ld_mat A = {s->wdtype, j->w, j->K, 1}, B = ld_mat_f32(j->a, j->N, 1);
        ld_gemm(j->M, j->N, j->K, &A, &B, j->c, j->N, 0.0f, NULL, NULL);
    } else if (s->kind == KIND_TO_CH) {
        ld_mat A = {s->wdtype, j->w, j->K, 1}, B = ld_mat_f32(j->a, 1, j->K);
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
    else if (s->kind == KIND_WGRAD)
        g_sgemm(101, 112, 111, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->a, (int)j->M, j->wf, (int)j->N, 0.0f, j->c,
                (int)j->N);
    else if (s->kind == KIND_POINTWISE)
        g_sgemm(101, 111, 111, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->wf, (int)j->K, j->a, (int)j->N, 0.0f, j->c,
                (int)j->N);
    else if (s->kind == KIND_TO_CH)
        g_sgemm(101, 111, 112, (int)j->M, (int)j->N, (int)j->K, 1.0f, j->wf, (int)j->K, j->a, (int)j->K, 0.0f, j->c,
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
    {"unet linear 1024x1280x1280", KIND_LINEAR, 1024, 1280, 1280, 0, 0, 0, LD_F32},
    {"unet cross-kv 77x640x2048", KIND_LINEAR, 77, 640, 2048, 0, 0, 0, LD_F32},
    /* KOALA-700M U-Net, 1024x1024, batch 2 (GEMM 58 %, conv3x3 42 % of its FLOPs) */
    {"koala geglu 32^2 (17%)", KIND_LINEAR, 2048, 10240, 1280, 0, 0, 0, LD_F16},
    {"koala attn 32^2 (14%)", KIND_LINEAR, 2048, 1280, 1280, 0, 0, 0, LD_F16},
    {"koala ff-out 32^2 (9%)", KIND_LINEAR, 2048, 1280, 5120, 0, 0, 0, LD_F16},
    {"koala geglu 64^2 (7%)", KIND_LINEAR, 4096, 5120, 640, 0, 0, 0, LD_F16},
    {"koala attn 64^2 (6%)", KIND_LINEAR, 8192, 640, 640, 0, 0, 0, LD_F16},
    {"koala conv3x3 320ch 128^2 (5%)", KIND_CONV, 0, 0, 0, 320, 320, 128, LD_F16},
    {"koala conv3x3 640ch 128^2 (5%)", KIND_CONV, 0, 0, 0, 640, 640, 128, LD_F16},
    {"koala conv3x3 1280ch 64^2 (5%)", KIND_CONV, 0, 0, 0, 1280, 1280, 64, LD_F16},
    {"koala conv3x3 640ch 64^2 (4%)", KIND_CONV, 0, 0, 0, 640, 640, 64, LD_F16},
    {"koala conv3x3 1280ch 32^2 (4%)", KIND_CONV, 0, 0, 0, 1280, 1280, 32, LD_F16},
    /* SDXL VAE decoder, 1024x1024 in 2 x 2 tiles of 72 latent pixels */
    {"vae conv3x3 512ch 144^2 (22%)", KIND_CONV, 0, 0, 0, 512, 512, 144, LD_F16},
    {"vae conv3x3 256ch 288^2 (16%)", KIND_CONV, 0, 0, 0, 256, 256, 288, LD_F16},
    {"vae conv3x3 128ch 576^2 (16%)", KIND_CONV, 0, 0, 0, 128, 128, 576, LD_F16},
    {"vae conv3x3 512ch 288^2 (13%)", KIND_CONV, 0, 0, 0, 512, 512, 288, LD_F16},
    /* WuerstchenPrior (Stage C) at 24^2 */
    {"wprior 1x1 1536->6144 (32%)", KIND_POINTWISE, 6144, 576, 1536, 0, 0, 0, LD_F16},
    {"wprior 1x1 6144->1536 (32%)", KIND_POINTWISE, 1536, 576, 6144, 0, 0, 0, LD_F16},
    {"wprior attn q/k/v 576x1536x1536", KIND_LINEAR, 576, 1536, 1536, 0, 0, 0, LD_F16},
    {"wprior attn out to NCHW 1536x576x1536", KIND_TO_CH, 1536, 576, 1536, 0, 0, 0, LD_F16},
    /* WuerstchenDiffNeXt (Stage B) at 1024x1024 */
    {"wdec 1x1 2304->5120 32^2 (28%)", KIND_POINTWISE, 5120, 1024, 2304, 0, 0, 0, LD_F16},
    {"wdec 1x1 5120->1280 32^2 (16%)", KIND_POINTWISE, 1280, 1024, 5120, 0, 0, 0, LD_F16},
    {"wdec 1x1 1664->2560 64^2 (10%)", KIND_POINTWISE, 2560, 4096, 1664, 0, 0, 0, LD_F16},
    {"wdec attn q/k/v 1024x1280x1280 (12%)", KIND_LINEAR, 1024, 1280, 1280, 0, 0, 0, LD_F16},
    /* Stable Cascade lite decoder (Stage B lite) at 1024x1024 */
    {"cdec 1x1 4608->1152 32^2 (23%)", KIND_POINTWISE, 1152, 1024, 4608, 0, 0, 0, LD_F16},
    {"cdec 1x1 1152->4608 32^2 (22%)", KIND_POINTWISE, 4608, 1024, 1152, 0, 0, 0, LD_F16},
    {"cdec attn q/k/v 1024x1152x1152 (17%)", KIND_LINEAR, 1024, 1152, 1152, 0, 0, 0, LD_F16},
    {"cdec 1x1 2304->576 64^2 (7%)", KIND_POINTWISE, 576, 4096, 2304, 0, 0, 0, LD_F16},
    {"cdec 1x1 1280->320 128^2 (5%)", KIND_POINTWISE, 320, 16384, 1280, 0, 0, 0, LD_F16},
    {"train fwd 4096 tok geglu 640->5120", KIND_LINEAR, 4096, 5120, 640, 0, 0, 0, LD_F32},
    {"train dX 4096 tok geglu 640->5120", KIND_SQUARE, 4096, 640, 5120, 0, 0, 0, LD_F32},
    {"train dW 4096 tok geglu 640->5120", KIND_WGRAD, 5120, 640, 4096, 0, 0, 0, LD_F32},
    {"train fwd 4096 tok ff-out 2560->640", KIND_LINEAR, 4096, 640, 2560, 0, 0, 0, LD_F32},
    {"train dX 4096 tok ff-out 2560->640", KIND_SQUARE, 4096, 2560, 640, 0, 0, 0, LD_F32},
    {"train dW 4096 tok ff-out 2560->640", KIND_WGRAD, 640, 2560, 4096, 0, 0, 0, LD_F32},
    {"train fwd 1024 tok attn 1280", KIND_LINEAR, 1024, 1280, 1280, 0, 0, 0, LD_F32},
    {"train dX 1024 tok attn 1280", KIND_SQUARE, 1024, 1280, 1280, 0, 0, 0, LD_F32},
    {"train dW 1024 tok attn 1280", KIND_WGRAD, 1280, 1280, 1024, 0, 0, 0, LD_F32},
    {"train fwd 256 tok attn 1280", KIND_LINEAR, 256, 1280, 1280, 0, 0, 0, LD_F32},
    {"train dX 256 tok attn 1280", KIND_SQUARE, 256, 1280, 1280, 0, 0, 0, LD_F32},
    {"train dW 256 tok attn 1280", KIND_WGRAD, 1280, 1280, 256, 0, 0, 0, LD_F32},
};

int main(int argc, char **argv) {
    int threads = 0, bf16 = 0, quick = 0, use_blas = 1;
    double ref_peak = 0;
    const char *only = NULL;
    shape custom = {"custom", KIND_SQUARE, 0, 0, 0, 0, 0, 0, LD_F32};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-openblas")) use_blas = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--ref-peak") && i + 1 < argc) {
            ref_peak = atof(argv[++i]);
            if (!(ref_peak > 0 && ref_peak < 1e6)) {
                fprintf(stderr, "--ref-peak wants the GFLOP/s of ../shared/tools/fma_peak.c (a positive number)\n");
                return 2;
            }
        }
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
            fprintf(stderr, "usage: %s [--threads N] [--bf16] [--quick] [--no-openblas] [--only SUBSTRING] [--shape MxNxK[t]] [--conv Cin,Cout,side] [--ref-peak GFLOPS]\n", argv[0]);
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
    printf("cpu: %s (%s), path %s, kernel %s, %d threads\n", ci->model, ci->id, ld_cpu_level_name(ld_cpu_level()),
           ld_gemm_kernel_name(), threads);
    printf("FMA probe: %.1f GFLOP/s, %.1f GFLOP per core-second\n", peak0, core0);
    ld_cpu_theory th;
    ld_cpu_theory_get(threads, &th);
    /* AVX-512 BF16 dot products do two multiply-adds per fp32 lane */
    double limit_factor = bf16 && ld_cpu_has_bf16() ? 2.0 : 1.0;
    double limit = th.gflops * limit_factor;
    printf("theory: %d threads x %d FMA pipes x %d lanes x 2 flop x %.2f GHz = %.1f GFLOP/s%s\n", th.threads,
           th.fma_pipes, th.lanes, th.clock_ghz, th.gflops,
           limit_factor > 1 ? " (x 2 for the bf16 dot products: the limit the ratios below use)" : "");
    if (bf16 && ld_cpu_has_amx())
        printf("amx: bf16 products of depth a multiple of 32 run on AMX tiles, whose limit is %.1f GFLOP/s "
               "(%d threads x 1024 flop x %.2f GHz; probe %.1f): far above the ratios' limit below\n",
               ld_gemm_amx_theory_gflops(threads, th.clock_ghz), threads, th.clock_ghz,
               ld_gemm_amx_peak_gflops(threads, 0.3));
    if (ref_peak > 0) printf("fma_peak.c (--ref-peak): %.1f GFLOP/s\n", ref_peak);
    printf("OpenBLAS: %s\n\n", g_sgemm ? "libopenblas.so.0 cblas_sgemm" : "not available");
    printf("GFLOP/s is wall-clock; 'per core-s' is GFLOP per CPU-second of all threads (immune to time-sharing\n"
           "with other processes) and its ratio to the probe's per core-second rate.%s\n\n",
           limit_factor > 1 ? " Every ratio (theory, probe, fma_peak.c)\nis to twice the f32 figure: the bf16 limit." : "");
    printf("| shape | M x N x K | kernel | leandiff GFLOP/s | of theory | ratio to probe | of fma_peak.c | per core-s | "
           "core ratio | OpenBLAS GFLOP/s | OpenBLAS per core-s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
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
        /* a: the f32 activation operand; w: the weights (or B of a square row) */
        const int w_is_a = s->kind == KIND_CONV || s->kind == KIND_POINTWISE || s->kind == KIND_TO_CH;
        int64_t an = s->kind == KIND_CONV ? 0 : w_is_a ? j.K * j.N : j.M * j.K;
        int64_t wn = w_is_a ? j.M * j.K : j.N * j.K;
        /* dW rows: a = dY [K tokens, M], w = X [K tokens, N] (same sizes) */
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
        char theory_col[32] = "-", ref_col[32] = "-";
        if (limit > 0) snprintf(theory_col, sizeof theory_col, "%.1f%%", 100 * gf / limit);
        if (ref_peak > 0) snprintf(ref_col, sizeof ref_col, "%.1f%%", 100 * gf / (ref_peak * limit_factor));
        printf("| %s | %lldx%lldx%lld | %s | %.1f | %s | %.2f | %s | %.1f | %.2f | %s | %s |\n", s->name,
               (long long)j.M, (long long)j.N, (long long)j.K, ld_gemm_kernel_name_for(j.M, j.N, j.K), gf, theory_col,
               gf / (peak0 * limit_factor), ref_col, gc, gc / (core0 * limit_factor), blas_col, blas_core);
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
