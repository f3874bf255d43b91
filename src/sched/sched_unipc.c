/* UniPCMultistepScheduler as diffusers' defaults run it: solver order 2,
 * bh2, predict_x0, lower_order_final, the corrector on every step but the
 * first (UniC refines the current sample with the new model output before
 * the predictor UniP steps on). Timesteps and sigmas as DPMSolverMultistep.
 * Scalars float32 as torch; the 2x2 system of the order-2 corrector is
 * solved in closed form. */
#include "sched/sched_internal.h"

#include <math.h>
#include <string.h>

static float lambda_of(float sigma) {
    float a, sg;
    sched_alpha_sigma(sigma, &a, &sg);
    return logf(a) - logf(sg);
}

static void unipc_scale(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    (void)s;
    (void)call;
    for (int64_t i = 0; i < n; i++) out[i] = x[i];
}

/* b_1, b_2 of the bh2 update (h_phi_k recursion) for hh = -h. */
static void bh2_b(float hh, float B_h, float *b1, float *b2) {
    const float h_phi_1 = expm1f(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    *b1 = h_phi_k * 1.0f / B_h;
    h_phi_k = h_phi_k / hh - 1.0f / 2.0f;
    *b2 = h_phi_k * 2.0f / B_h;
}

static ld_status unipc_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                            int64_t n) {
    (void)noise;
    LD_TRY(sched_hist(ctx, s, 4, n));
    float *prev_m = s->hist[1], *older_m = s->hist[0], *last = s->hist[2], *m = s->hist[3];
    sched_x0_vp(s, call, x, out, m, n); /* convert_model_output */
    if (call > 0) { /* UniC: last_sample (at sigmas[call-1]) to this sigma with the new output */
        const float lt = lambda_of(s->sigmas[call]), l0 = lambda_of(s->sigmas[call - 1]), h = lt - l0, hh = -h;
        float a_t, s_t, a_0, s_0;
        sched_alpha_sigma(s->sigmas[call], &a_t, &s_t);
        sched_alpha_sigma(s->sigmas[call - 1], &a_0, &s_0);
        const float h_phi_1 = expm1f(hh), B_h = expm1f(hh);
        float rho0 = 0.0f, rho1 = 0.5f, rk = 1.0f;
        if (s->this_order == 2) {
            rk = (lambda_of(s->sigmas[call - 2]) - l0) / h;
            float b1, b2;
            bh2_b(hh, B_h, &b1, &b2);
            /* R = [[1, 1], [rk, 1]]: rho0 + rho1 = b1, rk rho0 + rho1 = b2 */
            rho0 = (b1 - b2) / (1.0f - rk);
            rho1 = b1 - rho0;
        }
        const float c0 = s_t / s_0, c1 = a_t * h_phi_1, c2 = a_t * B_h;
        for (int64_t i = 0; i < n; i++) {
            const float corr = s->this_order == 2 ? rho0 * ((older_m[i] - prev_m[i]) / rk) : 0.0f;
            const float d1_t = m[i] - prev_m[i];
            x[i] = (c0 * last[i] - c1 * prev_m[i]) - c2 * (corr + rho1 * d1_t);
        }
    }
    /* history: older <- prev <- m */
    float *t = s->hist[0];
    s->hist[0] = s->hist[1];
    s->hist[1] = s->hist[3];
    s->hist[3] = t;
    prev_m = s->hist[1];
    older_m = s->hist[0];
    int order = s->calls - call < 2 ? s->calls - call : 2;
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1;
    s->this_order = order;
    memcpy(last, x, sizeof(float) * (size_t)n);
    /* UniP from sigmas[call] to sigmas[call + 1] */
    const float lt = lambda_of(s->sigmas[call + 1]), l0 = lambda_of(s->sigmas[call]), h = lt - l0, hh = -h;
    float a_t, s_t, a_0, s_0;
    sched_alpha_sigma(s->sigmas[call + 1], &a_t, &s_t);
    sched_alpha_sigma(s->sigmas[call], &a_0, &s_0);
    const float h_phi_1 = expm1f(hh), B_h = expm1f(hh), c0 = s_t / s_0, c1 = a_t * h_phi_1, c2 = a_t * B_h;
    if (order == 1) {
        for (int64_t i = 0; i < n; i++) x[i] = (c0 * x[i] - c1 * prev_m[i]) - c2 * 0.0f;
    } else {
        const float rk = (lambda_of(s->sigmas[call - 1]) - l0) / h;
        for (int64_t i = 0; i < n; i++) {
            const float d1 = (older_m[i] - prev_m[i]) / rk;
            x[i] = (c0 * x[i] - c1 * prev_m[i]) - c2 * (0.5f * d1);
        }
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
    return LD_OK;
}

const sched_family sched_unipc_family = {sched_dpm_set_timesteps, unipc_scale, unipc_step, NULL, sched_add_noise_vp};
