/* diffusers model folders: model_index.json and the component subfolders.
 *
 *     json_t *index; const char *cls;
 *     LD_TRY(ld_model_index_load(ctx, dir, &index, &cls));   // cls points into index
 *     char unet[4096];
 *     LD_TRY(ld_component_dir(ctx, dir, index, "unet", unet, sizeof unet));
 *     json_t *cfg;
 *     LD_TRY(ld_component_config(ctx, unet, &cfg));          // unet/config.json
 *
 * A model's *_load opens a component folder (config + weights) in one call:
 *     ld_component_files f;
 *     LD_TRY(ld_component_files_open(ctx, dir, variant, &f));
 *     ld_status st = ld_xxx_build(ctx, f.where, f.config, f.ws, out);
 *     if (st == LD_OK) (*out)->ws = f.ws;                    // the model owns the weights now
 *     ld_component_files_close(&f, st == LD_OK);
 *     return st;
 */
#ifndef LD_IO_MODEL_FOLDER_H
#define LD_IO_MODEL_FOLDER_H

#include "base/status.h"
#include "io/weights.h"
#include <jansson.h>

ld_status ld_model_index_load(ld_ctx *ctx, const char *dir, json_t **index, const char **class_name);
/* Resolves dir/name, checking model_index.json lists it (when index != NULL)
 * and that the folder exists. */
ld_status ld_component_dir(ld_ctx *ctx, const char *dir, const json_t *index, const char *name, char *out,
                           size_t n);
/* Loads <component_dir>/config.json (or scheduler_config.json for schedulers). */
ld_status ld_component_config(ld_ctx *ctx, const char *component_dir, json_t **cfg);

/* One component folder opened for a model build: its config (as
 * ld_component_config), the config's path for messages, and its weights
 * (ld_weights_open_dir with the variant). */
typedef struct {
    json_t *config;
    char where[4200];
    ld_weights *ws;
} ld_component_files;

ld_status ld_component_files_open(ld_ctx *ctx, const char *dir, const char *variant, ld_component_files *f);
/* Releases the config, and the weights unless keep_weights (a model took them). */
void ld_component_files_close(ld_component_files *f, int keep_weights);

#endif
