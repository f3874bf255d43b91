/* Memory estimates and the check against what is available (see memory_check.h). */
#include "pipeline/memory_check.h"

#include "io/model_folder.h"
#include "models/autoencoder_kl.h"
#include "models/unet2d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

ld_status ld_memory_check(ld_ctx *ctx, int width, int height, double need, const char *what) {
    double avail;
    char source[64];
    LD_TRY(ld_memory_available(ctx, &avail, source, sizeof source));
    if (avail < 0) return LD_OK; /* nothing to compare with */
    ld_log_info("%dx%d: about %.2f GB of activations for %s; %.2f GB available (%s)", width, height, need / GIB,
                what, avail / GIB, source);
    if (need <= avail) return LD_OK;
    return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                   "image size %dx%d needs about %.1f GB of memory for %s, but %.1f GB is available (%s): "
                   "choose a smaller size",
                   width, height, need / GIB, what, avail / GIB, source);
}

/* A model built from its config alone (a recording weight source: shapes, no data). */
static ld_status shape_only(ld_ctx *ctx, const char *dir, int unet, void **model) {
    json_t *cfg;
    LD_TRY(ld_component_config(ctx, dir, &cfg));
    ld_weights *rec;
    ld_status st = ld_weights_new_recorder(ctx, &rec);
    if (st == LD_OK) {
        st = unet ? ld_unet2d_build(ctx, dir, cfg, rec, (ld_unet2d **)model)
                  : ld_vae_build(ctx, dir, cfg, rec, (ld_vae **)model);
        if (st != LD_OK) ld_weights_free(rec);
        else if (unet) ld_unet2d_own_weights(*model); /* freed with the model */
        else ld_vae_own_weights(*model);
    }
    json_decref(cfg);
    return st;
}

ld_status ld_sdxl_activation_estimate(ld_ctx *ctx, const char *unet_dir, const char *vae_dir, int B, int h, int w,
                                      int L, int tiling, double *need) {
    ld_unet2d *u = NULL;
    ld_vae *v = NULL;
    LD_TRY(shape_only(ctx, unet_dir, 1, (void **)&u));
    ld_status st = shape_only(ctx, vae_dir, 0, (void **)&v);
    if (st == LD_OK) {
        const double unet = ld_unet2d_activation_estimate(u, B, h, w, L);
        const double vae = ld_vae_decode_estimate(v, h, w, tiling);
        const int f = ld_vae_downscale(v);
        /* the decoded image as floats and as RGB8 */
        const double image = (double)h * f * w * f * 3 * (sizeof(float) + 1);
        *need = (unet > vae ? unet : vae) + image;
        ld_log_debug("activation estimate at latent %dx%d: U-Net %.3f GB (batch %d), VAE decode %.3f GB%s", w, h,
                     unet / GIB, B, vae / GIB, tiling ? " (tiled)" : "");
    }
    ld_unet2d_free(u);
    ld_vae_free(v);
    return st;
}
