/* One training step of a U-Net (forward with per-block checkpoints,
 * recomputation, backward, AdamW; with --teacher also the teacher's forward
 * and the feature taps of a KOALA distillation step), timed and set against the FMA peak
 * measured in the same process (and an outside figure with --ref-peak):
 * what `bench/RESULTS.md` records for issue 13.
 *
 *     build/bench_train --unet $MODELS/koala-700m/unet --size 1024 [--lora 16] [--batch 1]
 *                       [--runs 2] [--warmup 1] [--precision f32|bf16] [--ref-peak GFLOPS]
 *                       [--teacher $MODELS/sdxl-base/unet [--teacher-precision bf16]]
 *                                                             (a KOALA distillation step instead)
 *     mpirun -np 2 build/bench_train ...    data-parallel: each process a batch, the gradients
 *                                           summed in buckets during the backward (as leandiff train)
 *
 * FLOPs are those the products really ran (LD_FLOPS counters: forward,
 * recomputation and both backward products), inputs are random (the speed
 * of a step does not depend on the values). */
#include "mpi_comm.h"

#include "base/cpu.h"
#include "base/cpu_theory.h"
#include "base/flops.h"
#include "tensor/gemm.h"
#include "distill/student.h"
#include "train/adamw.h"
#include "train/unet_train.h"
#include "io/weights_memory.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, int64_t n, uint64_t s) {
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static ld_status sync_block(ld_ctx *ctx, void *user, int seq) { return ld_grad_sync_ready(ctx, user, seq); }

int main(int argc, char **argv) {
    const char *unet = NULL, *teacher_dir = NULL;
    int size = 1024, batch = 1, lora = 0, runs = 2, warmup = 1, bf16 = 0, teacher_bf16 = -1;
    double ref_peak = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--unet") && v) unet = v, i++;
        else if (!strcmp(a, "--size") && v) size = atoi(v), i++;
        else if (!strcmp(a, "--batch") && v) batch = atoi(v), i++;
        else if (!strcmp(a, "--lora") && v) lora = atoi(v), i++;
        else if (!strcmp(a, "--runs") && v) runs = atoi(v), i++;
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(v), i++;
        else if (!strcmp(a, "--precision") && v) bf16 = !strcmp(v, "bf16"), i++;
        else if (!strcmp(a, "--ref-peak") && v) ref_peak = atof(v), i++;
        else if (!strcmp(a, "--teacher") && v) teacher_dir = v, i++;
        else if (!strcmp(a, "--teacher-precision") && v) teacher_bf16 = !strcmp(v, "bf16"), i++;
        else {
            fprintf(stderr, "usage: bench_train --unet DIR [--size 1024] [--batch 1] [--lora RANK] [--runs 2] "
                            "[--warmup 1] [--precision f32|bf16] [--ref-peak GFLOPS] [--teacher DIR [--teacher-precision f32|bf16]]\n");
            return 2;
        }
    }
    if (!unet || size < 64 || size % 8 || batch < 1 || runs < 1 || warmup < 0 || lora < 0) {
        fprintf(stderr, "bench_train: --unet DIR is required; --size a multiple of 8 >= 64; counts >= 1\n");
        return 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_train_comm *comm = NULL;
    if (mpi_comm_start(ctx, &comm) != LD_OK) {
        fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
        return 1;
    }
    const int procs = comm ? comm->size : 1, rank = comm ? comm->rank : 0;
    ld_weights_prefer_read(1); /* as ld_train_run: weights in huge pages (io/weights_memory.h) */
    ld_train_unet *t = NULL;
    if (ld_train_unet_open(ctx, unet, lora > 0, &t) != LD_OK ||
        (lora > 0 && ld_train_unet_add_lora(ctx, t, &(ld_train_lora_spec){.rank = lora}, 1) != LD_OK)) {
        fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
        return 1;
    }
    ld_train_unet *teacher = NULL;
    if (teacher_dir) { /* the teacher forward only, its attn1 features paired with the student's */
        char **sn = NULL, **tn = NULL;
        size_t np = 0;
        if (ld_train_unet_open(ctx, teacher_dir, 1, &teacher) != LD_OK ||
            ld_student_feature_pairs(ctx, ld_train_unet_config(teacher), ld_train_unet_config(t), LD_FEAT_LAST,
                                     "attn1", &sn, &tn, &np) != LD_OK ||
            ld_train_unet_set_taps(ctx, t, (const char *const *)sn, (int)np) != LD_OK ||
            ld_train_unet_set_taps(ctx, teacher, (const char *const *)tn, (int)np) != LD_OK) {
            fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
            return 1;
        }
        ld_student_pairs_free(sn, tn, np);
        if (teacher_bf16 >= 0) ld_train_unet_set_precision(teacher, teacher_bf16 ? LD_PRECISION_BF16 : LD_PRECISION_F32);
    }
    ld_gemm_set_precision(bf16 ? LD_PRECISION_BF16 : LD_PRECISION_F32);
    ld_train_params *p = ld_train_unet_trainable(t);
    ld_adamw opt;
    if (ld_adamw_init(ctx, &opt, p->total, 1e-5f, 0.9f, 0.999f, 1e-8f, 1e-2f) != LD_OK) {
        fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
        return 1;
    }
    ld_grad_sync sync = {0};
    if (procs > 1) {
        if (ld_grad_sync_init(ctx, &sync, comm, p, 25 << 20) != LD_OK) {
            fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
            return 1;
        }
        ld_train_unet_on_block_done(t, sync_block, &sync);
    }
    const int h = size / 8, C = 4, L = 77, D = 2048, P = 1280;
    const int64_t nx = (int64_t)batch * C * h * h;
    float *x = malloc(sizeof(float) * nx), *out = malloc(sizeof(float) * nx), *dout = malloc(sizeof(float) * nx);
    float *c = malloc(sizeof(float) * (size_t)batch * L * D), *te = malloc(sizeof(float) * (size_t)batch * P);
    float *ts = malloc(sizeof(float) * batch), *ids = malloc(sizeof(float) * 6 * batch);
    fill(x, nx, 1 + (uint64_t)rank), fill(dout, nx, 2), fill(c, (int64_t)batch * L * D, 3), fill(te, (int64_t)batch * P, 4);
    for (int b = 0; b < batch; b++) {
        ts[b] = (float)(100 + 300 * b);
        float v[6] = {(float)size, (float)size, 0, 0, (float)size, (float)size};
        memcpy(ids + 6 * b, v, sizeof v);
    }
    for (int64_t i = 0; i < nx; i++) dout[i] *= 1e-3f;
    double *secs = malloc(sizeof(double) * (size_t)runs), gflop = 0;
    double t_fwd = 0, t_bwd = 0, t_opt = 0; /* phase times summed over the timed runs */
    for (int r = -warmup; r < runs; r++) {
        if (r == 0) ld_flops_reset();
        const double t0 = now();
        if (procs > 1) ld_grad_sync_arm(&sync, lora ? NULL : ld_train_unet_grad_order(t));
        if ((teacher && ld_train_unet_forward(ctx, teacher, x, batch, h, h, ts, c, L, te, ids, out) != LD_OK) ||
            ld_train_unet_forward(ctx, t, x, batch, h, h, ts, c, L, te, ids, out) != LD_OK) {
            fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
            return 1;
        }
        const double t1 = now();
        if (ld_train_unet_backward(ctx, t, dout) != LD_OK || (procs > 1 && ld_grad_sync_finish(ctx, &sync) != LD_OK)) {
            fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
            return 1;
        }
        const double t2 = now();
        ld_adamw_update(&opt, p->value, p->grad, 1e-5f);
        const double t3 = now();
        if (r >= 0) secs[r] = t3 - t0, t_fwd += t1 - t0, t_bwd += t2 - t1, t_opt += t3 - t2;
    }
    gflop = (double)ld_flops_total() * 1e-9 / runs;
    qsort(secs, (size_t)runs, sizeof *secs, cmp_double);
    const double s = secs[runs / 2], gf = gflop / s;
    const int threads = omp_get_max_threads();
    const double peak = ld_cpu_peak_gflops(threads, 0.5) * (bf16 && ld_cpu_has_bf16() ? 2.0 : 1.0);
    ld_cpu_theory th;
    ld_cpu_theory_get(threads, &th);
    const double theory = th.gflops * (bf16 && ld_cpu_has_bf16() ? 2.0 : 1.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_all = (double)ru.ru_maxrss / 1e6; /* GB, summed over the processes */
    if (procs > 1 && comm->sum_doubles(ctx, comm->user, &rss_all, 1) != LD_OK) {
        fprintf(stderr, "bench_train: %s\n", ld_ctx_error(ctx));
        return 1;
    }
    if (rank > 0) {
        ld_grad_sync_free(&sync);
        mpi_comm_stop();
        return 0;
    }
    const ld_cpu_info *ci = ld_cpu_info_get();
    printf("cpu %s (%s), path %s, %d threads, leandiff %s\n", ci->model, ci->id, ld_cpu_level_name(ld_cpu_level()),
           threads, ld_version());
    printf("%s step %s %s, %dx%d batch %d, %s: %.2f s (median of %d), %.1f GFLOP, %.1f GFLOP/s, "
           "%.0f%% of the probe peak (%.0f), %.0f%% of the theoretical limit (%.0f)",
           teacher ? "distillation" : "training", unet, lora ? "LoRA" : "full", size, size, batch, bf16 ? "bf16" : "f32", s, runs, gflop, gf,
           100 * gf / peak, peak, 100 * gf / theory, theory);
    if (ref_peak > 0) printf(", %.0f%% of --ref-peak %.0f", 100 * gf / ref_peak, ref_peak);
    /* call times: attention's products run inside its parallel loop, one per thread, so their
     * times add up across threads and the two sums can exceed the step */
    printf("\n  per step: products (ld_gemm) %.0f GFLOP in %.2f s of calls, implicit-GEMM convolutions %.0f GFLOP in "
           "%.2f s of calls",
           ld_flops_get(LD_FLOPS_GEMM) * 1e-9 / runs, ld_flops_seconds(LD_FLOPS_GEMM) / runs,
           ld_flops_get(LD_FLOPS_CONV) * 1e-9 / runs, ld_flops_seconds(LD_FLOPS_CONV) / runs);
    printf("\n  phases (mean): forward %.2f s, backward with recomputation %.2f s, AdamW %.2f s", t_fwd / runs,
           t_bwd / runs, t_opt / runs);
    printf("\n  trainable parameters %lld%s, activations kept + scratch %.2f GB, peak RSS %.2f GB\n",
           (long long)p->total, lora ? " (LoRA)" : "", (double)ld_train_unet_activation_bytes(t) / 1e9,
           (double)ru.ru_maxrss / 1e6);
    if (teacher) printf("  teacher products in %s\n", teacher_bf16 == 1 || (teacher_bf16 < 0 && bf16) ? "bf16" : "f32");
    printf("  processes %d%s, global batch %d: %.3f images/s, peak RSS of all processes %.2f GB\n", procs,
           procs > 1 ? " (MPI)" : "", procs * batch, procs * batch / s, rss_all);
    ld_grad_sync_free(&sync);
    mpi_comm_stop();
    ld_adamw_free(&opt);
    ld_train_unet_free(t);
    ld_train_unet_free(teacher);
    ld_ctx_free(ctx);
    free(x), free(out), free(dout), free(c), free(te), free(ts), free(ids), free(secs);
    return 0;
}
