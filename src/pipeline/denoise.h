/* The denoising loop: the one loop every family's diffusion stage runs (the
 * SDXL-family U-Net, the Wuerstchen and Stable Cascade priors and decoders).
 *
 * Per scheduler call c (from the scheduler's begin to its last call):
 *   scale the latents into the model input (ld_scheduler_scale_input), let
 *   the family add its extra input channels (fill_input), copy the input for
 *   the guidance batch, call the model (or its two halves: model_half),
 *   combine the guidance (the one place it is done), offer a preview, take
 *   the step's noise from the run (replayed or drawn, key
 *   "<prefix>step{i}.noise") when the scheduler needs it, step, let the
 *   family blend (after_step: inpainting), check the latents are finite, dump
 *   them ("<prefix>step{i}.latents"), report progress.
 * i counts the calls this loop runs (0 for the first), as the reference keys do.
 */
#ifndef LD_PIPELINE_DENOISE_H
#define LD_PIPELINE_DENOISE_H

#include "pipeline/run.h"
#include "sched/scheduler.h"

/* How the two halves of a guided batch combine into the model output. */
typedef enum {
    /* batch [uncond; cond]; out = u + g (c - u), each op rounded to f32
     * (diffusers' StableDiffusionXLPipeline) */
    LD_GUIDE_CFG = 0,
    /* batch [cond; uncond]; out = torch.lerp(u, c, g) (the Wuerstchen and
     * Stable Cascade pipelines) */
    LD_GUIDE_LERP = 1,
} ld_guidance;

typedef struct {
    const char *stage;   /* "unet", "prior", "decoder": progress and error messages */
    const char *prefix;  /* reference keys: "" or "prior." / "decoder." */
    int ndim;            /* the latents' shape, for the keys */
    int64_t shape[4];
    int64_t n_in;        /* model input elements of one batch entry (>= the latents' n) */
    int guided;          /* run the guidance batch of two */
    ld_guidance guidance;
    float scale;         /* the guidance scale */
    /* out[batch * n] = model(in[batch * n_in], t); batch is 1, or 2 when guided. */
    ld_status (*model)(ld_ctx *ctx, void *user, const float *in, int batch, float t, float *out);
    /* Optional, for guided runs: out[n] = the model on one half of the batch
     * (half 0 or 1: its input in[n_in], its conditioning) on that lane of the
     * model (models/wuerstchen_blocks.h). With it, a guided step runs the two
     * halves as two forwards of one: on exactly two threads side by side, one
     * thread each (neither waits for the other at the end of every parallel
     * region: a steady Stable Cascade prior step 8 % faster in bf16, 5 % in
     * f32, on a 2-vCPU Zen 5-class VM), else one after the other on all
     * threads (3-4 % slower than the batch of two on one thread). The same
     * bits on any thread count. LEANDIFF_SPLIT_GUIDANCE=0 runs the batch of
     * two instead (for comparisons; tiny models can differ in the last bits,
     * as products below the small-product threshold at batch 1 are not below
     * it at batch 2). */
    ld_status (*model_half)(ld_ctx *ctx, void *user, int half, const float *in, float t, float *out);
    /* Optional: writes the extra input channels after the scaled latents of
     * in (the first batch entry; the loop copies it to the second). */
    void (*fill_input)(void *user, float *in);
    /* Optional: called after each step with the latents (inpainting blends
     * the known region back); scratch holds n_in floats. */
    ld_status (*after_step)(ld_ctx *ctx, void *user, const ld_scheduler *s, int call, int last, float *x,
                            float *scratch);
    /* Optional: a preview of the model output at this call (guidance
     * combined); scratch holds n_in floats. */
    ld_status (*preview)(ld_ctx *ctx, void *user, const ld_scheduler *s, int call, const float *out,
                         const float *x, float *scratch);
    void *user;
} ld_denoise;

/* out[j] = combine(a[j], b[j]) over n values for a guided batch laid out as
 * the form says (a is the first half); out may alias a. */
void ld_guidance_combine(ld_guidance form, float scale, const float *first, const float *second, float *out,
                         int64_t n);

/* A DDPMWuerstchen scheduler for a Wuerstchen v2 / Stable Cascade stage:
 * steps > 0 for linspace(1, 0, steps + 1), 0 for Stage C's default list
 * (DEFAULT_STAGE_C_TIMESTEPS); its timesteps dumped as "<prefix>timesteps". */
ld_status ld_ddpmw_stage_scheduler(ld_ctx *ctx, ld_run *run, const json_t *cfg, const char *where, int steps,
                                   const char *prefix, ld_scheduler **out);

/* Runs the loop over x (the latents, already at the first call's noise
 * level), updating it in place. */
ld_status ld_denoise_run(ld_ctx *ctx, ld_run *run, ld_scheduler *s, float *x, const ld_denoise *d);

#endif
