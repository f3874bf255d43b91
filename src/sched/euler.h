/* Euler and Euler-ancestral discrete schedulers, numerically as diffusers'
 * EulerDiscreteScheduler / EulerAncestralDiscreteScheduler compute them
 * (float32 tables, torch's float32 linspace, cumprod accumulated in double).
 *
 *     ld_euler s;
 *     LD_TRY(ld_euler_init(ctx, &s, cfg, "scheduler/scheduler_config.json", LD_EULER_A, NULL));
 *     LD_TRY(ld_euler_set_timesteps(ctx, &s, steps));
 *     for (i = 0; i < n; i++) x[i] = noise[i] * s.init_noise_sigma;
 *     for (int k = 0; k < s.steps; k++) {
 *         ld_euler_scale_input(&s, k, x, x_in, n);        // x / sqrt(sigma^2 + 1)
 *         eps = unet(x_in, s.timesteps[k]);
 *         ld_euler_step(&s, k, eps, x, noise_k, n);       // noise only for LD_EULER_A
 *     }
 *     ld_euler_free(&s);
 *
 * Config keys read: num_train_timesteps, beta_start, beta_end, beta_schedule
 * (scaled_linear | linear), trained_betas, prediction_type (epsilon |
 * v_prediction | sample), timestep_spacing (leading | trailing | linspace),
 * steps_offset, final_sigmas_type (zero | sigma_min). Options that change the
 * sigma table in ways not implemented (karras / exponential / beta sigmas,
 * log_linear interpolation, zero-SNR rescaling, continuous timesteps) are
 * rejected with a message naming the field.
 */
#ifndef LD_SCHED_EULER_H
#define LD_SCHED_EULER_H

#include "base/status.h"
#include <jansson.h>
#include <stdint.h>

typedef enum { LD_EULER = 0, LD_EULER_A = 1 } ld_euler_kind;
typedef enum { LD_PRED_EPSILON = 0, LD_PRED_V = 1, LD_PRED_SAMPLE = 2 } ld_prediction;
typedef enum { LD_SPACING_LEADING = 0, LD_SPACING_TRAILING, LD_SPACING_LINSPACE } ld_spacing;

typedef struct {
    ld_euler_kind kind;
    ld_prediction prediction;
    ld_spacing spacing;
    int num_train;          /* num_train_timesteps */
    int steps_offset;
    int final_sigma_min;    /* final_sigmas_type == "sigma_min" */
    float *alphas_cumprod;  /* [num_train] */
    float *sigma_table;     /* [num_train]: sqrt((1 - acp) / acp) */
    /* after ld_euler_set_timesteps: */
    int steps;
    float *timesteps;       /* [steps] */
    float *sigmas;          /* [steps + 1], last one the final sigma (0) */
    float init_noise_sigma;
} ld_euler;

/* spacing_override: NULL to use the config's timestep_spacing, else
 * "leading" / "trailing" / "linspace" (what from_config(..., timestep_spacing=) does). */
ld_status ld_euler_init(ld_ctx *ctx, ld_euler *s, const json_t *cfg, const char *where, ld_euler_kind kind,
                        const char *spacing_override);
ld_status ld_euler_set_timesteps(ld_ctx *ctx, ld_euler *s, int steps);
void ld_euler_free(ld_euler *s);

const char *ld_spacing_name(ld_spacing sp);

/* out = x / sqrt(sigma_k^2 + 1); out may equal x. */
void ld_euler_scale_input(const ld_euler *s, int k, const float *x, float *out, int64_t n);
/* One step from sigma_k to sigma_{k+1}, in place on x. noise: N(0,1) draws
 * for LD_EULER_A (ignored, may be NULL, for LD_EULER). */
void ld_euler_step(const ld_euler *s, int k, const float *eps, float *x, const float *noise, int64_t n);

#endif
