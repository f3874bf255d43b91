/* Pipeline families plug in here. Each family (sdxl, wuerstchen,
 * stable-cascade) provides one ld_pipeline_impl; ld_pipeline_open reads the
 * model folder's model_index.json and hands it to the family whose
 * class_names contain its _class_name. Registration: pipeline_registry.c. */
#ifndef LD_PIPELINE_PIPELINE_H
#define LD_PIPELINE_PIPELINE_H

#include "base/status.h"
#include <jansson.h>

typedef struct {
    const char *family;              /* "sdxl", "wuerstchen", "stable-cascade" */
    const char *const *class_names;  /* model_index.json _class_name values, NULL-terminated */
    /* model_index is the parsed model_index.json of opt->model_dir (borrowed). */
    ld_status (*open)(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *model_index, void **state);
    void (*free)(void *state);
    ld_status (*generate)(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_image *out, ld_gen_info *info);
    /* The values a call that leaves them at 0 / -1 / NULL gets (ld_pipeline_defaults). */
    void (*defaults)(const void *state, ld_gen_info *info);
} ld_pipeline_impl;

struct ld_pipeline {
    const ld_pipeline_impl *impl;
    void *state;
    char model_name[128];
    ld_precision precision; /* arithmetic of the matrix products while this pipeline generates */
};

/* A non-finite value in x is an error naming the stage and step ("unet
 * produced NaN at step 3 of 25: check the weights, or try --precision f32");
 * step 0 means the stage's output image. Families call it after every
 * denoising step and on the decoded image, so nothing broken is written. */
ld_status ld_pipeline_check_finite(ld_ctx *ctx, const float *x, int64_t n, const char *stage, int step, int total);

/* NULL-terminated list of the families built into the library. */
extern const ld_pipeline_impl *const ld_pipeline_registry[];

#endif
