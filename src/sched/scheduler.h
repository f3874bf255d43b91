/* The scheduler interface: every sampler the denoising loop can use, behind
 * one set of calls, numerically as the diffusers scheduler class of the same
 * name computes it under the model folder's scheduler_config.json.
 *
 *     ld_scheduler *s;
 *     LD_TRY(ld_scheduler_create(ctx, "dpm++2m", LD_SCHEDULE_KARRAS, cfg, "scheduler/scheduler_config.json",
 *                                NULL, &s));
 *     LD_TRY(ld_scheduler_set_timesteps(ctx, s, steps));
 *     for (i = 0; i < n; i++) x[i] = noise[i] * ld_scheduler_init_noise_sigma(s);
 *     for (int c = 0; c < ld_scheduler_calls(s); c++) {      // one model call each
 *         ld_scheduler_scale_input(s, c, x, x_in, n);
 *         eps = model(x_in, ld_scheduler_timestep(s, c));
 *         noise_c = ld_scheduler_needs_noise(s, c) ? draw(n) : NULL;
 *         LD_TRY(ld_scheduler_step(ctx, s, c, eps, x, noise_c, n));   // x updated in place
 *     }
 *     ld_scheduler_free(s);
 *
 * A "call" is one entry of diffusers' scheduler.timesteps: one model
 * evaluation followed by one scheduler.step(). Second-order samplers (Heun,
 * DPM2) make two calls per step except the last, as diffusers does, so
 * ld_scheduler_calls() may exceed the step count. Calls must be made in
 * order (multistep samplers keep a history); set_timesteps starts over.
 *
 * Image-to-image starts part-way (diffusers' get_timesteps + set_begin_index):
 * ld_scheduler_set_begin(s, first_call) and then ld_scheduler_add_noise()
 * at ld_scheduler_timestep(s, first_call).
 *
 * DDPMWuerstchen (Wuerstchen v2, Stable Cascade) sits behind the same calls
 * (sampler "ddpm_wuerstchen", sched_ddpmw.c): its timesteps are ratios in
 * [0, 1], scale_input is the identity, init_noise_sigma is 1, every step
 * takes noise, and ld_scheduler_set_custom takes a list (Stage C's default).
 */
#ifndef LD_SCHED_SCHEDULER_H
#define LD_SCHED_SCHEDULER_H

#include "base/status.h"
#include <jansson.h>
#include <stdint.h>

typedef enum { LD_SCHEDULE_DEFAULT = 0, LD_SCHEDULE_KARRAS = 1 } ld_schedule;

/* A sampler users pick: its names, and what it accepts. */
typedef struct {
    const char *name;            /* short CLI name: "euler", "euler_a", "dpm++2m", "dpm++2m_sde", ... */
    const char *label;           /* A1111 label with the default schedule: "Euler", "DPM++ 2M", ... */
    const char *karras_label;    /* A1111 label with the Karras schedule ("DPM++ 2M Karras"), or NULL */
    const char *diffusers_class; /* "EulerDiscreteScheduler", ... */
    int stochastic;              /* its steps draw noise (ld_scheduler_needs_noise) */
} ld_sampler_desc;

/* NULL-terminated list of the SDXL family's samplers (what users pick). */
extern const ld_sampler_desc *const ld_sampler_list[];
/* DDPMWuerstchen, the Wuerstchen v2 / Stable Cascade sampler: created by its
 * name "ddpm_wuerstchen", not in the list above nor found by ld_sampler_find. */
extern const ld_sampler_desc *const ld_sampler_ddpm_wuerstchen;

/* Finds a sampler by short name or A1111 label (case-insensitive); a label
 * that names a schedule ("DPM++ 2M Karras") sets *schedule to it, other names
 * leave *schedule as it is (schedule may be NULL). NULL when unknown. */
const ld_sampler_desc *ld_sampler_find(const char *name_or_label, ld_schedule *schedule);
/* The A1111 label of a sampler under a schedule ("DPM++ 2M Karras"). */
const char *ld_sampler_label(const ld_sampler_desc *d, ld_schedule schedule);
const char *ld_schedule_name(ld_schedule s); /* "default", "karras" */

typedef struct ld_scheduler ld_scheduler;

/* cfg: the folder's parsed scheduler_config.json (borrowed; may be NULL for
 * DDPMWuerstchen); where: its path for messages. spacing_override: NULL, or
 * "leading" / "trailing" / "linspace" in place of the config's
 * timestep_spacing (what from_config(..., timestep_spacing=) does). A config
 * option the sampler does not implement is an error naming the field; a
 * schedule the sampler does not take (karras for DDIM) is an error naming
 * the ones it does. */
ld_status ld_scheduler_create(ld_ctx *ctx, const char *sampler, ld_schedule schedule, const json_t *cfg,
                              const char *where, const char *spacing_override, ld_scheduler **out);
void ld_scheduler_free(ld_scheduler *s);

const ld_sampler_desc *ld_scheduler_desc(const ld_scheduler *s);
ld_schedule ld_scheduler_schedule(const ld_scheduler *s);
/* The timestep spacing in use ("leading", "trailing", "linspace"; "" where none). */
const char *ld_scheduler_spacing(const ld_scheduler *s);

ld_status ld_scheduler_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps);
/* A custom timestep list (DDPMWuerstchen's DEFAULT_STAGE_C_TIMESTEPS):
 * n_points values, n_points - 1 calls. Unsupported samplers fail. */
ld_status ld_scheduler_set_custom(ld_ctx *ctx, ld_scheduler *s, const float *points, int n_points);

int ld_scheduler_steps(const ld_scheduler *s);  /* steps asked for */
int ld_scheduler_num_train(const ld_scheduler *s); /* num_train_timesteps of the config */
int ld_scheduler_calls(const ld_scheduler *s);  /* model calls: entries of timesteps */
int ld_scheduler_order(const ld_scheduler *s);  /* diffusers' scheduler.order (2 for Heun, DPM2) */
float ld_scheduler_timestep(const ld_scheduler *s, int call);
/* diffusers' scheduler.timesteps as a whole: *count = calls entries, or
 * calls + 1 for DDPMWuerstchen, whose list ends with the final timestep 0. */
const float *ld_scheduler_timesteps(const ld_scheduler *s, int *count);
/* The sigma table where the class has one ([calls + 1] values, else NULL). */
const float *ld_scheduler_sigmas(const ld_scheduler *s, int *count);
float ld_scheduler_init_noise_sigma(const ld_scheduler *s);

/* Image-to-image: the first call that will run (diffusers set_begin_index). */
void ld_scheduler_set_begin(ld_scheduler *s, int call);
int ld_scheduler_begin(const ld_scheduler *s); /* 0 unless set_begin moved it */
/* out = scheduler.add_noise(x0, noise, timestep of `call`); out may alias x0. */
void ld_scheduler_add_noise(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out,
                            int64_t n);

/* Training at integer timesteps t[b] in [0, num_train_timesteps), B samples
 * of per_sample elements: noisy = DDPMScheduler.add_noise(x0, noise, t) and
 * the model's target under the config's prediction_type (epsilon: noise;
 * v_prediction: get_velocity = sqrt(acp) noise - sqrt(1 - acp) x0; sample:
 * x0). A timestep out of range is an error. */
ld_status ld_scheduler_training_pair(ld_ctx *ctx, const ld_scheduler *s, const int64_t *t, int B,
                                     int64_t per_sample, const float *x0, const float *noise, float *noisy,
                                     float *target);

/* out = scale_model_input(x) for this call; out may alias x. */
void ld_scheduler_scale_input(const ld_scheduler *s, int call, const float *x, float *out, int64_t n);
/* The estimate of the clean sample from this call's model output and x (for
 * previews): x - sigma * eps on sigma-based samplers, (x - sqrt(1 - a) * eps)
 * / sqrt(a) on alpha-based ones (v and sample predictions likewise). */
void ld_scheduler_predict_x0(const ld_scheduler *s, int call, const float *model_out, const float *x, float *x0,
                             int64_t n);
/* Whether step(call) uses a noise tensor (N(0,1), n elements). */
int ld_scheduler_needs_noise(const ld_scheduler *s, int call);
/* x = scheduler.step(model_out, timestep(call), x).prev_sample, in place.
 * noise: N(0,1) draws when needs_noise, else ignored (may be NULL). */
ld_status ld_scheduler_step(ld_ctx *ctx, ld_scheduler *s, int call, const float *model_out, float *x,
                            const float *noise, int64_t n);

#endif
