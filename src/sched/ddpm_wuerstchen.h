/* DDPMWuerstchenScheduler (diffusers), used by Wuerstchen v2 and Stable
 * Cascade: a continuous cosine schedule over the ratio t in [0, 1] (t = 1 is
 * pure noise) and the DDPM posterior step with epsilon prediction.
 * Spec: specs/wuerstchen.md section 7. Every value is computed in f32 in the
 * same order as PyTorch so that timesteps and steps match bit for bit.
 *
 *     ld_ddpmw s;
 *     LD_TRY(ld_ddpmw_init(ctx, &s, "scheduler/scheduler_config.json", cfg));  // cfg may be NULL
 *     LD_TRY(ld_ddpmw_set_timesteps(ctx, &s, 12));          // linspace(1, 0, 13)
 *     for (int i = 0; i < s.n_steps; i++) {
 *         float t = s.timesteps[i];
 *         ... eps = model(x, t) ...
 *         ld_ddpmw_step(&s, x, eps, t, x, noise_i, n);       // noise_i ~ N(0,1), ignored at the last step
 *     }
 *     ld_ddpmw_free(&s);
 */
#ifndef LD_SCHED_DDPM_WUERSTCHEN_H
#define LD_SCHED_DDPM_WUERSTCHEN_H

#include "base/status.h"
#include <jansson.h>
#include <stdint.h>

#define LD_DDPMW_MAX_POINTS 1001

typedef struct ld_ddpmw_s {
    float s, scaler;
    float init_alpha_cumprod; /* cos^2(s/(1+s) * pi/2) */
    int n_points;             /* entries of timesteps (steps + 1, the last is the final prev t) */
    int n_steps;              /* model evaluations: n_points - 1 */
    float timesteps[LD_DDPMW_MAX_POINTS];
} ld_ddpmw;

/* The v2 prior's recommended list (DEFAULT_STAGE_C_TIMESTEPS): 30 values, 29 steps. */
#define LD_DDPMW_STAGE_C_POINTS 30
void ld_ddpmw_default_stage_c(float out[LD_DDPMW_STAGE_C_POINTS]);

/* cfg: parsed scheduler_config.json or NULL (s 0.008, scaler 1). */
ld_status ld_ddpmw_init(ld_ctx *ctx, ld_ddpmw *s, const char *where, const json_t *cfg);
/* torch.linspace(1, 0, steps + 1) in f32. */
ld_status ld_ddpmw_set_timesteps(ld_ctx *ctx, ld_ddpmw *s, int steps);
/* A custom list (torch.Tensor(list)): n_points values, steps = n_points - 1. */
ld_status ld_ddpmw_set_custom(ld_ctx *ctx, ld_ddpmw *s, const float *points, int n_points);
void ld_ddpmw_free(ld_ddpmw *s);

/* alpha-bar(t), clamped to [1e-4, 0.9999]. */
float ld_ddpmw_alpha_cumprod(const ld_ddpmw *s, float t);
/* The entry after the timestep nearest to t (argmin |timesteps - t|). */
float ld_ddpmw_prev_timestep(const ld_ddpmw *s, float t);
/* x_prev = mu + sigma * noise * [prev_t != 0]; n elements. out may alias x.
 * noise may be NULL when prev_t is 0. */
void ld_ddpmw_step(const ld_ddpmw *s, float *out, const float *eps, float t, const float *x, const float *noise,
                   int64_t n);

/* torch.linspace(start, end, steps) in f32 into out[steps], bit-exact with
 * PyTorch on x86 CPUs (its 8-wide vector chunks included). */
void ld_linspace_f32(float *out, float start, float end, int steps);

#endif
