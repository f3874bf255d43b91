/* Euler / Euler-ancestral schedulers against diffusers: every case of
 * testdata/cases/schedulers/euler.safetensors (timesteps, sigmas,
 * init_noise_sigma, and per step scale_model_input and step with the stored
 * model outputs and noise), plus the golden values of specs/koala.md 6.2 and
 * config errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "sched/euler.h"
#include "test_util.h"

static const float *get(const ld_safetensors *st, const char *key, const char *suffix, int64_t *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", key, suffix);
    const ld_tensor *t = ld_safetensors_find(st, name);
    if (!t || t->dtype != LD_F32) {
        CHECK(0, "missing tensor %s", name);
        return NULL;
    }
    if (n) *n = ld_tensor_numel(t);
    return (const float *)t->data;
}

static double fmax_nan(double a, double b) { return isnan(b) ? INFINITY : b > a ? b : a; }

static void run_case(ld_ctx *ctx, const ld_safetensors *st, const json_t *c) {
    const char *key = json_string_value(json_object_get(c, "key"));
    const char *sched = json_string_value(json_object_get(c, "scheduler"));
    int steps = (int)json_integer_value(json_object_get(c, "steps"));
    const json_t *cfg = json_object_get(c, "config");
    ld_euler_kind kind = !strcmp(sched, "EulerAncestralDiscreteScheduler") ? LD_EULER_A : LD_EULER;
    ld_euler s;
    if (ld_euler_init(ctx, &s, cfg, key, kind, NULL) != LD_OK || ld_euler_set_timesteps(ctx, &s, steps) != LD_OK) {
        CHECK(0, "%s: %s", key, ld_ctx_error(ctx));
        return;
    }
    char what[256];
    int64_t nt, ns, nx;
    const float *ts = get(st, key, "timesteps", &nt), *sg = get(st, key, "sigmas", &ns);
    const float *ins = get(st, key, "init_noise_sigma", NULL), *x0 = get(st, key, "x0", &nx);
    if (!ts || !sg || !ins || !x0) {
        ld_euler_free(&s);
        return;
    }
    CHECK(nt == s.steps && ns == s.steps + 1, "%s: %lld timesteps, we have %d", key, (long long)nt, s.steps);
    if (nt == s.steps && ns == s.steps + 1) {
        snprintf(what, sizeof what, "%s timesteps", key);
        test_close(what, s.timesteps, ts, nt, 1e-6);
        snprintf(what, sizeof what, "%s sigmas", key);
        test_close(what, s.sigmas, sg, ns, 1e-6);
    }
    CHECK(fabsf(s.init_noise_sigma - ins[0]) <= 1e-6f * ins[0], "%s init_noise_sigma %.9g vs %.9g", key,
          s.init_noise_sigma, ins[0]);
    float *x = malloc(sizeof(float) * nx), *xin = malloc(sizeof(float) * nx);
    memcpy(x, x0, sizeof(float) * nx);
    float *xt = malloc(sizeof(float) * nx);
    const float *prev_ref_x = x0;
    double worst_in = 0, worst_step = 0, worst_prev = 0;
    for (int k = 0; k < s.steps && k < nt; k++) {
        char sfx[64];
        snprintf(sfx, sizeof sfx, "step%d.scaled_input", k);
        const float *ref_in = get(st, key, sfx, NULL);
        snprintf(sfx, sizeof sfx, "step%d.eps", k);
        const float *eps = get(st, key, sfx, NULL);
        snprintf(sfx, sizeof sfx, "step%d.prev", k);
        const float *ref_prev = get(st, key, sfx, NULL);
        const float *noise = NULL;
        if (kind == LD_EULER_A) {
            snprintf(sfx, sizeof sfx, "step%d.noise", k);
            noise = get(st, key, sfx, NULL);
        }
        if (!ref_in || !eps || !ref_prev || (kind == LD_EULER_A && !noise)) break;
        /* teacher-forced: this step alone, from the reference's input x */
        const float *xref = k == 0 ? x0 : prev_ref_x;
        memcpy(xt, xref, sizeof(float) * nx);
        ld_euler_scale_input(&s, k, xt, xin, nx);
        ld_euler_step(&s, k, eps, xt, noise, nx);
        /* free-running: our own x through all steps */
        ld_euler_step(&s, k, eps, x, noise, nx);
        for (int64_t i = 0; i < nx; i++) {
            worst_in = fmax_nan(worst_in, fabs(xin[i] - ref_in[i]) / fmax(1.0, fabs(ref_in[i])));
            worst_step = fmax_nan(worst_step, fabs(xt[i] - ref_prev[i]) / fmax(1.0, fabs(ref_prev[i])));
            worst_prev = fmax_nan(worst_prev, fabs(x[i] - ref_prev[i]) / fmax(1.0, fabs(ref_prev[i])));
        }
        prev_ref_x = ref_prev;
    }
    printf("%-22s steps %2d: max rel err scaled_input %.2e, one step %.2e, after all steps %.2e\n", key, s.steps,
           worst_in, worst_step, worst_prev);
    CHECK(worst_in <= 1e-5 && worst_step <= 1e-5, "%s: step error %.3g / %.3g", key, worst_in, worst_step);
    CHECK(worst_prev <= 1e-4, "%s: error after all steps %.3g", key, worst_prev);
    free(x);
    free(xin);
    free(xt);
    ld_euler_free(&s);
}

static json_t *sdxl_config(const char *spacing) {
    json_t *c = json_pack("{s:i,s:f,s:f,s:s,s:s,s:s,s:i}", "num_train_timesteps", 1000, "beta_start", 0.00085,
                          "beta_end", 0.012, "beta_schedule", "scaled_linear", "prediction_type", "epsilon",
                          "timestep_spacing", spacing, "steps_offset", 1);
    return c;
}

/* specs/koala.md 6.2 golden table (computed independently of the test data). */
static void golden(ld_ctx *ctx) {
    static const float trailing10[] = {14.614647f, 8.302806f, 5.087765f, 3.321084f, 2.276464f, 1.612887f,
                                       1.160579f,  0.829860f, 0.569285f, 0.341674f, 0.0f};
    static const float leading25_head[] = {11.676050f, 9.338079f, 7.562390f};
    json_t *cfg = sdxl_config("leading");
    ld_euler s;
    CHECK(ld_euler_init(ctx, &s, cfg, "golden", LD_EULER, "trailing") == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_euler_set_timesteps(ctx, &s, 10) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int i = 0; i < 10; i++) CHECK(s.timesteps[i] == 999.0f - 100.0f * i, "trailing t[%d] = %g", i, s.timesteps[i]);
    for (int i = 0; i <= 10; i++)
        CHECK(fabsf(s.sigmas[i] - trailing10[i]) <= 2e-6f, "trailing sigma[%d] %.7f vs %.7f", i, s.sigmas[i],
              trailing10[i]);
    CHECK(fabsf(s.init_noise_sigma - 14.614647f) < 2e-6f, "trailing init sigma %.7f", s.init_noise_sigma);
    ld_euler_free(&s);
    CHECK(ld_euler_init(ctx, &s, cfg, "golden", LD_EULER, NULL) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_euler_set_timesteps(ctx, &s, 25) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(s.timesteps[0] == 961.0f && s.timesteps[24] == 1.0f, "leading t %g .. %g", s.timesteps[0], s.timesteps[24]);
    for (int i = 0; i < 3; i++)
        CHECK(fabsf(s.sigmas[i] - leading25_head[i]) <= 2e-6f, "leading sigma[%d] %.7f", i, s.sigmas[i]);
    CHECK(fabsf(s.sigmas[24] - 0.041314f) <= 1e-6f, "leading sigma[24] %.7f", s.sigmas[24]);
    CHECK(fabsf(s.init_noise_sigma - 11.718795f) < 2e-6f, "leading init sigma %.7f", s.init_noise_sigma);
    /* steps out of range */
    CHECK(ld_euler_set_timesteps(ctx, &s, 0) == LD_ERR_INVALID_ARGUMENT, "0 steps accepted");
    CHECK(ld_euler_set_timesteps(ctx, &s, 1001) == LD_ERR_INVALID_ARGUMENT, "1001 steps accepted");
    ld_euler_free(&s);
    json_decref(cfg);
}

static void config_errors(ld_ctx *ctx) {
    struct {
        const char *key;
        json_t *value;
        const char *expect;
    } bad[] = {
        {"beta_schedule", json_string("squaredcos_cap_v3"), "beta_schedule"},
        {"timestep_spacing", json_string("sideways"), "timestep_spacing"},
        {"prediction_type", json_string("flow"), "prediction_type"},
        {"use_karras_sigmas", json_true(), "use_karras_sigmas"},
        {"interpolation_type", json_string("log_linear"), "interpolation_type"},
        {"num_train_timesteps", json_string("1000"), "num_train_timesteps"},
        {"trained_betas", json_pack("[f,f]", 0.1, 0.2), "trained_betas"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *cfg = sdxl_config("leading");
        json_object_set_new(cfg, bad[i].key, bad[i].value);
        ld_euler s;
        ld_status st = ld_euler_init(ctx, &s, cfg, "sched.json", LD_EULER, NULL);
        CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), bad[i].expect) && strstr(ld_ctx_error(ctx), "sched.json"),
              "bad %s: status %d message '%s'", bad[i].key, st, ld_ctx_error(ctx));
        if (st == LD_OK) ld_euler_free(&s);
        json_decref(cfg);
    }
}

/* v-prediction and 'linear' betas: check one step against the formulas
 * written out plainly in double. */
static void v_prediction(ld_ctx *ctx) {
    json_t *cfg = sdxl_config("trailing");
    json_object_set_new(cfg, "prediction_type", json_string("v_prediction"));
    json_object_set_new(cfg, "beta_schedule", json_string("linear"));
    ld_euler s;
    CHECK(ld_euler_init(ctx, &s, cfg, "v", LD_EULER, NULL) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_euler_set_timesteps(ctx, &s, 4) == LD_OK, "%s", ld_ctx_error(ctx));
    /* linear betas: acp[999] = prod(1 - beta_i), beta linear 0.00085 .. 0.012 */
    double acp = 1;
    for (int i = 0; i < 1000; i++) acp *= 1.0 - (0.00085 + (0.012 - 0.00085) * i / 999.0);
    double sig = sqrt((1 - acp) / acp);
    CHECK(fabs(s.sigmas[0] - sig) < 1e-4 * sig, "linear sigma max %g vs %g", s.sigmas[0], sig);
    float x[8], eps[8], ref[8];
    uint64_t seed = 5;
    test_fill(x, 8, seed);
    test_fill(eps, 8, seed + 1);
    double sg = s.sigmas[1], sn = s.sigmas[2];
    for (int i = 0; i < 8; i++) {
        double x0 = eps[i] * (-sg / sqrt(sg * sg + 1)) + x[i] / (sg * sg + 1);
        ref[i] = (float)(x[i] + (x[i] - x0) / sg * (sn - sg));
    }
    ld_euler_step(&s, 1, eps, x, NULL, 8);
    test_close("v_prediction step", x, ref, 8, 1e-5);
    ld_euler_free(&s);
    json_decref(cfg);
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    golden(ctx);
    config_errors(ctx);
    v_prediction(ctx);
    const char *td = test_testdata_dir();
    if (!td) {
        ld_ctx_free(ctx);
        return test_skip("no testdata");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/cases/schedulers/euler.safetensors", td);
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return test_finish();
    }
    const char *meta = ld_safetensors_meta_get(st, "cases");
    json_t *cases = NULL;
    CHECK(meta && ld_json_parse(ctx, path, meta, strlen(meta), &cases) == LD_OK, "no cases metadata");
    size_t i;
    json_t *c;
    int ncases = 0;
    json_array_foreach(cases, i, c) {
        run_case(ctx, st, c);
        ncases++;
    }
    CHECK(ncases >= 30, "only %d scheduler cases", ncases);
    json_decref(cases);
    ld_safetensors_close(st);
    ld_ctx_free(ctx);
    return test_finish();
}
