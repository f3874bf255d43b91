/* Shared arithmetic of the samplers (sched_internal.h), each as numpy does it
 * in float64 where diffusers uses numpy, float32 where it uses torch. */
#include "sched/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double sched_interp(double t, const float *table, int n) {
    if (!(t > 0)) return table[0]; /* also NaN-safe */
    if (t >= n - 1) return table[n - 1];
    int j = (int)floor(t);
    if (t == (double)j) return table[j];
    double slope = (double)table[j + 1] - (double)table[j];
    return slope * (t - (double)j) + (double)table[j];
}

double sched_sigma_to_t(double sigma, const float *table, int n) {
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    /* low = the last index whose log sigma is <= log_sigma (0 if none), at most n - 2 */
    int low = 0;
    for (int i = 0; i < n; i++)
        if (log_sigma - (double)logf(table[i]) >= 0) low = i;
    if (low > n - 2) low = n - 2;
    double lo = (double)logf(table[low]), hi = (double)logf(table[low + 1]);
    double w = (lo - log_sigma) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

void sched_karras(double *out, int n, double sigma_min, double sigma_max) {
    const double rho = 7.0, min_inv = pow(sigma_min, 1 / rho), max_inv = pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = n > 1 ? (i == n - 1 ? 1.0 : (double)i * (1.0 / (double)(n - 1))) : 0.0;
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

int sched_spacing_discrete(const ld_scheduler *s, int steps, double *out) {
    const int n = s->num_train;
    if (s->spacing == SPACING_LINSPACE) {
        /* np.linspace(0, n-1, steps, dtype=float32)[::-1] */
        double step = steps > 1 ? (double)(n - 1) / (double)(steps - 1) : 0.0;
        for (int i = 0; i < steps; i++) {
            double v = (steps > 1 && i == steps - 1) ? (double)(n - 1) : (double)i * step;
            out[steps - 1 - i] = (float)v;
        }
        return steps;
    }
    if (s->spacing == SPACING_LEADING) {
        /* (arange(steps) * (n // steps)).round()[::-1] + steps_offset */
        const int ratio = n / steps;
        for (int i = 0; i < steps; i++) out[steps - 1 - i] = (double)i * ratio + s->steps_offset;
        return steps;
    }
    /* np.arange(n, 0, -n/steps).round() - 1, as numpy fills it: length
     * ceil(-n / -ratio), element i = start + i * ((start - ratio) - start) */
    const double ratio = (double)n / (double)steps, start = (double)n, delta = (start + -ratio) - start;
    int count = (int)ceil((0.0 - (double)n) / -ratio);
    if (count < 1 || count > steps + 1) count = steps;
    for (int i = 0; i < count; i++) {
        double v = i == 0 ? start : i == 1 ? start + -ratio : start + (double)i * delta;
        out[i] = nearbyint(v) - 1.0;
    }
    return count;
}

ld_status sched_alloc(ld_ctx *ctx, ld_scheduler *s, int calls, int nsigmas) {
    free(s->timesteps);
    free(s->sigmas);
    free(s->sigmas_interpol);
    s->sigmas_interpol = NULL;
    s->timesteps = malloc(sizeof(float) * (size_t)(calls > 0 ? calls : 1));
    s->sigmas = malloc(sizeof(float) * (size_t)(nsigmas > 0 ? nsigmas : 1));
    if (!s->timesteps || !s->sigmas) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    s->calls = s->npoints = calls;
    s->nsigmas = nsigmas;
    return LD_OK;
}

ld_status sched_store(ld_ctx *ctx, ld_scheduler *s, const double *ts, const double *sg, int count, int final_sigma_min) {
    LD_TRY(sched_alloc(ctx, s, count, count + 1));
    for (int i = 0; i < count; i++) {
        s->timesteps[i] = (float)ts[i];
        s->sigmas[i] = (float)sg[i];
    }
    const float a = s->alphas_cumprod[0];
    s->sigmas[count] = final_sigma_min ? sqrtf((1.0f - a) / a) : 0.0f;
    return LD_OK;
}

void sched_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
}

void sched_x0_vp(const ld_scheduler *s, int call, const float *x, const float *out, float *x0, int64_t n) {
    float a, sg;
    sched_alpha_sigma(s->sigmas[call], &a, &sg);
    for (int64_t i = 0; i < n; i++)
        x0[i] = s->prediction == PRED_EPSILON ? (x[i] - sg * out[i]) / a
                : s->prediction == PRED_V     ? a * x[i] - sg * out[i]
                                              : out[i];
}

void sched_add_noise_vp(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out, int64_t n) {
    float a, sg;
    sched_alpha_sigma(s->sigmas[call], &a, &sg);
    for (int64_t i = 0; i < n; i++) out[i] = a * x0[i] + sg * noise[i];
}

ld_status sched_hist(ld_ctx *ctx, ld_scheduler *s, int k, int64_t n) {
    if (s->n && s->n != n)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "scheduler: the sample changed size (%lld, then %lld elements)",
                       (long long)s->n, (long long)n);
    for (int i = 0; i < k; i++)
        if (!s->hist[i] && !(s->hist[i] = calloc((size_t)n, sizeof(float))))
            return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the scheduler's history");
    s->n = n;
    return LD_OK;
}
