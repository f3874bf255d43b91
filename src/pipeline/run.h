/* The run context: what one generation owns while its stages run, the same
 * for every family.
 *
 *   - the noise source: ld_run_noise() hands out standard normal tensors by
 *     name, from the replay file when the caller gave one (f32, f16 or bf16,
 *     shape checked), else the next draws of the seeded generator;
 *   - the named dump points: ld_run_dump() adds a tensor under its reference
 *     key when the caller asked for a dump (a no-op otherwise), so family code
 *     states its keys and never branches on whether it is dumping;
 *   - progress and cancellation: ld_run_progress() reports a stage's step
 *     with the seconds since the stage started and stops the run when the
 *     callback asks;
 *   - timing: the start of the run and of the current stage;
 *   - the run's precision: set for the calling thread by ld_run_begin and
 *     restored by ld_run_end (tensor/gemm.h), so runs on other threads keep
 *     their own.
 *
 *     ld_run run;
 *     LD_TRY(ld_run_begin(ctx, &run, params, precision));
 *     st = ...stages...;                  // ld_run_noise / ld_run_dump / ld_run_progress
 *     st = ld_run_end(ctx, &run, st);     // writes the dump when st == LD_OK
 */
#ifndef LD_PIPELINE_RUN_H
#define LD_PIPELINE_RUN_H

#include "io/safetensors.h"
#include "sched/rng.h"

typedef struct {
    const ld_gen_params *params;
    ld_rng rng;
    ld_safetensors *replay; /* NULL: noise is drawn from rng */
    ld_st_builder dump;
    int dumping;            /* params->dump was given */
    double t_start, t_stage;
    ld_precision precision, saved_precision;
    int saved_read;         /* ld_run_denoiser_loading's */
} ld_run;

ld_status ld_run_begin(ld_ctx *ctx, ld_run *run, const ld_gen_params *params, ld_precision precision);
/* Ends the run: writes the dump file when st is LD_OK, releases everything,
 * restores the thread's precision; returns st (or the dump's error). */
ld_status ld_run_end(ld_ctx *ctx, ld_run *run, ld_status st);

/* Around the loading of a stage's denoiser (the U-Net, prior or decoder that
 * runs at every step): ld_run_denoiser_loading before, ld_run_denoiser_loaded
 * after. On the exact path every step converts and packs all of the
 * denoiser's weights again from the file, and read into huge pages
 * (io/weights_memory.h) rather than mapped that ran Wuerstchen's and Stable
 * Cascade's models 11-18 % faster (docs/performance.md, "Weights in huge
 * pages"). bf16 runs pack the weights once into huge pages of their own, so
 * their files stay mapped, as do the text encoders and decoders run once. */
void ld_run_denoiser_loading(ld_run *run);
void ld_run_denoiser_loaded(ld_run *run);

/* Standard normal values `name` with this shape (replayed or drawn), also
 * dumped under the same name. */
ld_status ld_run_noise(ld_ctx *ctx, ld_run *run, const char *name, int ndim, const int64_t *shape, float *out);
/* A replay tensor as f32 with exactly this shape; an error naming it when the
 * replay file lacks it (the caller checks run->replay first). */
ld_status ld_run_replay_get(ld_ctx *ctx, const ld_run *run, const char *name, int ndim, const int64_t *shape,
                            float *out);
ld_status ld_run_dump(ld_ctx *ctx, ld_run *run, const char *name, ld_dtype dtype, int ndim, const int64_t *shape,
                      const void *data);

/* A metadata entry of the dump (no-op without one). */
ld_status ld_run_dump_meta(ld_ctx *ctx, ld_run *run, const char *key, const char *value);

/* Marks the start of a stage (the seconds progress reports count from it). */
void ld_run_stage_start(ld_run *run);
/* Step `step` (1-based) of `total` of `stage` is done; LD_ERR_CANCELLED when
 * the progress callback asks to stop. */
ld_status ld_run_progress(ld_ctx *ctx, ld_run *run, const char *stage, int step, int total);
/* A non-finite value in x is an error naming the stage and step ("unet
 * produced NaN at step 3 of 25: check the weights, or try --precision f32");
 * step 0 means the stage's output image. The denoising loop calls it after
 * every step and the families on the decoded image, so nothing broken is
 * written. */
ld_status ld_run_check_finite(ld_ctx *ctx, const float *x, int64_t n, const char *stage, int step, int total);

/* Seconds since ld_run_begin. */
double ld_run_seconds(const ld_run *run);

#endif
