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
    /* Fills the defaults and what the family accepts (ld_pipeline_describe);
     * family is set by the caller. */
    void (*describe)(const void *state, ld_pipeline_desc *out);
    /* precision: the run's (ld_run_begin sets it for the calling thread). */
    ld_status (*generate)(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_precision precision,
                          ld_image *out, ld_gen_info *info);
} ld_pipeline_impl;

struct ld_pipeline {
    const ld_pipeline_impl *impl;
    void *state;
    char model_name[128];
    ld_precision precision; /* arithmetic of the matrix products of this pipeline's runs */
};

/* NULL-terminated list of the families built into the library. */
extern const ld_pipeline_impl *const ld_pipeline_registry[];

#endif
