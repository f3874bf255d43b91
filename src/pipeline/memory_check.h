/* Refusing a size that does not fit, before any work starts (issue 16).
 *
 *     double need;
 *     LD_TRY(ld_sdxl_activation_estimate(ctx, unet_dir, vae_dir, 2, h, w, 77, tiled, &need));
 *     LD_TRY(ld_memory_check(ctx, W, H, need, "the U-Net and the VAE decode"));
 *
 * The estimates are the models' own (ld_unet2d_activation_estimate,
 * ld_vae_decode_estimate: their arena walks, built from config.json without
 * weights). The memory available is ld_memory_available's (base/meminfo.h:
 * MemAvailable, the cgroup's limit, or $LEANDIFF_MEMORY_LIMIT). */
#ifndef LD_PIPELINE_MEMORY_CHECK_H
#define LD_PIPELINE_MEMORY_CHECK_H

#include "base/meminfo.h"
#include "base/status.h"

/* LD_ERR_INVALID_ARGUMENT naming the size, the need and what is available
 * when `need` bytes do not fit; else LD_OK. -v logs the numbers either way. */
ld_status ld_memory_check(ld_ctx *ctx, int width, int height, double need, const char *what);

/* Peak activation bytes of an SDXL-family generation at latent h x w with a
 * U-Net batch of B and L context tokens: the larger of the U-Net forward and
 * the VAE decode (tiled or not), plus the pipeline's image buffers. */
ld_status ld_sdxl_activation_estimate(ld_ctx *ctx, const char *unet_dir, const char *vae_dir, int B, int h, int w,
                                      int L, int tiling, double *need);

#endif
