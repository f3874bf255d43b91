/* Every sampler behind the scheduler interface (src/sched/scheduler.h)
 * against diffusers' scheduler classes: each case of
 * cases/schedulers/samplers.safetensors and euler.safetensors (timesteps,
 * sigmas, init_noise_sigma, and for every model call the scaled input and the
 * step's result, fed the stored model outputs and, for stochastic steps, the
 * stored noise) within the module tolerance of testdata/README.md, running
 * free (our own sample from call to call). Samplers the file has that are not
 * built yet are listed as MISSING. Then the names (short, A1111 labels,
 * Karras), and bad names, schedules and step counts. */
#include "io/json.h"
#include "io/safetensors.h"
#include "sched/scheduler.h"
#include "test_util.h"

static const float *get(const ld_safetensors *st, const char *key, const char *sfx, int64_t *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", key, sfx);
    const ld_tensor *t = ld_safetensors_find(st, name);
    if (!t || t->dtype != LD_F32) return NULL;
    if (n) *n = ld_tensor_numel(t);
    return t->data;
}

/* max |a - b| / max(1, max |b|) */
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 1;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = isnan(e) ? INFINITY : e;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return d / m;
}

static int missing;

static void run_case(ld_ctx *ctx, const ld_safetensors *st, const json_t *c, const char *file) {
    const char *key = json_string_value(json_object_get(c, "key"));
    const char *label = json_string_value(json_object_get(c, "sampler"));
    const char *cls = json_string_value(json_object_get(c, "scheduler"));
    const json_t *cfg = json_object_get(c, "config");
    int steps = (int)json_integer_value(json_object_get(c, "steps"));
    if (!label) label = !strcmp(cls, "EulerAncestralDiscreteScheduler") ? "Euler a" : "Euler";
    ld_schedule sched = LD_SCHEDULE_DEFAULT;
    const ld_sampler_desc *d = ld_sampler_find(label, &sched);
    if (!d) {
        printf("MISSING %-28s %s (%s) is not built yet\n", key, label, cls);
        missing++;
        return;
    }
    ld_scheduler *s = NULL;
    if (ld_scheduler_create(ctx, label, sched, cfg, file, NULL, &s) != LD_OK ||
        ld_scheduler_set_timesteps(ctx, s, steps) != LD_OK) {
        CHECK(0, "%s: %s", key, ld_ctx_error(ctx));
        ld_scheduler_free(s);
        return;
    }
    int64_t nt = 0, ns = 0, nx = 0;
    const float *ts = get(st, key, "timesteps", &nt), *sg = get(st, key, "sigmas", &ns);
    const float *ins = get(st, key, "init_noise_sigma", NULL), *x0 = get(st, key, "x0", &nx);
    CHECK(ts && ins && x0, "%s: case tensors", key);
    if (!ts || !ins || !x0) {
        ld_scheduler_free(s);
        return;
    }
    int calls = ld_scheduler_calls(s);
    double ets = 0, esg = 0;
    CHECK(calls == nt, "%s: %d calls, the reference %lld", key, calls, (long long)nt);
    for (int i = 0; i < calls && i < nt; i++) {
        double e = fabs(ld_scheduler_timestep(s, i) - ts[i]) / (fabs(ts[i]) > 1 ? fabs(ts[i]) : 1);
        if (e > ets) ets = e;
    }
    if (sg) {
        int n = 0;
        const float *ours = ld_scheduler_sigmas(s, &n);
        CHECK(ours && n == ns, "%s: %d sigmas, the reference %lld", key, n, (long long)ns);
        if (ours && n == ns) esg = rel_err(ours, sg, ns);
    }
    CHECK(ets <= 1e-4 && esg <= 1e-4, "%s: timesteps err %.2e, sigmas err %.2e", key, ets, esg);
    CHECK(fabsf(ld_scheduler_init_noise_sigma(s) - ins[0]) <= 1e-4f * (ins[0] > 1 ? ins[0] : 1),
          "%s: init_noise_sigma %.7g vs %.7g", key, ld_scheduler_init_noise_sigma(s), ins[0]);
    float *x = malloc(sizeof(float) * (size_t)nx), *xin = malloc(sizeof(float) * (size_t)nx);
    memcpy(x, x0, sizeof(float) * (size_t)nx);
    double ein = 0, eprev = 0;
    int ran = 0;
    for (int k = 0; k < calls && k < nt; k++) {
        char sfx[64];
        snprintf(sfx, sizeof sfx, "step%d.scaled_input", k);
        const float *ref_in = get(st, key, sfx, NULL);
        snprintf(sfx, sizeof sfx, "step%d.eps", k);
        const float *eps = get(st, key, sfx, NULL);
        snprintf(sfx, sizeof sfx, "step%d.prev", k);
        const float *ref_prev = get(st, key, sfx, NULL);
        snprintf(sfx, sizeof sfx, "step%d.noise", k);
        const float *noise = get(st, key, sfx, NULL);
        if (!ref_in || !eps || !ref_prev) break;
        ld_scheduler_scale_input(s, k, x, xin, nx);
        double e = rel_err(xin, ref_in, nx);
        if (e > ein) ein = e;
        if (ld_scheduler_step(ctx, s, k, eps, x, ld_scheduler_needs_noise(s, k) ? noise : NULL, nx) != LD_OK) {
            CHECK(0, "%s call %d: %s", key, k, ld_ctx_error(ctx));
            break;
        }
        e = rel_err(x, ref_prev, nx);
        if (e > eprev) eprev = e;
        ran++;
    }
    int ok = ran == calls && ein <= 1e-4 && eprev <= 1e-4;
    CHECK(ok, "%s: %d of %d calls, scaled_input err %.2e, prev err %.2e", key, ran, calls, ein, eprev);
    printf("%s %-28s %-20s %2d steps %2d calls: timesteps %.1e sigmas %.1e scaled_input %.1e prev %.1e\n",
           ok ? "ok  " : "FAIL", key, ld_sampler_label(d, ld_scheduler_schedule(s)), steps, calls, ets, esg, ein,
           eprev);
    free(x);
    free(xin);
    ld_scheduler_free(s);
}

static void run_file(ld_ctx *ctx, const char *td, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/cases/schedulers/%s", td, name);
    ld_safetensors *st = NULL;
    if (ld_safetensors_open(ctx, path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    const char *meta = ld_safetensors_meta_get(st, "cases");
    json_t *cases = NULL;
    CHECK(meta && ld_json_parse(ctx, path, meta, strlen(meta), &cases) == LD_OK, "%s: cases metadata", name);
    for (size_t i = 0; cases && i < json_array_size(cases); i++) run_case(ctx, st, json_array_get(cases, i), path);
    json_decref(cases);
    ld_safetensors_close(st);
}

static void check_names(ld_ctx *ctx) {
    ld_schedule sc = LD_SCHEDULE_DEFAULT;
    const ld_sampler_desc *d = ld_sampler_find("DPM++ 2M Karras", &sc);
    CHECK(d && !strcmp(d->name, "dpm++2m") && sc == LD_SCHEDULE_KARRAS, "A1111 label with Karras");
    sc = LD_SCHEDULE_KARRAS;
    d = ld_sampler_find("euler_a", &sc);
    CHECK(d && !strcmp(d->label, "Euler a") && sc == LD_SCHEDULE_KARRAS, "short name keeps the schedule");
    CHECK(!ld_sampler_find("dpm++5m", NULL), "unknown name");
    CHECK(!strcmp(ld_sampler_label(ld_sampler_find("dpm2", NULL), LD_SCHEDULE_KARRAS), "DPM2 Karras"), "label");
    json_t *cfg = json_pack("{s:s,s:f,s:f,s:s,s:i}", "beta_schedule", "scaled_linear", "beta_start", 0.00085,
                            "beta_end", 0.012, "timestep_spacing", "leading", "steps_offset", 1);
    ld_scheduler *s = NULL;
    CHECK(ld_scheduler_create(ctx, "nope", LD_SCHEDULE_DEFAULT, cfg, "cfg", NULL, &s) != LD_OK &&
              strstr(ld_ctx_error(ctx), "nope") && strstr(ld_ctx_error(ctx), "dpm++2m"),
          "unknown sampler named with the list: %s", ld_ctx_error(ctx));
    CHECK(ld_scheduler_create(ctx, "ddim", LD_SCHEDULE_KARRAS, cfg, "cfg", NULL, &s) != LD_OK &&
              strstr(ld_ctx_error(ctx), "karras"),
          "karras refused for DDIM: %s", ld_ctx_error(ctx));
    CHECK(ld_scheduler_create(ctx, "lcm", LD_SCHEDULE_DEFAULT, cfg, "cfg", NULL, &s) == LD_OK, "lcm");
    CHECK(s && ld_scheduler_set_timesteps(ctx, s, 0) != LD_OK, "0 steps refused");
    CHECK(s && ld_scheduler_set_timesteps(ctx, s, 60) != LD_OK && strstr(ld_ctx_error(ctx), "original"),
          "LCM beyond original_inference_steps: %s", ld_ctx_error(ctx));
    ld_scheduler_free(s);
    json_object_set_new(cfg, "thresholding", json_true());
    CHECK(ld_scheduler_create(ctx, "euler", LD_SCHEDULE_DEFAULT, cfg, "cfg", NULL, &s) != LD_OK &&
              strstr(ld_ctx_error(ctx), "thresholding"),
          "unsupported option named: %s", ld_ctx_error(ctx));
    json_decref(cfg);
}

int main(void) {
    const char *td = test_testdata_dir();
    ld_ctx *ctx = ld_ctx_new();
    check_names(ctx);
    if (!td) {
        ld_ctx_free(ctx);
        return test_skip("no testdata");
    }
    run_file(ctx, td, "euler.safetensors");
    run_file(ctx, td, "samplers.safetensors");
    printf("%d cases of samplers not built yet\n", missing);
    ld_ctx_free(ctx);
    return test_finish();
}
