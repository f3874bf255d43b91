/* The table of model component types (see model_registry.h). Model files
 * define their ld_model_type and it is listed here. */
#include "models/model_registry.h"
#include "models/stable_cascade_unet.h"

#include "models/paella_vq.h"
#include "models/wuerstchen_diffnext.h"
#include "models/wuerstchen_prior.h"

#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"
#include "models/unet2d.h"

#include <string.h>

extern const ld_model_type ld_model_clip_text, ld_model_clip_text_proj; /* text/clip_text.c */

const ld_model_type *const ld_model_types[] = {
    &ld_model_clip_text,
    &ld_model_clip_text_proj,
    &ld_unet2d_model_type,
    &ld_vae_model_type,
    &ld_model_vae_tiny,
    &ld_model_wuerstchen_prior,
    &ld_model_wuerstchen_diffnext,
    &ld_model_paella_vq,
    &ld_model_stable_cascade_unet,
    NULL,
};

const ld_model_type *ld_model_type_find(const char *class_name) {
    for (int i = 0; ld_model_types[i]; i++)
        if (strcmp(ld_model_types[i]->class_name, class_name) == 0) return ld_model_types[i];
    return NULL;
}
