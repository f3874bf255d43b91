/* DDPMWuerstchenScheduler against the reference cases
 * (cases/wuerstchen-tiny/scheduler.safetensors: timesteps and steps with the
 * noise given) and the values quoted in specs/wuerstchen.md section 7, both
 * directly and behind the scheduler interface (sampler "ddpm_wuerstchen",
 * which the denoising loop of every Wuerstchen / Cascade stage uses). */
#include "io/safetensors.h"
#include "sched/ddpm_wuerstchen.h"
#include "sched/scheduler.h"
#include "test_util.h"

static ld_ctx *ctx;

static float *get(ld_safetensors *f, const char *name, int64_t *n) {
    const ld_tensor *t = ld_safetensors_find(f, name);
    if (!t) return NULL;
    ld_tensor c;
    if (ld_tensor_to_f32(ctx, t, &c) != LD_OK) return NULL;
    *n = ld_tensor_numel(&c);
    return c.data; /* owned: free() */
}

static void test_spec_values(void) {
    ld_ddpmw s;
    CHECK(ld_ddpmw_init(ctx, &s, "test", NULL) == LD_OK, "init");
    CHECK(ld_ddpmw_set_timesteps(ctx, &s, 12) == LD_OK, "set_timesteps");
    CHECK(s.n_points == 13 && s.n_steps == 12, "13 points");
    CHECK(fabsf(s.timesteps[4] - 0.6666666269f) < 1e-9f, "linspace[4] = %.10f", s.timesteps[4]);
    CHECK(fabsf(s.timesteps[8] - 0.3333333433f) < 1e-9f, "linspace[8] = %.10f", s.timesteps[8]);
    CHECK(s.timesteps[0] == 1.0f && s.timesteps[12] == 0.0f, "ends");
    CHECK(fabsf(s.init_alpha_cumprod - 0.99984455f) < 2e-7f, "init alpha %.8f", s.init_alpha_cumprod);
    struct { float t, a; } ex[] = {{1.0f, 1e-4f}, {0.9f, 0.024092f}, {2.0f / 3.0f, 0.246448f}, {0.5f, 0.493844f},
                                   {0.1f, 0.972093f}, {0.0f, 0.9999f}};
    for (int i = 0; i < 6; i++) {
        float a = ld_ddpmw_alpha_cumprod(&s, ex[i].t);
        CHECK(fabsf(a - ex[i].a) < 2e-6f, "alpha(%g) = %.7f, spec %.6f", ex[i].t, a, ex[i].a);
    }
    float d[LD_DDPMW_STAGE_C_POINTS];
    ld_ddpmw_default_stage_c(d);
    const float spec[30] = {1.0f, 0.98245615f, 0.96491230f, 0.94736844f, 0.92982459f, 0.91228068f, 0.89473683f,
                            0.87719297f, 0.85964912f, 0.84210527f, 0.82456142f, 0.80701756f, 0.78947371f,
                            0.77192980f, 0.75438595f, 0.73684210f, 0.71929824f, 0.70175439f, 0.68421054f,
                            0.66666669f, 0.60000002f, 0.53333336f, 0.46666667f, 0.40000001f, 0.33333334f,
                            0.26666668f, 0.20000000f, 0.13333334f, 0.06666667f, 0.0f};
    int same = 1;
    for (int i = 0; i < 30; i++) same &= fabsf(d[i] - spec[i]) <= 6e-8f;
    CHECK(same, "DEFAULT_STAGE_C_TIMESTEPS");
    CHECK(ld_ddpmw_set_custom(ctx, &s, d, 30) == LD_OK && s.n_steps == 29, "custom list: 29 steps");
    CHECK(ld_ddpmw_prev_timestep(&s, d[19]) == d[20], "prev of 2/3");
    /* errors */
    CHECK(ld_ddpmw_set_timesteps(ctx, &s, 0) == LD_ERR_INVALID_ARGUMENT, "0 steps rejected");
    float bad[2] = {1.5f, 0.0f};
    CHECK(ld_ddpmw_set_custom(ctx, &s, bad, 2) == LD_ERR_INVALID_ARGUMENT, "t > 1 rejected");
    CHECK(strstr(ld_ctx_error(ctx), "timestep 0") != NULL, "message: %s", ld_ctx_error(ctx));
    json_t *cfg = json_pack("{s:s}", "s", "x");
    CHECK(ld_ddpmw_init(ctx, &s, "sched.json", cfg) != LD_OK && strstr(ld_ctx_error(ctx), "sched.json"),
          "bad config type rejected: %s", ld_ctx_error(ctx));
    json_decref(cfg);
}

static void test_cases(const char *td) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cases/wuerstchen-tiny/scheduler.safetensors", td);
    ld_safetensors *f;
    if (ld_safetensors_open(ctx, path, &f) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    int ns[] = {1, 3, 12, 20};
    for (int k = 0; k < 4; k++) {
        int N = ns[k];
        char name[128];
        snprintf(name, sizeof name, "n%d.timesteps", N);
        int64_t nt;
        float *ts = get(f, name, &nt);
        CHECK(ts != NULL, "%s present", name);
        if (!ts) continue;
        ld_ddpmw s;
        ld_ddpmw_init(ctx, &s, "test", NULL);
        ld_ddpmw_set_timesteps(ctx, &s, N);
        int exact = nt == s.n_points;
        for (int i = 0; exact && i < nt; i++) exact = ts[i] == s.timesteps[i];
        CHECK(exact, "n%d timesteps bit-exact", N);
        ld_scheduler *is = NULL;
        CHECK(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_DEFAULT, NULL, "test", NULL, &is) == LD_OK &&
                  ld_scheduler_set_timesteps(ctx, is, N) == LD_OK,
              "interface: %s", ld_ctx_error(ctx));
        if (is) {
            int count = 0;
            const float *its = ld_scheduler_timesteps(is, &count);
            int same = count == nt && ld_scheduler_calls(is) == N;
            for (int i = 0; same && i < nt; i++) same = its[i] == ts[i];
            CHECK(same, "interface n%d: %d calls, %d timesteps, bit-exact", N, ld_scheduler_calls(is), count);
            CHECK(ld_scheduler_needs_noise(is, N - 1) && ld_scheduler_init_noise_sigma(is) == 1.0f,
                  "interface: every step takes noise, init sigma 1");
        }
        for (int i = 0; i < N; i++) {
            int64_t n = 0, n2 = 0, n3 = 0, n4 = 0;
            snprintf(name, sizeof name, "n%d.step%d.x", N, i);
            float *x = get(f, name, &n);
            if (!x) break; /* the file holds the first steps only */
            snprintf(name, sizeof name, "n%d.step%d.eps", N, i);
            float *eps = get(f, name, &n2);
            snprintf(name, sizeof name, "n%d.step%d.noise", N, i);
            float *noise = get(f, name, &n3);
            snprintf(name, sizeof name, "n%d.step%d.prev", N, i);
            float *prev = get(f, name, &n4);
            CHECK(eps && noise && prev && n2 == n && n3 == n && n4 == n, "step tensors");
            if (eps && noise && prev) {
                float *out = malloc((size_t)n * 4);
                ld_ddpmw_step(&s, out, eps, s.timesteps[i], x, noise, n);
                snprintf(name, sizeof name, "n%d step %d", N, i);
                test_close(name, out, prev, n, 1e-5);
                if (is) { /* the same step through the interface (in place) */
                    memcpy(out, x, (size_t)n * 4);
                    CHECK(ld_scheduler_step(ctx, is, i, eps, out, noise, n) == LD_OK, "interface step");
                    snprintf(name, sizeof name, "interface n%d step %d", N, i);
                    test_close(name, out, prev, n, 1e-5);
                }
                free(out);
            }
            free(x);
            free(eps);
            free(noise);
            free(prev);
        }
        free(ts);
        ld_scheduler_free(is);
    }
    ld_safetensors_close(f);
    /* Stage C's custom list and refusals behind the interface */
    ld_scheduler *is = NULL;
    float d[LD_DDPMW_STAGE_C_POINTS];
    ld_ddpmw_default_stage_c(d);
    CHECK(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_DEFAULT, NULL, "test", NULL, &is) == LD_OK &&
              ld_scheduler_set_custom(ctx, is, d, LD_DDPMW_STAGE_C_POINTS) == LD_OK &&
              ld_scheduler_calls(is) == LD_DDPMW_STAGE_C_POINTS - 1 && ld_scheduler_timestep(is, 19) == d[19],
          "custom Stage C list through the interface");
    ld_scheduler_free(is);
    CHECK(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_KARRAS, NULL, "test", NULL, &is) != LD_OK &&
              strstr(ld_ctx_error(ctx), "karras"),
          "karras refused: %s", ld_ctx_error(ctx));
    CHECK(ld_sampler_find("ddpm_wuerstchen", NULL) == NULL, "not among the SDXL family's samplers");
}

int main(void) {
    ctx = ld_ctx_new();
    test_spec_values();
    const char *td = test_testdata_dir();
    if (td) test_cases(td);
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata for the reference cases");
    return test_finish();
}
