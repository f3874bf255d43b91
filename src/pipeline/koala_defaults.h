/* Which defaults an SDXL-family folder gets: KOALA-Lightning (10 steps, CFG
 * 3.5, Euler with trailing timestep spacing) or the rest (25 steps, CFG 7.5,
 * the scheduler config as stored). Decided from the model's own files, never
 * from the folder's name (a copy or symlink may be called anything):
 *
 *   1. scheduler/scheduler_config.json says timestep_spacing "trailing";
 *   2. model_index.json's or unet/config.json's _name_or_path mentions
 *      "lightning" (the released U-Nets record their training run there);
 *   3. README.md (the model card) has "Lightning" in its title, the first
 *      "# " heading ("# KOALA-Lightning-700M Model Card").
 * In cases 2 and 3 the stored scheduler config is "leading" and the card runs
 * it with timestep_spacing="trailing", which *spacing_override then says.
 *
 *     ld_koala_defaults d;
 *     LD_TRY(ld_koala_defaults_detect(ctx, dir, model_index, unet_dir, stored_spacing, &d));
 */
#ifndef LD_PIPELINE_KOALA_DEFAULTS_H
#define LD_PIPELINE_KOALA_DEFAULTS_H

#include "base/status.h"
#include <jansson.h>

typedef struct {
    int lightning;                /* 10 steps at CFG 3.5 */
    const char *spacing_override; /* "trailing" or NULL (the config's own) */
    char why[256];                /* which file decided, for -v */
} ld_koala_defaults;

ld_status ld_koala_defaults_detect(ld_ctx *ctx, const char *dir, const json_t *model_index, const char *unet_dir,
                                   const char *stored_spacing, ld_koala_defaults *out);

#endif
