/* Attention benchmark: GFLOP/s of ld_attention (ops.h; it runs
 * ld_gemm_attention, the GEMM micro-kernel version, whenever that can get its
 * scratch), counting 4*Lq*Lk*D flops per head (the QK^T and PV products), on
 * the shapes the models use, next to the FMA peak probe of the same run.
 * Built by `make`, never run by the tests.
 *
 *     build/bench_attention [--threads N] [--precision f32|bf16] [--only SUBSTRING] [--sliced | --train]
 *
 * --sliced calls ld_attention_checked (default slices of about 4 GFLOP, no
 * context) the way the models do, instead of one ld_attention per shape.
 * --train times a training step's attention instead: the forward that keeps
 * the log-sum-exp (ld_attention_train_forward) and the blocked backward
 * (ld_attention_backward, dq, dk and dv), counting the products they run:
 * 4 for the forward's two, 10 for the backward's five (x H*Lq*Lk*D). The
 * earlier two-pass backward ran seven, counted as 14 (results published
 * before it changed count 18 in all).
 * With --precision bf16 (ld_gemm_set_precision) on a CPU with AVX-512 BF16,
 * whose dot products do two multiply-adds per f32 lane, the ratios are to
 * twice the probe: the bf16 limit.
 * Like bench_gemm it also reports GFLOP per CPU-second of all threads, which
 * is not disturbed by other processes time-sharing the cores.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "train/grad_ops.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int64_t H, Lq, Lk, D;
} shape;

static const shape SHAPES[] = {
    {"koala self-attn 64^2 (640 ch)", 10, 4096, 4096, 64},
    {"koala cross-attn 64^2", 10, 4096, 77, 64},
    {"koala self-attn 32^2 (1280 ch)", 20, 1024, 1024, 64},
    {"koala cross-attn 32^2", 20, 1024, 77, 64},
    {"vae mid attn 128^2 (512 ch, 1 head)", 1, 16384, 16384, 512},
    /* Wuerstchen / Stable Cascade attend over their own tokens and the 77
     * of the condition (kv = cat(x, cond)) */
    {"wuerstchen/cascade prior 24^2 (1536 ch)", 24, 576, 653, 64},
    {"wuerstchen decoder 64^2 (640 ch)", 10, 4096, 4173, 64},
    {"wuerstchen decoder 32^2 (1280 ch)", 20, 1024, 1101, 64},
    {"wuerstchen decoder 16^2 (1280 ch)", 20, 256, 333, 64},
};

int main(int argc, char **argv) {
    int threads = 0, bf16 = 0, sliced = 0, train = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "f32") || !strcmp(argv[i + 1], "bf16"))) {
            bf16 = !strcmp(argv[++i], "bf16");
        } else if (!strcmp(argv[i], "--sliced")) {
            sliced = 1;
        } else if (!strcmp(argv[i], "--train")) {
            train = 1;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--precision f32|bf16] [--only SUBSTRING] [--sliced | --train]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
    if (bf16) ld_gemm_set_precision(LD_PRECISION_BF16);
    /* AVX-512 BF16 dot products do two multiply-adds per f32 lane */
    const double limit_factor = bf16 && ld_cpu_has_bf16() ? 2.0 : 1.0;
    double t0 = now(), c0 = cpu_now();
    double peak = ld_cpu_peak_gflops(threads, 0.5);
    double peak_core = peak * (now() - t0) / (cpu_now() - c0);
    printf("cpu: %s (%s), path %s, %d threads, precision %s%s; FMA probe %.1f GFLOP/s, %.1f per core-second%s\n\n",
           ld_cpu_info_get()->model, ld_cpu_info_get()->id, ld_cpu_level_name(ld_cpu_level()), threads,
           bf16 ? "bf16" : "f32",
           sliced ? ", sliced (ld_attention_checked)" : train ? ", training forward + backward" : "", peak,
           peak_core, limit_factor > 1 ? " (ratios are to twice these: the bf16 limit)" : "");
    peak *= limit_factor;
    peak_core *= limit_factor;
    printf("| shape | H x Lq x Lk x D | GFLOP/s | ratio to probe | per core-s | core ratio |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        if (only && !strstr(s->name, only)) continue;
        int64_t HD = s->H * s->D;
        float *q = malloc(sizeof(float) * (size_t)(s->Lq * HD)), *o = malloc(sizeof(float) * (size_t)(s->Lq * HD));
        float *k = malloc(sizeof(float) * (size_t)(s->Lk * HD)), *v = malloc(sizeof(float) * (size_t)(s->Lk * HD));
        /* training: the saved lse, dout, and dq, dk, dv */
        float *lse = train ? malloc(sizeof(float) * (size_t)(s->H * s->Lq)) : NULL;
        float *dout = train ? malloc(sizeof(float) * (size_t)(s->Lq * HD)) : NULL;
        float *dq = train ? calloc((size_t)(s->Lq * HD), sizeof(float)) : NULL;
        float *dk = train ? calloc((size_t)(s->Lk * HD), sizeof(float)) : NULL;
        float *dv = train ? calloc((size_t)(s->Lk * HD), sizeof(float)) : NULL;
        if (!q || !o || !k || !v || (train && (!lse || !dout || !dq || !dk || !dv))) {
            printf("| %s | out of memory |\n", s->name);
            free(q), free(o), free(k), free(v), free(lse), free(dout), free(dq), free(dk), free(dv);
            continue;
        }
        if (train)
            for (int64_t i = 0; i < s->Lq * HD; i++) dout[i] = (float)((i * 15485863) % 1000) / 1000.0f - 0.5f;
        for (int64_t i = 0; i < s->Lq * HD; i++) q[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (int64_t i = 0; i < s->Lk * HD; i++) {
            k[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
            v[i] = (float)((i * 1299709) % 1000) / 1000.0f - 0.5f;
        }
        memset(o, 0, sizeof(float) * (size_t)(s->Lq * HD));
        ld_attn_params p = {0};
        p.scale = 0.125f;
        double flops = (train ? 14.0 : 4.0) * s->H * s->Lq * s->Lk * s->D;
        {
            double best = 1e30, start = now(), c_start = cpu_now();
            int reps = 0;
            do {
                double a = now();
                if (train) {
                    if (!ld_attention_train_forward(o, HD, lse, q, HD, k, HD, v, HD, 1, s->H, s->Lq, s->Lk, s->D,
                                                    p.scale) ||
                        !ld_attention_backward(dout, HD, o, lse, q, HD, k, HD, v, HD, 1, s->H, s->Lq, s->Lk, s->D,
                                               p.scale, dq, dk, dv))
                        break;
                } else if (sliced)
                    ld_attention_checked(NULL, "bench", 0, o, HD, q, HD, k, HD, v, HD, 1, s->H, s->Lq, s->Lk, s->D, &p);
                else
                    ld_attention(o, HD, q, HD, k, HD, v, HD, 1, s->H, s->Lq, s->Lk, s->D, &p);
                double t = now() - a;
                if (t < best) best = t;
                reps++;
            } while (now() - start < 1.0 && reps < 20);
            const double best_cpu = (cpu_now() - c_start) / reps; /* mean: see bench_gemm.c */
            printf("| %s | %lldx%lldx%lldx%lld | %.1f | %.2f | %.1f | %.2f |\n", s->name, (long long)s->H,
                   (long long)s->Lq, (long long)s->Lk, (long long)s->D, flops / best * 1e-9, flops / best * 1e-9 / peak,
                   flops / best_cpu * 1e-9, flops / best_cpu * 1e-9 / peak_core);
            fflush(stdout);
        }
        fflush(stdout);
        free(q), free(o), free(k), free(v), free(lse), free(dout), free(dq), free(dk), free(dv);
    }
    return 0;
}
