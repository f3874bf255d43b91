/* DPMSolverMultistepScheduler as DPM++ 2M (algorithm dpmsolver++) and DPM++
 * 2M SDE (sde-dpmsolver++): solver order 2, midpoint, lower_order_final,
 * final sigma zero (so the last step is first order), default or Karras
 * sigmas; and DPMSolverSinglestepScheduler as DPM++ 2S (dpmsolver++, order 2:
 * steps alternate first order and a second-order step from the sample saved
 * before the pair). The model output becomes an x0 prediction
 * (convert_model_output); the last two are kept. Scalars are float32 0-dim
 * tensor arithmetic as in torch; tables float64 as in numpy. */
#include "sched/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ld_status sched_dpm_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    const int n = s->num_train;
    double *ts = malloc(sizeof(double) * (size_t)(steps + 2)), *sg = malloc(sizeof(double) * (size_t)(steps + 2));
    if (!ts || !sg) {
        free(ts);
        free(sg);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    int count = steps;
    /* lambda_min_clipped = -inf: last_timestep = num_train_timesteps; the
     * singlestep class always spaces like linspace */
    if (s->spacing == SPACING_LINSPACE || s->fam == &sched_dpmpp_2s_family) {
        /* np.linspace(0, n - 1, steps + 1).round()[::-1][:-1] */
        const double step = (double)(n - 1) / (double)steps;
        for (int i = 0; i < steps; i++) {
            const int k = steps - i; /* element k of the linspace */
            ts[i] = nearbyint(k == steps ? (double)(n - 1) : (double)k * step);
        }
    } else if (s->spacing == SPACING_LEADING) {
        /* (arange(steps + 1) * (n // (steps + 1))).round()[::-1][:-1] + steps_offset */
        const int ratio = n / (steps + 1);
        for (int i = 0; i < steps; i++) ts[i] = (double)(steps - i) * ratio + s->steps_offset;
    } else {
        count = sched_spacing_discrete(s, steps, ts); /* arange(n, 0, -n/steps).round() - 1 */
    }
    if (s->schedule == LD_SCHEDULE_KARRAS) {
        /* from the whole table flipped: sigma_min = table[0], sigma_max = table[-1] */
        count = steps;
        sched_karras(sg, count, (double)s->sigma_table[0], (double)s->sigma_table[n - 1]);
        for (int i = 0; i < count; i++) ts[i] = nearbyint(sched_sigma_to_t(sg[i], s->sigma_table, n));
    } else {
        for (int i = 0; i < count; i++) sg[i] = sched_interp(ts[i], s->sigma_table, n);
    }
    ld_status st = sched_store(ctx, s, ts, sg, count, s->final_sigma_min);
    s->init_noise_sigma = 1.0f;
    free(ts);
    free(sg);
    return st;
}

static void dpm_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    (void)s;
    (void)call;
    for (int64_t i = 0; i < n; i++) out[i] = x[i];
}

/* convert_model_output: the x0 prediction pushed into the history (hist[1]
 * the newest, hist[0] the one before). */
static void push_x0(ld_scheduler *s, int call, const float *x, const float *out, int64_t n) {
    float *tmp = s->hist[0];
    s->hist[0] = s->hist[1];
    s->hist[1] = tmp;
    sched_x0_vp(s, call, x, out, s->hist[1], n);
}

static ld_status dpm_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                          int64_t n) {
    LD_TRY(sched_hist(ctx, s, 2, n));
    push_x0(s, call, x, out, n);
    float *m0 = s->hist[1], *m1 = s->hist[0];
    float a_s0, s_s0;
    sched_alpha_sigma(s->sigmas[call], &a_s0, &s_s0);
    const int last = call == s->calls - 1;
    /* lower_order_final with final sigma zero: the last step is first order;
     * with fewer than 15 steps the second-to-last too would be second order
     * (lower_order_second only matters for order 3) */
    const int first_order = s->lower_order_nums < 1 || (last && (s->calls < 15 || !s->final_sigma_min));
    float a_t, s_t;
    sched_alpha_sigma(s->sigmas[call + 1], &a_t, &s_t);
    const float lambda_t = logf(a_t) - logf(s_t), lambda_s0 = logf(a_s0) - logf(s_s0);
    const float h = lambda_t - lambda_s0;
    if (first_order) {
        if (!s->sde) {
            const float c0 = s_t / s_s0, c1 = a_t * (expf(-h) - 1.0f);
            for (int64_t i = 0; i < n; i++) x[i] = c0 * x[i] - c1 * m0[i];
        } else {
            const float c0 = s_t / s_s0 * expf(-h), c1 = a_t * (1.0f - expf(-2.0f * h));
            const float c2 = s_t * sqrtf(1.0f - expf(-2.0f * h));
            for (int64_t i = 0; i < n; i++) x[i] = c0 * x[i] + c1 * m0[i] + c2 * noise[i];
        }
    } else {
        float a_s1, s_s1;
        sched_alpha_sigma(s->sigmas[call - 1], &a_s1, &s_s1);
        const float lambda_s1 = logf(a_s1) - logf(s_s1), h0 = lambda_s0 - lambda_s1, r0 = h0 / h;
        const float inv_r0 = 1.0f / r0;
        if (!s->sde) {
            const float c0 = s_t / s_s0, c1 = a_t * (expf(-h) - 1.0f);
            for (int64_t i = 0; i < n; i++) {
                const float d1 = inv_r0 * (m0[i] - m1[i]);
                x[i] = c0 * x[i] - c1 * m0[i] - 0.5f * c1 * d1;
            }
        } else {
            const float c0 = s_t / s_s0 * expf(-h), c1 = a_t * (1.0f - expf(-2.0f * h));
            const float c2 = s_t * sqrtf(1.0f - expf(-2.0f * h));
            for (int64_t i = 0; i < n; i++) {
                const float d1 = inv_r0 * (m0[i] - m1[i]);
                x[i] = c0 * x[i] + c1 * m0[i] + 0.5f * c1 * d1 + c2 * noise[i];
            }
        }
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
    return LD_OK;
}

/* DPM++ 2S: the order of call i with lower_order_final (forced by diffusers
 * when the final sigma is zero): [1, 2] pairs, the tail [1, 1] for an even
 * count and [1] for an odd one. */
static int single_order(int call, int calls) {
    if (calls % 2 == 0 && call >= calls - 2) return 1;
    if (calls % 2 == 1 && call == calls - 1) return 1;
    return call % 2 == 0 ? 1 : 2;
}

static ld_status single_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                             int64_t n) {
    (void)noise;
    LD_TRY(sched_hist(ctx, s, 3, n));
    push_x0(s, call, x, out, n);
    float *m0 = s->hist[1], *m1 = s->hist[0], *saved = s->hist[2];
    float a_s0, s_s0;
    sched_alpha_sigma(s->sigmas[call], &a_s0, &s_s0);
    int order = single_order(call, s->calls);
    if (order == 2 && s->lower_order_nums < 1) order = 1; /* no earlier output yet */
    float a_t, s_t;
    sched_alpha_sigma(s->sigmas[call + 1], &a_t, &s_t);
    const float lambda_t = logf(a_t) - logf(s_t);
    if (order == 1) {
        memcpy(saved, x, sizeof(float) * (size_t)n); /* self.sample */
        const float lambda_s0 = logf(a_s0) - logf(s_s0), h = lambda_t - lambda_s0;
        const float c0 = s_t / s_s0, c1 = a_t * (expf(-h) - 1.0f);
        for (int64_t i = 0; i < n; i++) x[i] = c0 * saved[i] - c1 * m0[i];
    } else {
        float a_s1, s_s1;
        sched_alpha_sigma(s->sigmas[call - 1], &a_s1, &s_s1);
        const float lambda_s0 = logf(a_s0) - logf(s_s0), lambda_s1 = logf(a_s1) - logf(s_s1);
        const float h = lambda_t - lambda_s1, h0 = lambda_s0 - lambda_s1, r0 = h0 / h, inv_r0 = 1.0f / r0;
        const float c0 = s_t / s_s1, c1 = a_t * (expf(-h) - 1.0f);
        for (int64_t i = 0; i < n; i++) {
            const float d1 = inv_r0 * (m0[i] - m1[i]);
            x[i] = c0 * saved[i] - c1 * m1[i] - 0.5f * c1 * d1;
        }
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
    return LD_OK;
}

static int dpm_needs_noise(const ld_scheduler *s, int call) {
    (void)call;
    return s->sde;
}

const sched_family sched_dpmpp_2m_family = {sched_dpm_set_timesteps, dpm_scale, dpm_step, dpm_needs_noise, sched_add_noise_vp};
const sched_family sched_dpmpp_2s_family = {sched_dpm_set_timesteps, dpm_scale, single_step, NULL, sched_add_noise_vp};
