/* diffusers model folders: model_index.json and the component subfolders.
 *
 *     json_t *index; const char *cls;
 *     LD_TRY(ld_model_index_load(ctx, dir, &index, &cls));   // cls points into index
 *     char unet[4096];
 *     LD_TRY(ld_component_dir(ctx, dir, index, "unet", unet, sizeof unet));
 *     json_t *cfg;
 *     LD_TRY(ld_component_config(ctx, unet, &cfg));          // unet/config.json
 */
#ifndef LD_IO_MODEL_FOLDER_H
#define LD_IO_MODEL_FOLDER_H

#include "base/status.h"
#include <jansson.h>

ld_status ld_model_index_load(ld_ctx *ctx, const char *dir, json_t **index, const char **class_name);
/* Resolves dir/name, checking model_index.json lists it (when index != NULL)
 * and that the folder exists. */
ld_status ld_component_dir(ld_ctx *ctx, const char *dir, const json_t *index, const char *name, char *out,
                           size_t n);
/* Loads <component_dir>/config.json (or scheduler_config.json for schedulers). */
ld_status ld_component_config(ld_ctx *ctx, const char *component_dir, json_t **cfg);

#endif
