/* The one denoising loop (see denoise.h). */
#include "pipeline/denoise.h"

#include "sched/ddpm_wuerstchen.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ld_guidance_combine(ld_guidance form, float scale, const float *first, const float *second, float *out,
                         int64_t n) {
    const float g = scale;
    if (form == LD_GUIDE_CFG) { /* first = uncond, second = cond */
        for (int64_t j = 0; j < n; j++) out[j] = first[j] + g * (second[j] - first[j]);
        return;
    }
    /* torch.lerp(uncond, cond, g) with first = cond, second = uncond: the
     * two-sided form PyTorch uses for accuracy */
    for (int64_t j = 0; j < n; j++) {
        const float c = first[j], u = second[j], dlt = c - u;
        out[j] = fabsf(g) < 0.5f ? u + g * dlt : c - dlt * (1.0f - g);
    }
}

/* Guided steps run as two halves (see model_half). */
static int by_halves(const ld_denoise *d) {
    if (!d->guided || !d->model_half) return 0;
    const char *e = getenv("LEANDIFF_SPLIT_GUIDANCE");
    return !(e && !strcmp(e, "0"));
}

/* Two threads, not inside a parallel region: the halves side by side. */
static int side_by_side(void) { return !omp_in_parallel() && omp_get_max_threads() == 2; }

/* Cancelling halves side by side: the caller's cancel is polled by half 0 (on
 * the calling thread, as leandiff.h promises); a stop (or a failure of
 * either half) is seen by the other half at its next poll. */
typedef struct {
    ld_cancel_fn fn;
    void *user;
    atomic_int stop;
} halves_stop;

static int poll_caller(void *user) {
    halves_stop *h = user;
    if (h->fn && h->fn(h->user)) atomic_store(&h->stop, 1);
    return atomic_load(&h->stop);
}

static int poll_other(void *user) { return atomic_load(&((halves_stop *)user)->stop); }

/* Half 0, then half 1, each on all threads; or on exactly two threads side by
 * side, one thread each. */
static ld_status run_halves(ld_ctx *ctx, const ld_denoise *d, const float *in, int64_t nin, float t, float *out,
                            int64_t n) {
    if (!side_by_side()) {
        for (int h = 0; h < 2; h++) LD_TRY(d->model_half(ctx, d->user, h, in + h * nin, t, out + h * n));
        return LD_OK;
    }
    halves_stop stop = {ctx->cancel, ctx->cancel_user, 0};
    ld_ctx hc[2] = {*ctx, *ctx}; /* each half records its own failure */
    hc[0].cancel = poll_caller, hc[1].cancel = poll_other;
    hc[0].cancel_user = hc[1].cancel_user = &stop;
    ld_status st[2] = {LD_OK, LD_OK};
    /* the caller's per-thread arithmetic settings, for the worker thread too */
    const ld_precision prec = ld_gemm_get_precision();
    const int direct = ld_conv_set_direct(0);
    ld_conv_set_direct(direct);
    #pragma omp parallel num_threads(2)
    {
        const int h = omp_get_thread_num(); /* 0: the calling thread */
        omp_set_num_threads(1);             /* regions inside run on this thread alone */
        ld_gemm_set_precision(prec);
        ld_conv_set_direct(direct);
        st[h] = d->model_half(&hc[h], d->user, h, in + h * nin, t, out + h * n);
        if (st[h] != LD_OK) atomic_store(&stop.stop, 1);
    }
    /* a half's own failure before the other's stop that it caused */
    const int h = st[0] != LD_OK && !(st[0] == LD_ERR_CANCELLED && st[1] != LD_OK) ? 0 : 1;
    if (st[h] == LD_OK) return LD_OK;
    const ld_ctx keep = *ctx;
    *ctx = hc[h];
    ctx->cancel = keep.cancel, ctx->cancel_user = keep.cancel_user;
    return st[h];
}

ld_status ld_denoise_run(ld_ctx *ctx, ld_run *run, ld_scheduler *s, float *x, const ld_denoise *d) {
    int64_t n = 1;
    for (int i = 0; i < d->ndim; i++) n *= d->shape[i];
    const int B = d->guided ? 2 : 1;
    const int64_t nin = d->n_in > n ? d->n_in : n;
    float *in = NULL, *out = NULL, *noise = NULL;
    LD_TRY(ld_malloc(ctx, (void **)&in, sizeof(float) * (size_t)(nin * B), "the model input"));
    ld_status st = ld_malloc(ctx, (void **)&out, sizeof(float) * (size_t)(n * B), "the model output");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&noise, sizeof(float) * (size_t)n, "the step noise");
    const int begin = ld_scheduler_begin(s), runs = ld_scheduler_calls(s) - begin, halves = by_halves(d);
    if (halves)
        ld_log_info("%s: guided steps as two halves, %s", d->stage,
                    side_by_side() ? "side by side, one thread each" : "one after the other");
    ld_run_stage_start(run);
    for (int i = 0; st == LD_OK && i < runs; i++) {
        const int c = begin + i;
        char name[96];
        ld_scheduler_scale_input(s, c, x, in, n);
        if (d->fill_input) d->fill_input(d->user, in);
        if (B == 2) memcpy(in + nin, in, sizeof(float) * (size_t)nin);
        const float t = ld_scheduler_timestep(s, c);
        st = halves ? run_halves(ctx, d, in, nin, t, out, n) : d->model(ctx, d->user, in, B, t, out);
        if (st != LD_OK) break;
        if (d->guided) ld_guidance_combine(d->guidance, d->scale, out, out + n, out, n);
        if (d->preview && (st = d->preview(ctx, d->user, s, c, out, x, in)) != LD_OK) break;
        const int draws = ld_scheduler_needs_noise(s, c);
        if (draws) {
            snprintf(name, sizeof name, "%sstep%d.noise", d->prefix, i);
            if ((st = ld_run_noise(ctx, run, name, d->ndim, d->shape, noise)) != LD_OK) break;
        }
        if ((st = ld_scheduler_step(ctx, s, c, out, x, draws ? noise : NULL, n)) != LD_OK) break;
        if (d->after_step && (st = d->after_step(ctx, d->user, s, c, i == runs - 1, x, in)) != LD_OK) break;
        if ((st = ld_run_check_finite(ctx, x, n, d->stage, i + 1, runs)) != LD_OK) break;
        snprintf(name, sizeof name, "%sstep%d.latents", d->prefix, i);
        if ((st = ld_run_dump(ctx, run, name, LD_F32, d->ndim, d->shape, x)) != LD_OK) break;
        st = ld_run_progress(ctx, run, d->stage, i + 1, runs);
    }
    free(in);
    free(out);
    free(noise);
    return st;
}

ld_status ld_ddpmw_stage_scheduler(ld_ctx *ctx, ld_run *run, const json_t *cfg, const char *where, int steps,
                                   const char *prefix, ld_scheduler **out) {
    LD_TRY(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_DEFAULT, cfg, where, NULL, out));
    ld_status st;
    if (steps > 0) {
        st = ld_scheduler_set_timesteps(ctx, *out, steps);
    } else {
        float d[LD_DDPMW_STAGE_C_POINTS];
        ld_ddpmw_default_stage_c(d);
        st = ld_scheduler_set_custom(ctx, *out, d, LD_DDPMW_STAGE_C_POINTS);
    }
    int count = 0;
    const float *ts = st == LD_OK ? ld_scheduler_timesteps(*out, &count) : NULL;
    const int64_t shape[1] = {count};
    char name[96];
    snprintf(name, sizeof name, "%stimesteps", prefix);
    if (st == LD_OK) st = ld_run_dump(ctx, run, name, LD_F32, 1, shape, ts);
    if (st != LD_OK) {
        ld_scheduler_free(*out);
        *out = NULL;
    }
    return st;
}
