/* Inside the scheduler interface (scheduler.h): the state every sampler
 * shares, the helpers that reproduce diffusers' numpy/torch arithmetic (beta
 * schedules, timestep spacings, sigma interpolation, Karras sigmas), and the
 * per-family operations. A family file (sched_k.c, sched_dpmsolver.c,
 * sched_unipc.c, sched_alpha.c) fills a sched_family; scheduler.c dispatches
 * to it. */
#ifndef LD_SCHED_SCHED_INTERNAL_H
#define LD_SCHED_SCHED_INTERNAL_H

#include "sched/scheduler.h"

typedef enum { PRED_EPSILON = 0, PRED_V = 1, PRED_SAMPLE = 2 } sched_prediction;
typedef enum { SPACING_LEADING = 0, SPACING_TRAILING, SPACING_LINSPACE, SPACING_NONE } sched_spacing;

typedef struct sched_family sched_family;
struct ld_ddpmw_s;

struct ld_scheduler {
    const ld_sampler_desc *desc;
    const sched_family *fam;
    ld_schedule schedule;
    /* the config */
    int num_train, steps_offset;
    sched_prediction prediction;
    sched_spacing spacing;
    int final_sigma_min;         /* final_sigmas_type "sigma_min" (else zero) */
    int set_alpha_to_one;        /* DDIM / LCM */
    int original_steps;          /* LCM original_inference_steps */
    double timestep_scaling;     /* LCM */
    int sde;                     /* DPM++ 2M SDE (algorithm sde-dpmsolver++) */
    float *alphas_cumprod;       /* [num_train] */
    float *sigma_table;          /* [num_train]: sqrt((1 - acp) / acp) in float32 */
    /* set_timesteps */
    int steps, calls, order, begin;
    float *timesteps;            /* [npoints]: diffusers' scheduler.timesteps */
    int npoints;                 /* calls, or calls + 1 where the list ends with the final timestep (DDPMWuerstchen) */
    float *sigmas;               /* [nsigmas] (sigma-based families) */
    int nsigmas;
    float *sigmas_interpol;      /* DPM2: [nsigmas] */
    float init_noise_sigma;
    /* running state */
    int64_t n;                   /* elements of the sample (fixed by the first step) */
    float *hist[4];              /* saved tensors: model outputs (multistep), samples, derivatives */
    int lower_order_nums;
    int second;                  /* Heun / DPM2: the next step is the second-order half */
    int this_order;              /* UniPC: the order of the last predictor (its corrector's order) */
    float saved_dt;
    struct ld_ddpmw_s *ddpmw;    /* DDPMWuerstchen's schedule (sched_ddpmw.c), else NULL */
};

struct sched_family {
    ld_status (*set_timesteps)(ld_ctx *ctx, ld_scheduler *s, int steps);
    void (*scale_input)(const ld_scheduler *s, int call, const float *x, float *out, int64_t n);
    ld_status (*step)(ld_ctx *ctx, ld_scheduler *s, int call, const float *out, float *x, const float *noise,
                      int64_t n);
    int (*needs_noise)(const ld_scheduler *s, int call);
    void (*add_noise)(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out, int64_t n);
};

extern const sched_family sched_euler_family, sched_euler_a_family, sched_heun_family, sched_dpm2_family,
    sched_dpmpp_2m_family, sched_dpmpp_2s_family, sched_unipc_family, sched_ddim_family, sched_lcm_family,
    sched_ddpmw_family;
/* DDPMWuerstchen (sched_ddpmw.c): its config (s, scaler), a custom list, alpha-bar at a call. */
ld_status sched_ddpmw_config(ld_ctx *ctx, ld_scheduler *s, const json_t *cfg, const char *where);
ld_status sched_ddpmw_set_custom(ld_ctx *ctx, ld_scheduler *s, const float *points, int n_points);
float sched_ddpmw_alpha_cumprod(const ld_scheduler *s, int call);
/* DPMSolver's timesteps and sigmas (UniPC uses the same tables). */
ld_status sched_dpm_set_timesteps(ld_ctx *ctx, ld_scheduler *s, int steps);

/* np.interp(t, arange(n), table) in float64. */
double sched_interp(double t, const float *table, int n);
/* diffusers' _sigma_to_t: the fractional timestep of sigma on the log-sigma table. */
double sched_sigma_to_t(double sigma, const float *sigma_table, int n);
/* _convert_to_karras: n sigmas from sigma_max down to sigma_min, rho 7 (float64). */
void sched_karras(double *out, int n, double sigma_min, double sigma_max);
/* Spacings as the Euler-like classes make them (float timesteps, `steps`
 * of them; trailing may give one more, as numpy does). Returns the count. */
int sched_spacing_discrete(const ld_scheduler *s, int steps, double *out);
/* Stores count timesteps and sigmas (float64 tables, rounded to float32) plus
 * the final sigma (0, or sigma_min when final_sigma_min), allocating them. */
ld_status sched_store(ld_ctx *ctx, ld_scheduler *s, const double *ts, const double *sg, int count, int final_sigma_min);
/* The VP parametrisation of a sigma (_sigma_to_alpha_sigma_t): alpha = 1 /
 * sqrt(sigma^2 + 1), sigma_t = sigma * alpha. */
void sched_alpha_sigma(float sigma, float *alpha_t, float *sigma_t);
/* convert_model_output of the DPM-Solver++ / UniPC classes: the x0
 * prediction at sigmas[call] from the model output (epsilon, v or sample). */
void sched_x0_vp(const ld_scheduler *s, int call, const float *x, const float *out, float *x0, int64_t n);
/* add_noise of those classes: alpha * x0 + sigma_t * noise at sigmas[call]. */
void sched_add_noise_vp(const ld_scheduler *s, int call, const float *x0, const float *noise, float *out, int64_t n);
/* Allocates s->timesteps [calls] and s->sigmas [nsigmas] (old ones freed). */
ld_status sched_alloc(ld_ctx *ctx, ld_scheduler *s, int calls, int nsigmas);
/* Makes s->hist[0..k-1] hold n floats each (first step) or checks n. */
ld_status sched_hist(ld_ctx *ctx, ld_scheduler *s, int k, int64_t n);

#endif
