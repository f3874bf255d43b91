/* The alpha-based samplers of diffusers: DDIMScheduler (eta 0, as the SDXL
 * pipelines call it) and LCMScheduler (strength 1; a fresh noise draw after
 * every step but the last). Integer timesteps index alphas_cumprod directly;
 * scale_model_input is the identity and init_noise_sigma 1. */
#include "sched/sched_internal.h"

#include <math.h>
#include <stdlib.h>

static void identity_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    (void)s;
    (void)call;
    for (int64_t i = 0; i < n; i++) out[i] = x[i];
}

static void alpha_add_noise(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out,
                            int64_t n) {
    const float a = s->alphas_cumprod[(int)s->timesteps[call]];
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (int64_t i = 0; i < n; i++) out[i] = sa * x0[i] + sb * noise[i];
}

/* x0 and epsilon from the model output at alphas_cumprod a. */
static inline void x0_eps(sched_prediction p, float a, float x, float out, float *x0, float *eps) {
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    if (p == PRED_EPSILON) {
        *x0 = (x - sb * out) / sa;
        *eps = out;
    } else if (p == PRED_V) {
        *x0 = sa * x - sb * out;
        *eps = sa * out + sb * x;
    } else {
        *x0 = out;
        *eps = (x - sa * out) / sb;
    }
}

/* ---- DDIM ---- */

static ld_status ddim_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    double *ts = malloc(sizeof(double) * (size_t)(steps + 2));
    if (!ts) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    int count = steps;
    if (s->spacing == SPACING_LINSPACE) {
        /* np.linspace(0, n - 1, steps).round()[::-1] */
        const double step = steps > 1 ? (double)(s->num_train - 1) / (double)(steps - 1) : 0.0;
        for (int i = 0; i < steps; i++)
            ts[steps - 1 - i] = nearbyint(steps > 1 && i == steps - 1 ? (double)(s->num_train - 1) : i * step);
    } else {
        count = sched_spacing_discrete(s, steps, ts); /* the same integers as Euler's */
    }
    ld_status st = sched_alloc(ctx, s, count, 0);
    for (int i = 0; st == LD_OK && i < count; i++) {
        if (ts[i] < 0 || ts[i] >= s->num_train)
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "DDIM: timestep %g is outside the training range", ts[i]);
        s->timesteps[i] = (float)ts[i];
    }
    s->init_noise_sigma = 1.0f;
    free(ts);
    return st;
}

static ld_status ddim_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                           int64_t n) {
    (void)ctx;
    (void)noise;
    const int t = (int)s->timesteps[call], prev_t = t - s->num_train / s->steps;
    const float a = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    const float c_x0 = sqrtf(a_prev), c_eps = sqrtf(1.0f - a_prev); /* eta 0: std_dev_t = 0 */
    for (int64_t i = 0; i < n; i++) {
        float x0, eps;
        x0_eps(s->prediction, a, x[i], out[i], &x0, &eps);
        x[i] = c_x0 * x0 + c_eps * eps;
    }
    return LD_OK;
}

const sched_family sched_ddim_family = {ddim_set_timesteps, identity_scale, ddim_step, NULL, alpha_add_noise};

/* ---- LCM ---- */

static ld_status lcm_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    const int orig = s->original_steps, k = s->num_train / orig;
    if (orig / steps < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "LCM: %d steps is more than original_inference_steps (%d)", steps,
                       orig);
    LD_TRY(sched_alloc(ctx, s, steps, 0));
    /* lcm_origin_timesteps = [1..orig] * k - 1, reversed; indices floor(linspace(0, orig, steps, endpoint=False)) */
    const double step = (double)orig / (double)steps;
    for (int i = 0; i < steps; i++) {
        const int idx = (int)floor((double)i * step);
        s->timesteps[i] = (float)((orig - idx) * k - 1);
    }
    s->init_noise_sigma = 1.0f;
    return LD_OK;
}

static ld_status lcm_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                          int64_t n) {
    (void)ctx;
    const int t = (int)s->timesteps[call];
    const int prev_t = call + 1 < s->calls ? (int)s->timesteps[call + 1] : t;
    const float a = s->alphas_cumprod[t], a_prev = s->alphas_cumprod[prev_t];
    /* boundary-condition scalings, sigma_data 0.5 */
    const float scaled = (float)t * (float)s->timestep_scaling;
    const float c_skip = 0.25f / (scaled * scaled + 0.25f), c_out = scaled / sqrtf(scaled * scaled + 0.25f);
    const int last = call == s->calls - 1;
    const float sa = sqrtf(a_prev), sb = sqrtf(1.0f - a_prev);
    for (int64_t i = 0; i < n; i++) {
        float x0, eps;
        x0_eps(s->prediction, a, x[i], out[i], &x0, &eps);
        const float denoised = c_out * x0 + c_skip * x[i];
        x[i] = last ? denoised : sa * denoised + sb * noise[i];
    }
    return LD_OK;
}

static int lcm_needs_noise(const ld_scheduler *s, int call) { return call != s->calls - 1; }

const sched_family sched_lcm_family = {lcm_set_timesteps, identity_scale, lcm_step, lcm_needs_noise,
                                       alpha_add_noise};
