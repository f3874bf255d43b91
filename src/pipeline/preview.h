/* Live previews and the fast decoder for the SDXL family: the current
 * estimate of the final image (x0) either through TAESD (models/
 * autoencoder_tiny.h) at full size, or through a cheap linear map of the four
 * latent channels to RGB at latent size.
 *
 *     LD_TRY(ld_preview_render(ctx, taesd_or_NULL, x0, C, h, w, &img));  // img.pixels malloc'ed
 *
 * The linear map is the one ComfyUI uses for SDXL latents (the factors of its
 * latent_formats.SDXL, an empirical fit), applied to the latents in the
 * U-Net's scaled space and read as [-1, 1]. */
#ifndef LD_PIPELINE_PREVIEW_H
#define LD_PIPELINE_PREVIEW_H

#include "leandiff.h"
#include "models/autoencoder_tiny.h"

/* x0 [C, h, w] (one image, scaled latent space) -> img (RGB8 HWC, pixels
 * malloc'ed; free with ld_image_free). With taesd: its decode at the full
 * size; without: the linear map at h x w (C must be 4). */
ld_status ld_preview_render(ld_ctx *ctx, const ld_vae_tiny *taesd, const float *x0, int C, int h, int w, ld_image *img);

/* RGB8 HWC of a [3, H, W] image in [-1, 1] (round(clamp(x / 2 + 0.5) * 255),
 * as diffusers' postprocessing). */
void ld_image_chw_to_u8(const float *chw, int H, int W, uint8_t *hwc);

#endif
