/* Image-to-image and inpainting inputs of the SDXL family, as diffusers'
 * StableDiffusionXLImg2ImgPipeline / InpaintPipeline prepare them:
 *
 *     LD_TRY(ld_koala_prepare_images(ctx, init, mask, blur, W, H, &im, &mk));
 *     LD_TRY(ld_koala_encode_init(ctx, vae, &im, encode_noise, sf, C, h, w, image_latents));
 *     LD_TRY(ld_koala_encode_masked(ctx, vae, &im, &mk, noise2, sf, C, h, w, masked_image_latents));
 *     ld_koala_mask_latents(&mk, h, w, mask_latents);
 *
 * prepare: the init image and the mask (any size) are resized to the output
 * size W x H as the pipelines' VaeImageProcessor.preprocess does (PIL
 * LANCZOS, resize_mode "default"); the mask is first blurred with
 * VaeImageProcessor.blur (PIL GaussianBlur of radius mask_blur; 0 = none), as
 * diffusers' inpainting guide applies it to the mask it passes in.
 * encode: the image (RGB8, W x H) becomes [-1, 1] (encode_masked: times
 * mask < 0.5, the masked image of the 9-channel U-Nets), the VAE encodes it
 * to mean and log-variance (clamped to [-30, 20]), a sample mean + std *
 * encode_noise is drawn and multiplied by the scaling factor.
 * mask latents: the mask (RGB8; its grey level as PIL's convert("L")) is
 * binarised at 0.5 (white = 1 = repaint) and shrunk to the latent size by
 * nearest-neighbour sampling. */
#ifndef LD_PIPELINE_KOALA_INIT_H
#define LD_PIPELINE_KOALA_INIT_H

#include "leandiff.h"
#include "models/autoencoder_kl.h"

ld_status ld_koala_prepare_images(ld_ctx *ctx, const ld_image *init, const ld_image *mask, float mask_blur, int W,
                                  int H, ld_image *init_out, ld_image *mask_out);
ld_status ld_koala_encode_init(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const float *encode_noise,
                               double scaling_factor, int C, int h, int w, float *image_latents);
ld_status ld_koala_encode_masked(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const ld_image *mask,
                                 const float *encode_noise, double scaling_factor, int C, int h, int w,
                                 float *masked_latents);
void ld_koala_mask_latents(const ld_image *mask, int h, int w, float *mask_latents);

#endif
