/* Euler / Euler-ancestral discrete schedulers (see euler.h). Every scalar is
 * computed in the precision diffusers + torch use, in the same order, so the
 * tables and steps match the reference to the last bit or close to it:
 * float32 for the tensors and 0-dim tensor arithmetic, float64 where numpy
 * does the work (timestep spacing, np.interp). */
#include "sched/euler.h"

#include "io/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ld_spacing_name(ld_spacing sp) {
    return sp == LD_SPACING_TRAILING ? "trailing" : sp == LD_SPACING_LINSPACE ? "linspace" : "leading";
}

/* torch.linspace(start, end, n, dtype=float32) on the CPU: the step is a
 * float32, the first half counts up from start, the second half down from end. */
static void torch_linspace_f32(float *out, int n, double start, double end) {
    float s = (float)start, e = (float)end;
    if (n == 1) {
        out[0] = s;
        return;
    }
    float step = (e - s) / (float)(n - 1);
    int halfway = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < halfway ? s + step * (float)i : e - step * (float)(n - i - 1);
}

static ld_status parse_spacing(ld_ctx *ctx, const char *where, const char *name, ld_spacing *out) {
    if (!strcmp(name, "leading")) *out = LD_SPACING_LEADING;
    else if (!strcmp(name, "trailing")) *out = LD_SPACING_TRAILING;
    else if (!strcmp(name, "linspace")) *out = LD_SPACING_LINSPACE;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: timestep_spacing '%s' is not supported (leading, trailing or linspace)", where, name);
    return LD_OK;
}

/* Rejects a boolean option that is set to true. */
static ld_status reject_true(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key) {
    int v;
    LD_TRY(ld_json_bool(ctx, where, cfg, key, 0, &v));
    if (v) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s = true is not supported", where, key);
    return LD_OK;
}

static ld_status read_betas(ld_ctx *ctx, const char *where, const json_t *cfg, int n, float *betas) {
    if (!ld_json_missing(cfg, "trained_betas")) {
        double *tb = malloc(sizeof(double) * (size_t)n);
        if (!tb) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        int got = 0;
        ld_status st = ld_json_num_list(ctx, where, cfg, "trained_betas", tb, n, &got);
        if (st == LD_OK && got != n)
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: trained_betas has %d entries, num_train_timesteps is %d", where,
                         got, n);
        for (int i = 0; st == LD_OK && i < n; i++) betas[i] = (float)tb[i];
        free(tb);
        return st;
    }
    double b0, b1;
    const char *schedule;
    LD_TRY(ld_json_num(ctx, where, cfg, "beta_start", 0.0001, &b0));
    LD_TRY(ld_json_num(ctx, where, cfg, "beta_end", 0.02, &b1));
    LD_TRY(ld_json_str(ctx, where, cfg, "beta_schedule", "linear", &schedule));
    if (!(b0 >= 0 && b1 > 0 && b0 < 1 && b1 < 1))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: beta_start %g / beta_end %g must lie in [0, 1)", where, b0, b1);
    if (!strcmp(schedule, "linear")) {
        torch_linspace_f32(betas, n, b0, b1);
    } else if (!strcmp(schedule, "scaled_linear")) {
        torch_linspace_f32(betas, n, sqrt(b0), sqrt(b1));
        for (int i = 0; i < n; i++) betas[i] = betas[i] * betas[i];
    } else {
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: beta_schedule '%s' is not supported (linear or scaled_linear)", where, schedule);
    }
    return LD_OK;
}

ld_status ld_euler_init(ld_ctx *ctx, ld_euler *s, const json_t *cfg, const char *where, ld_euler_kind kind,
                        const char *spacing_override) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    int64_t n, offset;
    const char *pred, *spacing, *interp, *final_type, *ttype;
    LD_TRY(ld_json_int(ctx, where, cfg, "num_train_timesteps", 1000, &n));
    if (n < 2 || n > 100000)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: num_train_timesteps %lld is out of range (2..100000)", where,
                       (long long)n);
    LD_TRY(ld_json_int(ctx, where, cfg, "steps_offset", 0, &offset));
    if (offset < 0 || offset > n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: steps_offset %lld is out of range", where, (long long)offset);
    LD_TRY(ld_json_str(ctx, where, cfg, "prediction_type", "epsilon", &pred));
    if (!strcmp(pred, "epsilon")) s->prediction = LD_PRED_EPSILON;
    else if (!strcmp(pred, "v_prediction")) s->prediction = LD_PRED_V;
    else if (!strcmp(pred, "sample") || !strcmp(pred, "original_sample")) s->prediction = LD_PRED_SAMPLE;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: prediction_type '%s' is not supported (epsilon, v_prediction or sample)", where, pred);
    LD_TRY(ld_json_str(ctx, where, cfg, "timestep_spacing", "linspace", &spacing));
    LD_TRY(parse_spacing(ctx, where, spacing_override ? spacing_override : spacing, &s->spacing));
    LD_TRY(ld_json_str(ctx, where, cfg, "interpolation_type", "linear", &interp));
    if (strcmp(interp, "linear"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: interpolation_type '%s' is not supported (linear)", where,
                       interp);
    LD_TRY(ld_json_str(ctx, where, cfg, "final_sigmas_type", "zero", &final_type));
    if (!strcmp(final_type, "sigma_min") && kind == LD_EULER) s->final_sigma_min = 1;
    else if (strcmp(final_type, "zero"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: final_sigmas_type '%s' is not supported", where, final_type);
    LD_TRY(ld_json_str(ctx, where, cfg, "timestep_type", "discrete", &ttype));
    if (strcmp(ttype, "discrete"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: timestep_type '%s' is not supported (discrete)", where, ttype);
    LD_TRY(reject_true(ctx, where, cfg, "use_karras_sigmas"));
    LD_TRY(reject_true(ctx, where, cfg, "use_exponential_sigmas"));
    LD_TRY(reject_true(ctx, where, cfg, "use_beta_sigmas"));
    LD_TRY(reject_true(ctx, where, cfg, "rescale_betas_zero_snr"));

    s->num_train = (int)n;
    s->steps_offset = (int)offset;
    float *betas = malloc(sizeof(float) * (size_t)n);
    s->alphas_cumprod = malloc(sizeof(float) * (size_t)n);
    s->sigma_table = malloc(sizeof(float) * (size_t)n);
    if (!betas || !s->alphas_cumprod || !s->sigma_table) {
        free(betas);
        ld_euler_free(s);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    ld_status st = read_betas(ctx, where, cfg, (int)n, betas);
    if (st != LD_OK) {
        free(betas);
        ld_euler_free(s);
        return st;
    }
    /* torch.cumprod on a float32 CPU tensor accumulates in double and rounds
     * each output to float32. */
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        float alpha = 1.0f - betas[i];
        acc *= (double)alpha;
        s->alphas_cumprod[i] = (float)acc;
        float a = s->alphas_cumprod[i];
        s->sigma_table[i] = sqrtf((1.0f - a) / a);
    }
    free(betas);
    return LD_OK;
}

void ld_euler_free(ld_euler *s) {
    free(s->alphas_cumprod);
    free(s->sigma_table);
    free(s->timesteps);
    free(s->sigmas);
    memset(s, 0, sizeof *s);
}

/* np.interp(t, arange(n), table) in float64. */
static double interp_table(double t, const float *table, int n) {
    if (!(t > 0)) return table[0]; /* also NaN-safe */
    if (t >= n - 1) return table[n - 1];
    int j = (int)floor(t);
    if (t == (double)j) return table[j];
    double slope = ((double)table[j + 1] - (double)table[j]) / 1.0;
    return slope * (t - (double)j) + (double)table[j];
}

ld_status ld_euler_set_timesteps(ld_ctx *ctx, ld_euler *s, int steps) {
    int n = s->num_train;
    if (steps < 1 || steps > n)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "step count %d is out of range (1..%d)", steps, n);
    free(s->timesteps);
    free(s->sigmas);
    s->sigmas = NULL;
    /* numpy's arange can give one element more than `steps` for trailing
     * spacing when 1000/steps is inexact (diffusers then runs that many). */
    s->timesteps = malloc(sizeof(float) * (size_t)(steps + 2));
    if (!s->timesteps) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    int count = steps;
    if (s->spacing == LD_SPACING_LINSPACE) {
        /* np.linspace(0, n-1, steps, dtype=float32)[::-1] */
        double step = steps > 1 ? (double)(n - 1) / (double)(steps - 1) : 0.0;
        for (int i = 0; i < steps; i++) {
            double v = (steps > 1 && i == steps - 1) ? (double)(n - 1) : (double)i * step;
            s->timesteps[steps - 1 - i] = (float)v;
        }
    } else if (s->spacing == LD_SPACING_LEADING) {
        /* (arange(steps) * (n // steps)).round()[::-1] + steps_offset */
        int ratio = n / steps;
        for (int i = 0; i < steps; i++) {
            float t = (float)((double)i * ratio);
            s->timesteps[steps - 1 - i] = t + (float)s->steps_offset;
        }
    } else {
        /* np.arange(n, 0, -n/steps).round() - 1, as numpy fills it:
         * length ceil(-n / -ratio), element i = start + i * ((start - ratio) - start). */
        double ratio = (double)n / (double)steps;
        double len = ceil((0.0 - (double)n) / -ratio);
        count = (int)len;
        if (count < 1 || count > steps + 1) count = steps;
        double start = (double)n, delta = (start + -ratio) - start;
        for (int i = 0; i < count; i++) {
            double v = i == 0 ? start : i == 1 ? start + -ratio : start + (double)i * delta;
            s->timesteps[i] = (float)nearbyint(v) - 1.0f;
        }
    }
    s->steps = count;
    s->sigmas = malloc(sizeof(float) * (size_t)(count + 1));
    if (!s->sigmas) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) s->sigmas[i] = (float)interp_table((double)s->timesteps[i], s->sigma_table, n);
    if (s->final_sigma_min) {
        float a = s->alphas_cumprod[0];
        s->sigmas[count] = sqrtf((1.0f - a) / a);
    } else {
        s->sigmas[count] = 0.0f;
    }
    float maxs = 0.0f;
    for (int i = 0; i <= count; i++)
        if (s->sigmas[i] > maxs) maxs = s->sigmas[i];
    s->init_noise_sigma = s->spacing == LD_SPACING_LEADING ? sqrtf(maxs * maxs + 1.0f) : maxs;
    return LD_OK;
}

void ld_euler_scale_input(const ld_euler *s, int k, const float *x, float *out, int64_t n) {
    float sigma = s->sigmas[k];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] / d;
}

/* pred_original_sample for one element, as diffusers computes it. */
static inline float predict_x0(ld_prediction pred, float x, float eps, float sigma_hat, float c_out, float c_skip_div) {
    if (pred == LD_PRED_EPSILON) return x - sigma_hat * eps;
    if (pred == LD_PRED_V) return eps * c_out + x / c_skip_div;
    return eps;
}

void ld_euler_step(const ld_euler *s, int k, const float *eps, float *x, const float *noise, int64_t n) {
    float sigma = s->sigmas[k], sigma_next = s->sigmas[k + 1];
    /* v-prediction: x0 = eps * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1) */
    float s2p1 = sigma * sigma + 1.0f;
    float c_out = -sigma / sqrtf(s2p1);
    if (s->kind == LD_EULER) {
        /* s_churn = 0: gamma = 0 and sigma_hat = sigma * (0 + 1) = sigma. */
        float sigma_hat = sigma;
        float dt = sigma_next - sigma_hat;
        for (int64_t i = 0; i < n; i++) {
            float x0 = predict_x0(s->prediction, x[i], eps[i], sigma_hat, c_out, s2p1);
            float d = (x[i] - x0) / sigma_hat;
            x[i] = x[i] + d * dt;
        }
        return;
    }
    float sf2 = sigma * sigma, st2 = sigma_next * sigma_next;
    float up2 = st2 * (sf2 - st2) / sf2;
    float sigma_up = sqrtf(up2);
    float down2 = st2 - sigma_up * sigma_up;
    float sigma_down = sqrtf(down2 > 0.0f ? down2 : 0.0f);
    float dt = sigma_down - sigma;
    for (int64_t i = 0; i < n; i++) {
        float x0 = predict_x0(s->prediction, x[i], eps[i], sigma, c_out, s2p1);
        float d = (x[i] - x0) / sigma;
        float prev = x[i] + d * dt;
        x[i] = noise ? prev + noise[i] * sigma_up : prev;
    }
}
