/* The small pieces of a training step against their definitions, in double:
 * the training pair of ld_scheduler_training_pair (DDPMScheduler.add_noise
 * and the epsilon / v_prediction / sample targets, scaled_linear betas),
 * max-norm clipping as torch.nn.utils.clip_grad_norm_, and AdamW as
 * torch.optim.AdamW over three steps; timesteps out of range are errors. */
#include "test_util.h"

#include "sched/scheduler.h"
#include "train/adamw.h"

#include <jansson.h>

static void check_pairs(ld_ctx *ctx, const char *prediction) {
    json_t *cfg = json_pack("{s:f, s:f, s:s, s:i, s:s}", "beta_start", 0.00085, "beta_end", 0.012, "beta_schedule",
                            "scaled_linear", "num_train_timesteps", 1000, "prediction_type", prediction);
    ld_scheduler *s = NULL;
    CHECK(ld_scheduler_create(ctx, "euler", LD_SCHEDULE_DEFAULT, cfg, "test", NULL, &s) == LD_OK, "scheduler: %s",
          ld_ctx_error(ctx));
    /* abar_t in double: betas = linspace(sqrt(b0), sqrt(b1), 1000)^2 */
    double abar[1000], acc = 1;
    for (int i = 0; i < 1000; i++) {
        const double sb = sqrt(0.00085) + (sqrt(0.012) - sqrt(0.00085)) * i / 999.0;
        acc *= 1 - sb * sb;
        abar[i] = acc;
    }
    const int64_t t[3] = {0, 421, 999}, per = 5;
    float x0[15], noise[15], noisy[15], target[15];
    test_fill(x0, 15, 1), test_fill(noise, 15, 2);
    CHECK(ld_scheduler_training_pair(ctx, s, t, 3, per, x0, noise, noisy, target) == LD_OK, "pair");
    double worst = 0;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < per; i++) {
            const int k = b * (int)per + i;
            const double a = sqrt(abar[t[b]]), c = sqrt(1 - abar[t[b]]);
            const double want_noisy = a * x0[k] + c * noise[k];
            const double want = !strcmp(prediction, "epsilon") ? noise[k] : !strcmp(prediction, "v_prediction")
                                                                                 ? a * noise[k] - c * x0[k]
                                                                                 : x0[k];
            worst = fmax(worst, fmax(fabs(noisy[k] - want_noisy), fabs(target[k] - want)));
        }
    CHECK(worst < 1e-5, "%s: noisy latents and target as diffusers defines them (max diff %.2e)", prediction, worst);
    const int64_t bad[1] = {1000};
    CHECK(ld_scheduler_training_pair(ctx, s, bad, 1, per, x0, noise, noisy, target) != LD_OK &&
              strstr(ld_ctx_error(ctx), "1000"),
          "timestep 1000 is refused");
    ld_scheduler_free(s);
    json_decref(cfg);
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    check_pairs(ctx, "epsilon");
    check_pairs(ctx, "v_prediction");
    check_pairs(ctx, "sample");

    /* clipping: norm 5 clipped to 1 scales by 1 / (5 + 1e-6); below the norm nothing changes */
    float g[2] = {3, 4};
    double norm = ld_clip_grad_norm(g, 2, 1.0);
    CHECK(fabs(norm - 5) < 1e-6 && fabs(g[0] - 3 / (5 + 1e-6)) < 1e-6 && fabs(g[1] - 4 / (5 + 1e-6)) < 1e-6,
          "clip to 1: %g %g (norm %g)", g[0], g[1], norm);
    float h[2] = {0.3f, 0.4f};
    ld_clip_grad_norm(h, 2, 1.0);
    CHECK(h[0] == 0.3f && h[1] == 0.4f, "a norm below the limit is left alone");

    /* AdamW, three steps against the formula in double */
    enum { N = 7 };
    float p[N], grad[N];
    double pr[N], m[N] = {0}, v[N] = {0};
    test_fill(p, N, 3);
    for (int i = 0; i < N; i++) pr[i] = p[i];
    ld_adamw o;
    CHECK(ld_adamw_init(ctx, &o, N, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f) == LD_OK, "adamw init");
    for (int step = 1; step <= 3; step++) {
        test_fill(grad, N, 10 + (uint64_t)step);
        float gcopy[N];
        memcpy(gcopy, grad, sizeof grad);
        ld_adamw_update(&o, p, grad, 1e-2f);
        for (int i = 0; i < N; i++) {
            pr[i] *= 1 - 1e-2 * 0.1;
            m[i] = 0.9 * m[i] + 0.1 * gcopy[i];
            v[i] = 0.999 * v[i] + 0.001 * (double)gcopy[i] * gcopy[i];
            const double mh = m[i] / (1 - pow(0.9, step)), vh = v[i] / (1 - pow(0.999, step));
            pr[i] -= 1e-2 * mh / (sqrt(vh) + 1e-8);
            CHECK(grad[i] == 0.0f, "AdamW leaves the gradient zeroed for the next step");
        }
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - pr[i]));
    CHECK(worst < 1e-6, "AdamW over three steps matches torch's formula (max diff %.2e)", worst);
    ld_adamw_free(&o);
    ld_ctx_free(ctx);
    return test_finish();
}
