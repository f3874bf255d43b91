/* The scheduler interface (scheduler.h): the sampler table, the config every
 * class reads (betas, alphas_cumprod, prediction type, spacing), and the
 * dispatch to the family that implements each sampler. */
#include "sched/sched_internal.h"
#include "sched/ddpm_wuerstchen.h"

#include "io/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    ld_sampler_desc d;
    const sched_family *fam;
    int karras_ok, sde;
} sampler_entry;

static const sampler_entry g_entries[] = {
    {{"euler", "Euler", "Euler Karras", "EulerDiscreteScheduler", 0}, &sched_euler_family, 1, 0},
    {{"euler_a", "Euler a", NULL, "EulerAncestralDiscreteScheduler", 1}, &sched_euler_a_family, 0, 0},
    {{"dpm++2m", "DPM++ 2M", "DPM++ 2M Karras", "DPMSolverMultistepScheduler", 0}, &sched_dpmpp_2m_family, 1, 0},
    {{"dpm++2m_sde", "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", 1},
     &sched_dpmpp_2m_family, 1, 1},
    {{"dpm++2s", "DPM++ 2S", "DPM++ 2S Karras", "DPMSolverSinglestepScheduler", 0}, &sched_dpmpp_2s_family, 1, 0},
    {{"unipc", "UniPC", NULL, "UniPCMultistepScheduler", 0}, &sched_unipc_family, 0, 0},
    {{"ddim", "DDIM", NULL, "DDIMScheduler", 0}, &sched_ddim_family, 0, 0},
    {{"heun", "Heun", "Heun Karras", "HeunDiscreteScheduler", 0}, &sched_heun_family, 1, 0},
    {{"dpm2", "DPM2", "DPM2 Karras", "KDPM2DiscreteScheduler", 0}, &sched_dpm2_family, 1, 0},
    {{"lcm", "LCM", NULL, "LCMScheduler", 1}, &sched_lcm_family, 0, 0},
};
#define N_ENTRIES (sizeof g_entries / sizeof g_entries[0])

const ld_sampler_desc *const ld_sampler_list[] = {
    &g_entries[0].d, &g_entries[1].d, &g_entries[2].d, &g_entries[3].d, &g_entries[4].d,
    &g_entries[5].d, &g_entries[6].d, &g_entries[7].d, &g_entries[8].d, &g_entries[9].d, NULL,
};

/* DDPMWuerstchen: the Wuerstchen v2 / Stable Cascade sampler, reached by its
 * name through ld_scheduler_create but not listed with the SDXL family's
 * samplers (ld_sampler_find does not know it). */
static const sampler_entry g_ddpmw = {{"ddpm_wuerstchen", "DDPM", NULL, "DDPMWuerstchenScheduler", 1},
                                      &sched_ddpmw_family, 0, 0};
const ld_sampler_desc *const ld_sampler_ddpm_wuerstchen = &g_ddpmw.d;

static const sampler_entry *entry_of(const ld_sampler_desc *d) {
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (&g_entries[i].d == d) return &g_entries[i];
    return d == &g_ddpmw.d ? &g_ddpmw : NULL;
}

const ld_sampler_desc *ld_sampler_find(const char *name, ld_schedule *schedule) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const ld_sampler_desc *d = &g_entries[i].d;
        if (!strcasecmp(name, d->name) || !strcasecmp(name, d->label)) return d; /* the schedule stays as given */
        if (d->karras_label && !strcasecmp(name, d->karras_label)) {
            if (schedule) *schedule = LD_SCHEDULE_KARRAS;
            return d;
        }
    }
    return NULL;
}

const char *ld_sampler_label(const ld_sampler_desc *d, ld_schedule schedule) {
    return schedule == LD_SCHEDULE_KARRAS && d->karras_label ? d->karras_label : d->label;
}

const char *ld_schedule_name(ld_schedule s) { return s == LD_SCHEDULE_KARRAS ? "karras" : "default"; }

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
    for (int i = 0; i < n; i++) out[i] = i < halfway ? s + step * (float)i : e - step * (float)(n - i - 1);
}

static ld_status read_betas(ld_ctx *ctx, const char *where, const json_t *cfg, int n, float *betas) {
    if (cfg && !ld_json_missing(cfg, "trained_betas")) {
        double *tb = malloc(sizeof(double) * (size_t)n);
        if (!tb) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        int got = 0;
        ld_status st = ld_json_num_list(ctx, where, cfg, "trained_betas", tb, n, &got);
        if (st == LD_OK && got != n)
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: trained_betas has %d entries, num_train_timesteps is %d", where, got,
                         n);
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
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: beta_schedule '%s' is not supported (linear or scaled_linear)",
                       where, schedule);
    }
    return LD_OK;
}

static ld_status reject_true(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key) {
    int v;
    LD_TRY(ld_json_bool(ctx, where, cfg, key, 0, &v));
    if (v) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s = true is not supported", where, key);
    return LD_OK;
}

static ld_status reject_other(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key, const char *ok) {
    const char *v;
    LD_TRY(ld_json_str(ctx, where, cfg, key, ok, &v));
    if (strcmp(v, ok)) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (%s)", where, key, v, ok);
    return LD_OK;
}

static ld_status read_config(ld_ctx *ctx, ld_scheduler *s, const json_t *cfg, const char *where,
                             const char *spacing_override) {
    int64_t n, offset, orig;
    const char *pred, *spacing, *final_type;
    double tscale;
    int alpha_one, karras_cfg;
    LD_TRY(ld_json_int(ctx, where, cfg, "num_train_timesteps", 1000, &n));
    if (n < 2 || n > 100000)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: num_train_timesteps %lld is out of range (2..100000)", where,
                       (long long)n);
    LD_TRY(ld_json_int(ctx, where, cfg, "steps_offset", 0, &offset));
    if (offset < 0 || offset > n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: steps_offset %lld is out of range", where, (long long)offset);
    LD_TRY(ld_json_str(ctx, where, cfg, "prediction_type", "epsilon", &pred));
    if (!strcmp(pred, "epsilon")) s->prediction = PRED_EPSILON;
    else if (!strcmp(pred, "v_prediction")) s->prediction = PRED_V;
    else if (!strcmp(pred, "sample")) s->prediction = PRED_SAMPLE;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: prediction_type '%s' is not supported (epsilon, v_prediction or sample)", where, pred);
    LD_TRY(ld_json_str(ctx, where, cfg, "timestep_spacing", "linspace", &spacing));
    if (spacing_override) spacing = spacing_override;
    if (!strcmp(spacing, "leading")) s->spacing = SPACING_LEADING;
    else if (!strcmp(spacing, "trailing")) s->spacing = SPACING_TRAILING;
    else if (!strcmp(spacing, "linspace")) s->spacing = SPACING_LINSPACE;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: timestep_spacing '%s' is not supported (leading, trailing or linspace)", where, spacing);
    LD_TRY(ld_json_str(ctx, where, cfg, "final_sigmas_type", "zero", &final_type));
    if (!strcmp(final_type, "sigma_min")) s->final_sigma_min = 1;
    else if (strcmp(final_type, "zero"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: final_sigmas_type '%s' is not supported", where, final_type);
    /* DDIMScheduler's and LCMScheduler's default (the only classes reading it) */
    LD_TRY(ld_json_bool(ctx, where, cfg, "set_alpha_to_one", 1, &alpha_one));
    LD_TRY(ld_json_int(ctx, where, cfg, "original_inference_steps", 50, &orig));
    if (orig < 1 || orig > n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: original_inference_steps %lld is out of range", where, (long long)orig);
    LD_TRY(ld_json_num(ctx, where, cfg, "timestep_scaling", 10.0, &tscale));
    LD_TRY(ld_json_bool(ctx, where, cfg, "use_karras_sigmas", 0, &karras_cfg));
    if (karras_cfg) s->schedule = LD_SCHEDULE_KARRAS; /* the folder asks for it */
    static const char *const never[] = {"thresholding", "clip_sample", "rescale_betas_zero_snr",
                                        "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) LD_TRY(reject_true(ctx, where, cfg, never[i]));
    LD_TRY(reject_other(ctx, where, cfg, "interpolation_type", "linear"));
    LD_TRY(reject_other(ctx, where, cfg, "timestep_type", "discrete"));
    s->num_train = (int)n;
    s->steps_offset = (int)offset;
    s->set_alpha_to_one = alpha_one;
    s->original_steps = (int)orig;
    s->timestep_scaling = tscale;

    float *betas = malloc(sizeof(float) * (size_t)n);
    s->alphas_cumprod = malloc(sizeof(float) * (size_t)n);
    s->sigma_table = malloc(sizeof(float) * (size_t)n);
    if (!betas || !s->alphas_cumprod || !s->sigma_table) {
        free(betas);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    ld_status st = read_betas(ctx, where, cfg, (int)n, betas);
    /* torch.cumprod on a float32 CPU tensor accumulates in double and rounds
     * each output to float32 */
    double acc = 1.0;
    for (int i = 0; st == LD_OK && i < n; i++) {
        acc *= (double)(1.0f - betas[i]);
        float a = (float)acc;
        s->alphas_cumprod[i] = a;
        s->sigma_table[i] = sqrtf((1.0f - a) / a);
    }
    free(betas);
    return st;
}

/* Options of the sampler's own diffusers class that change its numerics and
 * are not implemented: an error naming the field rather than a silent
 * difference (a model folder's config may come from that class). */
static ld_status check_family_config(ld_ctx *ctx, const ld_scheduler *s, const json_t *cfg, const char *where) {
    const sched_family *f = s->fam;
    int multistep = f == &sched_dpmpp_2m_family || f == &sched_unipc_family;
    if (f == &sched_dpmpp_2m_family || f == &sched_dpmpp_2s_family || f == &sched_unipc_family) {
        int64_t order;
        double lmc;
        LD_TRY(ld_json_int(ctx, where, cfg, "solver_order", 2, &order));
        if (order != 2)
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: solver_order %lld is not supported by %s (2)", where,
                           (long long)order, s->desc->name);
        LD_TRY(ld_json_num(ctx, where, cfg, "lambda_min_clipped", -INFINITY, &lmc));
        if (isfinite(lmc))
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: lambda_min_clipped %g is not supported (-inf)", where, lmc);
        if (!ld_json_missing(cfg, "variance_type") && !json_is_null(json_object_get(cfg, "variance_type")))
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: variance_type is not supported (null)", where);
        if (f == &sched_unipc_family) {
            const char *type;
            int px0;
            LD_TRY(ld_json_str(ctx, where, cfg, "solver_type", "bh2", &type));
            if (strcmp(type, "bh2") && strcmp(type, "midpoint") && strcmp(type, "heun") && strcmp(type, "logrho"))
                return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: solver_type '%s' is not supported by unipc (bh2)",
                               where, type);
            LD_TRY(ld_json_bool(ctx, where, cfg, "predict_x0", 1, &px0));
            if (!px0) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: predict_x0 = false is not supported", where);
            const json_t *dc = json_object_get(cfg, "disable_corrector");
            if (dc && !json_is_null(dc) && !(json_is_array(dc) && json_array_size(dc) == 0))
                return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: disable_corrector is not supported (empty)", where);
        } else {
            LD_TRY(reject_other(ctx, where, cfg, "solver_type", "midpoint"));
            LD_TRY(reject_true(ctx, where, cfg, "euler_at_final"));
        }
        /* lower_order_final: what runs here is True (the multistep classes'
         * default; the single-step class's set_timesteps forces it for a
         * final sigma of zero) */
        int lof;
        LD_TRY(ld_json_bool(ctx, where, cfg, "lower_order_final", multistep, &lof));
        if (!lof && (multistep || s->final_sigma_min))
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: lower_order_final = false is not supported by %s%s", where,
                           s->desc->name, multistep ? "" : " with final_sigmas_type sigma_min");
    }
    if (f == &sched_ddim_family && ld_json_missing(cfg, "clip_sample"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: clip_sample is not given, and DDIMScheduler's default (true: clamp the x0 prediction) "
                       "is not supported; set it to false",
                       where);
    return LD_OK;
}

ld_status ld_scheduler_create(ld_ctx *ctx, const char *sampler, ld_schedule schedule, const json_t *cfg,
                              const char *where, const char *spacing_override, ld_scheduler **out) {
    *out = NULL;
    ld_schedule named = schedule;
    const ld_sampler_desc *d = ld_sampler_find(sampler, &named);
    if (!d && sampler && !strcasecmp(sampler, g_ddpmw.d.name)) d = &g_ddpmw.d;
    if (!d) {
        char names[512] = "";
        for (size_t i = 0; i < N_ENTRIES; i++) {
            strcat(names, i ? ", " : "");
            strcat(names, g_entries[i].d.name);
        }
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unknown sampler '%s' (%s, or their A1111 names)",
                       sampler ? sampler : "(null)", names);
    }
    if (named == LD_SCHEDULE_KARRAS) schedule = LD_SCHEDULE_KARRAS;
    const sampler_entry *e = entry_of(d);
    ld_scheduler *s = calloc(1, sizeof *s);
    if (!s) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    s->desc = d;
    s->fam = e->fam;
    s->schedule = schedule;
    s->sde = e->sde;
    s->order = e->fam == &sched_heun_family || e->fam == &sched_dpm2_family ? 2 : 1;
    ld_status st;
    if (e == &g_ddpmw) { /* its own config (s, scaler); nothing of the discrete classes applies */
        st = schedule == LD_SCHEDULE_KARRAS
                 ? ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "sampler ddpm_wuerstchen does not take the karras schedule")
                 : sched_ddpmw_config(ctx, s, cfg, where ? where : "scheduler config");
        if (st != LD_OK) ld_scheduler_free(s);
        else *out = s;
        return st;
    }
    st = read_config(ctx, s, cfg, where ? where : "scheduler config", spacing_override);
    if (st == LD_OK && s->schedule == LD_SCHEDULE_KARRAS && !e->karras_ok)
        st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                     "sampler %s does not take the karras schedule (euler, dpm++2m, dpm++2m_sde, dpm++2s, heun and dpm2 do)",
                     d->name);
    if (st == LD_OK) st = check_family_config(ctx, s, cfg, where ? where : "scheduler config");
    if (st != LD_OK) {
        ld_scheduler_free(s);
        return st;
    }
    *out = s;
    return LD_OK;
}

void ld_scheduler_free(ld_scheduler *s) {
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->sigma_table);
    free(s->timesteps);
    free(s->sigmas);
    free(s->sigmas_interpol);
    for (int i = 0; i < 4; i++) free(s->hist[i]);
    free(s->ddpmw);
    free(s);
}

const ld_sampler_desc *ld_scheduler_desc(const ld_scheduler *s) { return s->desc; }
ld_schedule ld_scheduler_schedule(const ld_scheduler *s) { return s->schedule; }

const char *ld_scheduler_spacing(const ld_scheduler *s) {
    if (s->fam == &sched_lcm_family || s->fam == &sched_ddpmw_family) return "";
    return s->spacing == SPACING_TRAILING ? "trailing" : s->spacing == SPACING_LINSPACE ? "linspace" : "leading";
}

ld_status ld_scheduler_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps) {
    if (steps < 1 || steps > s->num_train)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "step count %d is out of range (1..%d)", steps, s->num_train);
    for (int i = 0; i < 4; i++) {
        free(s->hist[i]);
        s->hist[i] = NULL;
    }
    s->n = 0;
    s->lower_order_nums = 0;
    s->second = 0;
    s->begin = 0;
    s->steps = steps;
    return s->fam->set_timesteps(ctx, s, steps);
}

ld_status ld_scheduler_set_custom(ld_ctx *ctx, ld_scheduler *s, const float *points, int n_points) {
    s->begin = 0;
    if (s->fam == &sched_ddpmw_family) return sched_ddpmw_set_custom(ctx, s, points, n_points);
    return ld_fail(ctx, LD_ERR_UNSUPPORTED, "sampler %s does not take a custom timestep list", s->desc->name);
}

int ld_scheduler_num_train(const ld_scheduler *s) { return s->num_train; }
int ld_scheduler_steps(const ld_scheduler *s) { return s->steps; }
int ld_scheduler_calls(const ld_scheduler *s) { return s->calls; }
int ld_scheduler_order(const ld_scheduler *s) { return s->order; }
float ld_scheduler_timestep(const ld_scheduler *s, int call) { return s->timesteps[call]; }

const float *ld_scheduler_timesteps(const ld_scheduler *s, int *count) {
    *count = s->npoints;
    return s->timesteps;
}

const float *ld_scheduler_sigmas(const ld_scheduler *s, int *count) {
    if (count) *count = s->nsigmas;
    return s->nsigmas ? s->sigmas : NULL;
}

float ld_scheduler_init_noise_sigma(const ld_scheduler *s) { return s->init_noise_sigma; }
void ld_scheduler_set_begin(ld_scheduler *s, int call) { s->begin = call; }
int ld_scheduler_begin(const ld_scheduler *s) { return s->begin; }

void ld_scheduler_add_noise(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out,
                            int64_t n) {
    s->fam->add_noise(s, call, x0, noise, out, n);
}

void ld_scheduler_scale_input(const ld_scheduler *s, int call, const float *x, float *out, int64_t n) {
    s->fam->scale_input(s, call, x, out, n);
}

void ld_scheduler_predict_x0(const ld_scheduler *s, int call, const float *out, const float *x, float *x0,
                             int64_t n) {
    /* alpha, sigma of the sample's parametrisation: k-samplers keep x = x0 + sigma * eps
     * (alpha 1); the others x = alpha * x0 + sqrt(1 - alpha^2) * eps */
    float alpha, sigma;
    if (s->fam == &sched_ddpmw_family) {
        const float a = sched_ddpmw_alpha_cumprod(s, call);
        alpha = sqrtf(a), sigma = sqrtf(1.0f - a);
    } else if (s->fam == &sched_ddim_family || s->fam == &sched_lcm_family) {
        const float a = s->alphas_cumprod[(int)s->timesteps[call]];
        alpha = sqrtf(a), sigma = sqrtf(1.0f - a);
    } else if (s->fam == &sched_dpmpp_2m_family || s->fam == &sched_dpmpp_2s_family || s->fam == &sched_unipc_family) {
        alpha = 1.0f / sqrtf(s->sigmas[call] * s->sigmas[call] + 1.0f), sigma = s->sigmas[call] * alpha;
    } else {
        alpha = 1.0f, sigma = s->sigmas[call];
    }
    const float c = 1.0f / sqrtf(sigma * sigma / (alpha * alpha) + 1.0f); /* v-prediction in sigma space */
    for (int64_t i = 0; i < n; i++) {
        if (s->prediction == PRED_EPSILON) x0[i] = (x[i] - sigma * out[i]) / alpha;
        else if (s->prediction == PRED_SAMPLE) x0[i] = out[i];
        else x0[i] = c * (x[i] / alpha * c - sigma / alpha * out[i]);
    }
}

ld_status ld_scheduler_training_pair(ld_ctx *ctx, const ld_scheduler *s, const int64_t *t, int B,
                                     int64_t per_sample, const float *x0, const float *noise, float *noisy,
                                     float *target) {
    for (int b = 0; b < B; b++)
        if (t[b] < 0 || t[b] >= s->num_train)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training timestep %lld of sample %d is outside 0..%d",
                           (long long)t[b], b, s->num_train - 1);
    for (int b = 0; b < B; b++) {
        /* DDPMScheduler.add_noise / get_velocity: sqrt of the float32 alphas_cumprod entry, products in float32 */
        const float a = s->alphas_cumprod[t[b]], sa = sqrtf(a), s1 = sqrtf(1.0f - a);
        const int64_t o = b * per_sample;
        for (int64_t i = o; i < o + per_sample; i++) {
            noisy[i] = sa * x0[i] + s1 * noise[i];
            target[i] = s->prediction == PRED_EPSILON ? noise[i] : s->prediction == PRED_V ? sa * noise[i] - s1 * x0[i]
                                                                                            : x0[i];
        }
    }
    return LD_OK;
}

int ld_scheduler_needs_noise(const ld_scheduler *s, int call) {
    return s->fam->needs_noise ? s->fam->needs_noise(s, call) : 0;
}

ld_status ld_scheduler_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *model_out, float *x,
                            const float *noise, int64_t n) {
    if (call < 0 || call >= s->calls)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "scheduler call %d is out of range (0..%d)", call, s->calls - 1);
    if (ld_scheduler_needs_noise(s, call) && !noise)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "sampler %s needs a noise tensor at call %d", s->desc->name, call);
    return s->fam->step(ctx, s, call, model_out, x, noise, n);
}
