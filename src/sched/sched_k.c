/* The sigma-based ("k-diffusion") samplers of diffusers: EulerDiscrete,
 * EulerAncestralDiscrete, HeunDiscrete and KDPM2Discrete, with the Karras
 * schedule where the class has use_karras_sigmas. Tables are built in float64
 * as numpy does and stored in float32; steps are float32 tensor arithmetic in
 * torch's order. Heun and DPM2 make two model calls per step but the last. */
#include "sched/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x0 from the model output at noise level sigma (epsilon, v or sample). */
static inline float pred_x0(sched_prediction p, float x, float out, float sigma) {
    if (p == PRED_EPSILON) return x - sigma * out;
    if (p == PRED_V) {
        float s2p1 = sigma * sigma + 1.0f;
        return out * (-sigma / sqrtf(s2p1)) + x / s2p1;
    }
    return out;
}

static float max_noise_sigma(const ld_scheduler *s, const float *sig, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++)
        if (sig[i] > m) m = sig[i];
    return s->spacing == SPACING_LEADING ? sqrtf(m * m + 1.0f) : m;
}

/* Spacing (or Karras) timesteps and their sigmas, as Euler / Heun / DPM2
 * compute them; returns the count (timesteps ts[], sigmas sg[], both float64). */
static int base_schedule(const ld_scheduler *s, int steps, double *ts, double *sg, int round_karras_t) {
    int count = sched_spacing_discrete(s, steps, ts);
    for (int i = 0; i < count; i++) sg[i] = sched_interp(ts[i], s->sigma_table, s->num_train);
    if (s->schedule == LD_SCHEDULE_KARRAS) {
        const double lo = sg[count - 1], hi = sg[0]; /* in_sigmas[-1], in_sigmas[0] of the interpolated ones */
        count = steps;
        sched_karras(sg, count, lo, hi);
        for (int i = 0; i < count; i++) {
            double t = sched_sigma_to_t(sg[i], s->sigma_table, s->num_train);
            ts[i] = round_karras_t ? nearbyint(t) : t;
        }
    }
    return count;
}

/* ---- Euler, Euler ancestral ---- */

static ld_status euler_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    double *ts = malloc(sizeof(double) * (size_t)(steps + 2)), *sg = malloc(sizeof(double) * (size_t)(steps + 2));
    if (!ts || !sg) {
        free(ts);
        free(sg);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    int count = base_schedule(s, steps, ts, sg, 0);
    ld_status st = sched_store(ctx, s, ts, sg, count, s->final_sigma_min && s->fam == &sched_euler_family);
    if (st == LD_OK) s->init_noise_sigma = max_noise_sigma(s, s->sigmas, count + 1);
    free(ts);
    free(sg);
    return st;
}

static void scale_by_sigma(const ld_scheduler *s, float sigma, const float *x, float *out, int64_t n) {
    (void)s;
    const float d = sqrtf(sigma * sigma + 1.0f);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] / d;
}

static void euler_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    scale_by_sigma(s, s->sigmas[call], x, out, n);
}

static ld_status euler_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                            int64_t n) {
    (void)ctx;
    (void)noise;
    const float sigma = s->sigmas[call], dt = s->sigmas[call + 1] - sigma; /* s_churn 0: sigma_hat = sigma */
    for (int64_t i = 0; i < n; i++) {
        const float d = (x[i] - pred_x0(s->prediction, x[i], out[i], sigma)) / sigma;
        x[i] = x[i] + d * dt;
    }
    return LD_OK;
}

static ld_status euler_a_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                              int64_t n) {
    (void)ctx;
    const float sigma = s->sigmas[call], next = s->sigmas[call + 1];
    const float sf2 = sigma * sigma, st2 = next * next;
    const float up = sqrtf(st2 * (sf2 - st2) / sf2);
    const float down2 = st2 - up * up, down = sqrtf(down2 > 0.0f ? down2 : 0.0f), dt = down - sigma;
    for (int64_t i = 0; i < n; i++) {
        const float d = (x[i] - pred_x0(s->prediction, x[i], out[i], sigma)) / sigma;
        const float prev = x[i] + d * dt;
        x[i] = prev + noise[i] * up;
    }
    return LD_OK;
}

static int always_noise(const ld_scheduler *s, int call) {
    (void)s;
    (void)call;
    return 1;
}

static void add_noise_sigma(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out,
                            int64_t n) {
    const float sigma = s->sigmas[call];
    for (int64_t i = 0; i < n; i++) out[i] = x0[i] + noise[i] * sigma;
}

const sched_family sched_euler_family = {euler_set_timesteps, euler_scale, euler_step, NULL, add_noise_sigma};
const sched_family sched_euler_a_family = {euler_set_timesteps, euler_scale, euler_a_step, always_noise,
                                           add_noise_sigma};

/* ---- Heun ---- */

static ld_status heun_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    double *ts = malloc(sizeof(double) * (size_t)(steps + 2)), *sg = malloc(sizeof(double) * (size_t)(steps + 2));
    if (!ts || !sg) {
        free(ts);
        free(sg);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    const int c = base_schedule(s, steps, ts, sg, 0);
    /* sigmas [s0, s1, s1, ..., s_{c-1}, s_{c-1}, 0]; timesteps [t0, t1, t1, ..., t_{c-1}, t_{c-1}] */
    ld_status st = sched_alloc(ctx, s, 2 * c - 1, 2 * c);
    if (st == LD_OK) {
        s->timesteps[0] = (float)ts[0];
        s->sigmas[0] = (float)sg[0];
        for (int i = 1; i < c; i++) {
            s->timesteps[2 * i - 1] = s->timesteps[2 * i] = (float)ts[i];
            s->sigmas[2 * i - 1] = s->sigmas[2 * i] = (float)sg[i];
        }
        s->sigmas[2 * c - 1] = 0.0f;
        s->init_noise_sigma = max_noise_sigma(s, s->sigmas, 2 * c);
    }
    free(ts);
    free(sg);
    return st;
}

static ld_status heun_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                           int64_t n) {
    (void)noise;
    LD_TRY(sched_hist(ctx, s, 2, n));
    float *prev_d = s->hist[0], *saved = s->hist[1];
    if (!s->second) {
        const float sigma = s->sigmas[call], dt = s->sigmas[call + 1] - sigma;
        for (int64_t i = 0; i < n; i++) {
            const float d = (x[i] - pred_x0(s->prediction, x[i], out[i], sigma)) / sigma;
            prev_d[i] = d;
            saved[i] = x[i];
            x[i] = x[i] + d * dt;
        }
        s->saved_dt = dt;
        s->second = 1;
    } else {
        const float next = s->sigmas[call], dt = s->saved_dt;
        for (int64_t i = 0; i < n; i++) {
            float d = (x[i] - pred_x0(s->prediction, x[i], out[i], next)) / next;
            d = (prev_d[i] + d) / 2.0f;
            x[i] = saved[i] + d * dt;
        }
        s->second = 0;
    }
    return LD_OK;
}

const sched_family sched_heun_family = {heun_set_timesteps, euler_scale, heun_step, NULL, add_noise_sigma};

/* ---- DPM2 (KDPM2Discrete) ---- */

/* torch.lerp(a, b, 0.5) for weight >= 0.5: b - (b - a) * (1 - w) */
static float lerp_half(float a, float b) { return b - (b - a) * 0.5f; }

static ld_status dpm2_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    double *ts = malloc(sizeof(double) * (size_t)(steps + 2)), *sg = malloc(sizeof(double) * (size_t)(steps + 2));
    float *sg32 = malloc(sizeof(float) * (size_t)(steps + 3)), *si32 = malloc(sizeof(float) * (size_t)(steps + 3));
    ld_status st = ts && sg && sg32 && si32 ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    int c = 0;
    if (st == LD_OK) {
        c = base_schedule(s, steps, ts, sg, 1);
        for (int i = 0; i < c; i++) sg32[i] = (float)sg[i];
        sg32[c] = 0.0f;
        /* sigmas_interpol = exp(lerp(log sigmas, log roll(sigmas, 1), 0.5)) */
        for (int i = 0; i <= c; i++) si32[i] = expf(lerp_half(logf(sg32[i]), logf(sg32[i ? i - 1 : c])));
        st = sched_alloc(ctx, s, 2 * c - 1, 2 * c + 2);
    }
    if (st == LD_OK && !(s->sigmas_interpol = malloc(sizeof(float) * (size_t)(2 * c + 2))))
        st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    if (st == LD_OK) {
        /* cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]) for sigmas and sigmas_interpol */
        s->sigmas[0] = sg32[0];
        s->sigmas_interpol[0] = si32[0];
        for (int i = 1; i <= c; i++) {
            s->sigmas[2 * i - 1] = s->sigmas[2 * i] = sg32[i];
            s->sigmas_interpol[2 * i - 1] = s->sigmas_interpol[2 * i] = si32[i];
        }
        s->sigmas[2 * c + 1] = sg32[c];
        s->sigmas_interpol[2 * c + 1] = si32[c];
        /* timesteps [t0, ti1, t1, ti2, t2, ...]: ti = sigma_to_t(sigmas_interpol) */
        s->timesteps[0] = (float)ts[0];
        for (int i = 1; i < c; i++) {
            s->timesteps[2 * i - 1] = (float)sched_sigma_to_t((double)si32[i], s->sigma_table, s->num_train);
            s->timesteps[2 * i] = (float)ts[i];
        }
        s->init_noise_sigma = max_noise_sigma(s, s->sigmas, 2 * c + 2);
    }
    free(ts);
    free(sg);
    free(sg32);
    free(si32);
    return st;
}

static void dpm2_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    scale_by_sigma(s, s->second ? s->sigmas_interpol[call] : s->sigmas[call], x, out, n);
}

static ld_status dpm2_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                           int64_t n) {
    (void)noise;
    LD_TRY(sched_hist(ctx, s, 1, n));
    float *saved = s->hist[0];
    if (!s->second) {
        const float sigma = s->sigmas[call], si = s->sigmas_interpol[call + 1], dt = si - sigma;
        for (int64_t i = 0; i < n; i++) {
            const float d = (x[i] - pred_x0(s->prediction, x[i], out[i], sigma)) / sigma;
            saved[i] = x[i];
            x[i] = x[i] + d * dt;
        }
        s->second = 1;
    } else {
        const float sigma = s->sigmas[call - 1], si = s->sigmas_interpol[call], dt = s->sigmas[call] - sigma;
        for (int64_t i = 0; i < n; i++) {
            const float d = (x[i] - pred_x0(s->prediction, x[i], out[i], si)) / si;
            x[i] = saved[i] + d * dt;
        }
        s->second = 0;
    }
    return LD_OK;
}

const sched_family sched_dpm2_family = {dpm2_set_timesteps, dpm2_scale, dpm2_step, NULL, add_noise_sigma};
