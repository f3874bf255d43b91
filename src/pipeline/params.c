/* The public value types of the generation API (leandiff.h): their
 * documented defaults and ld_image_free. Kept apart from pipeline.c so the
 * families can use them without depending on the dispatch above them. */
#include "base/status.h"

#include <stdlib.h>
#include <string.h>

void ld_pipeline_options_init(ld_pipeline_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->precision = LD_PRECISION_F32;
    opt->vae_tiling = -1;
}

void ld_gen_params_init(ld_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->cfg_scale = -1.0f;
    p->prior_cfg_scale = -1.0f;
}

void ld_image_free(ld_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}
