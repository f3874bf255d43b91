/* DDPMWuerstchen behind the scheduler interface (scheduler.h): the cosine
 * schedule and step of ddpm_wuerstchen.c as one more sampler family, so the
 * Wuerstchen v2 and Stable Cascade stages run through the same denoising loop
 * as the SDXL family. Its timesteps are ratios in [0, 1] (the last entry, 0,
 * is only the final "previous" timestep: calls = entries - 1), scale_input is
 * the identity, init_noise_sigma 1, and every step draws its noise (diffusers
 * draws it even at the last step, where it is multiplied by zero), so the
 * random stream matches the reference pipelines. */
#include "sched/ddpm_wuerstchen.h"
#include "sched/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copies the ld_ddpmw's list into the interface's timesteps [points]. */
static ld_status publish(ld_ctx *ctx, ld_scheduler *s) {
    const ld_ddpmw *d = s->ddpmw;
    LD_TRY(sched_alloc(ctx, s, d->n_points, 0));
    memcpy(s->timesteps, d->timesteps, sizeof(float) * (size_t)d->n_points);
    s->calls = d->n_steps;
    s->npoints = d->n_points;
    s->init_noise_sigma = 1.0f;
    return LD_OK;
}

static ld_status ddpmw_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    LD_TRY(ld_ddpmw_set_timesteps(ctx, s->ddpmw, steps));
    return publish(ctx, s);
}

ld_status sched_ddpmw_set_custom(ld_ctx *ctx, ld_scheduler *s, const float *points, int n_points) {
    LD_TRY(ld_ddpmw_set_custom(ctx, s->ddpmw, points, n_points));
    s->steps = n_points - 1;
    return publish(ctx, s);
}

static void ddpmw_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    (void)s, (void)call;
    if (out != x) memcpy(out, x, sizeof(float) * (size_t)n);
}

static ld_status ddpmw_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *eps, float *x, const float *noise,
                            int64_t n) {
    (void)ctx;
    ld_ddpmw_step(s->ddpmw, x, eps, s->timesteps[call], x, noise, n);
    return LD_OK;
}

static int ddpmw_needs_noise(const ld_scheduler *s, int call) {
    (void)s, (void)call;
    return 1;
}

/* DDPMWuerstchenScheduler.add_noise: sqrt(acp(t)) x0 + sqrt(1 - acp(t)) noise. */
static void ddpmw_add_noise(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out,
                            int64_t n) {
    const float a = ld_ddpmw_alpha_cumprod(s->ddpmw, s->timesteps[call]), sa = sqrtf(a), s1 = sqrtf(1.0f - a);
    for (int64_t i = 0; i < n; i++) out[i] = sa * x0[i] + s1 * noise[i];
}

const sched_family sched_ddpmw_family = {ddpmw_set_timesteps, ddpmw_scale, ddpmw_step, ddpmw_needs_noise,
                                         ddpmw_add_noise};

ld_status sched_ddpmw_config(ld_ctx *ctx, ld_scheduler *s, const json_t *cfg, const char *where) {
    s->ddpmw = calloc(1, sizeof *s->ddpmw);
    if (!s->ddpmw) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    LD_TRY(ld_ddpmw_init(ctx, s->ddpmw, where, cfg));
    s->num_train = LD_DDPMW_MAX_POINTS - 1; /* the most steps a list holds */
    return LD_OK;
}

float sched_ddpmw_alpha_cumprod(const ld_scheduler *s, int call) {
    return ld_ddpmw_alpha_cumprod(s->ddpmw, s->timesteps[call]);
}
