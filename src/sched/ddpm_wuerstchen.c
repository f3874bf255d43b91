/* DDPMWuerstchenScheduler: cosine schedule, timestep lists and the DDPM step
 * (see ddpm_wuerstchen.h, specs/wuerstchen.md section 7). */
#include "sched/ddpm_wuerstchen.h"

#include "io/json.h"

#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979323846f

void ld_linspace_f32(float *out, float start, float end, int steps) {
    if (steps == 1) {
        out[0] = start;
        return;
    }
    /* PyTorch's CPU kernel (AVX2 build, the one the references come from):
     * the vectorized loop takes two 8-wide vectors at a time while 16
     * elements remain; each vector is base + j*step, its base counting up from
     * start when the vector begins in the first half and down from end
     * otherwise. The tail is computed per element. */
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2, idx = 0;
    for (; idx + 16 <= steps; idx += 8) {
        float base = idx < halfway ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
        for (int j = 0; j < 8; j++) out[idx + j] = base + (float)j * step;
        idx += 8;
        base = idx < halfway ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
        for (int j = 0; j < 8; j++) out[idx + j] = base + (float)j * step;
    }
    for (; idx < steps; idx++)
        out[idx] = idx < halfway ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
}

/* numpy.linspace(start, stop, num) in double: start + i*step, last = stop. */
static void np_linspace(double *out, double start, double stop, int num) {
    double step = (stop - start) / (double)(num - 1);
    for (int i = 0; i < num; i++) out[i] = (double)i * step + start;
    out[num - 1] = stop;
}

void ld_ddpmw_default_stage_c(float out[LD_DDPMW_STAGE_C_POINTS]) {
    double a[20], b[11];
    np_linspace(a, 1.0, 2.0 / 3.0, 20);
    np_linspace(b, 2.0 / 3.0, 0.0, 11);
    for (int i = 0; i < 20; i++) out[i] = (float)a[i];
    for (int i = 1; i < 11; i++) out[19 + i] = (float)b[i];
}

ld_status ld_ddpmw_init(ld_ctx *ctx, ld_ddpmw *s, const char *where, const json_t *cfg) {
    memset(s, 0, sizeof *s);
    double sv = 0.008, scaler = 1.0;
    if (cfg) {
        LD_TRY(ld_json_num(ctx, where, cfg, "s", 0.008, &sv));
        LD_TRY(ld_json_num(ctx, where, cfg, "scaler", 1.0, &scaler));
    }
    if (!(sv >= 0 && sv < 1))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: s must be in [0, 1), got %g", where, sv);
    if (!(scaler > 0 && scaler < 100))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: scaler must be positive, got %g", where, scaler);
    s->s = (float)sv;
    s->scaler = (float)scaler;
    float c = cosf(s->s / (1.0f + s->s) * PI_F * 0.5f);
    s->init_alpha_cumprod = c * c;
    return LD_OK;
}

ld_status ld_ddpmw_set_timesteps(ld_ctx *ctx, ld_ddpmw *s, int steps) {
    if (steps < 1 || steps + 1 > LD_DDPMW_MAX_POINTS)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "DDPMWuerstchenScheduler: step count %d is out of range (1..%d)",
                       steps, LD_DDPMW_MAX_POINTS - 1);
    ld_linspace_f32(s->timesteps, 1.0f, 0.0f, steps + 1);
    s->n_points = steps + 1;
    s->n_steps = steps;
    return LD_OK;
}

ld_status ld_ddpmw_set_custom(ld_ctx *ctx, ld_ddpmw *s, const float *points, int n_points) {
    if (n_points < 2 || n_points > LD_DDPMW_MAX_POINTS)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "DDPMWuerstchenScheduler: a timestep list needs 2..%d values, got %d", LD_DDPMW_MAX_POINTS,
                       n_points);
    for (int i = 0; i < n_points; i++) {
        if (!(points[i] >= 0.0f && points[i] <= 1.0f))
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                           "DDPMWuerstchenScheduler: timestep %d is %g, outside [0, 1]", i, points[i]);
        s->timesteps[i] = points[i];
    }
    s->n_points = n_points;
    s->n_steps = n_points - 1;
    return LD_OK;
}

void ld_ddpmw_free(ld_ddpmw *s) { (void)s; }

float ld_ddpmw_alpha_cumprod(const ld_ddpmw *s, float t) {
    if (s->scaler > 1.0f)
        t = 1.0f - powf(1.0f - t, s->scaler);
    else if (s->scaler < 1.0f)
        t = powf(t, s->scaler);
    float c = cosf((t + s->s) / (1.0f + s->s) * PI_F * 0.5f);
    float a = c * c / s->init_alpha_cumprod;
    return a < 1e-4f ? 1e-4f : a > 0.9999f ? 0.9999f : a;
}

float ld_ddpmw_prev_timestep(const ld_ddpmw *s, float t) {
    int best = 0;
    float bd = INFINITY;
    for (int i = 0; i < s->n_points; i++) {
        float d = fabsf(s->timesteps[i] - t);
        if (d < bd) { /* first minimum, like argmin */
            bd = d;
            best = i;
        }
    }
    return best + 1 < s->n_points ? s->timesteps[best + 1] : s->timesteps[best];
}

void ld_ddpmw_step(const ld_ddpmw *s, float *out, const float *eps, float t, const float *x, const float *noise,
                   int64_t n) {
    float prev_t = ld_ddpmw_prev_timestep(s, t);
    float ac = ld_ddpmw_alpha_cumprod(s, t), ac_prev = ld_ddpmw_alpha_cumprod(s, prev_t);
    float alpha = ac / ac_prev;
    float mu_scale = sqrtf(1.0f / alpha), one_m_alpha = 1.0f - alpha, denom = sqrtf(1.0f - ac);
    float sigma = sqrtf(one_m_alpha * (1.0f - ac_prev) / (1.0f - ac));
    int add_noise = prev_t != 0.0f && noise;
    for (int64_t i = 0; i < n; i++) {
        float mu = mu_scale * (x[i] - one_m_alpha * eps[i] / denom);
        out[i] = add_noise ? mu + sigma * noise[i] : mu;
    }
}
