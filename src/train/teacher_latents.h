/* Data-free distillation's training data (`leandiff distill --prompts`):
 * the teacher pipeline generates the latents of every prompt (text-to-image
 * with the given sampler, steps and guidance, diffusers' output_type=
 * "latent": nothing is decoded), one seed per prompt from the run's seed.
 * They are kept in a safetensors file (`latents` [n, C, h, w], the settings
 * in its metadata), so a resumed run, or the other processes of an MPI run,
 * read them instead of sampling again; a file made with other settings or
 * prompts is regenerated.
 *
 *     ld_teacher_gen g = {.pipeline = "$MODELS/sdxl-base", .steps = 25, .cfg = 7.5f,
 *                         .cache_path = "out/teacher_latents.safetensors"};
 *     LD_TRY(ld_teacher_latents(ctx, &g, &prompts, 1024, seed, report, user, latents));
 */
#ifndef LD_TRAIN_TEACHER_LATENTS_H
#define LD_TRAIN_TEACHER_LATENTS_H

#include "train/dataset.h"

#include <stdint.h>

typedef struct {
    const char *pipeline;   /* the teacher's StableDiffusionXLPipeline folder */
    int steps;              /* 0: the pipeline's default */
    float cfg;              /* < 0: the pipeline's default */
    const char *sampler;    /* NULL: euler */
    const char *cache_path; /* NULL: keep nothing */
    int read_only;          /* 1: the file must be there (the MPI processes other than 0) */
} ld_teacher_gen;

/* latents: [ds->n, C, res/8, res/8] for the SDXL family's C = 4. report
 * (may be NULL) after each prompt; an error from it stops. */
ld_status ld_teacher_latents(ld_ctx *ctx, const ld_teacher_gen *g, const ld_dataset *ds, int res, uint64_t seed,
                             ld_status (*report)(ld_ctx *ctx, void *user, int done, int total), void *user,
                             float *latents, int C, int h, int w);

#endif
