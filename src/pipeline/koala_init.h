/* Image-to-image and inpainting inputs of the SDXL family, as diffusers'
 * StableDiffusionXLImg2ImgPipeline / InpaintPipeline prepare them:
 *
 *     LD_TRY(ld_koala_encode_init(ctx, vae, init, encode_noise, sf, C, h, w, image_latents));
 *     ld_koala_mask_latents(mask, h, w, mask_latents);
 *
 * The init image (RGB8, the output size) becomes [-1, 1], the VAE encodes it
 * to mean and log-variance (clamped to [-30, 20]), a sample mean + std *
 * encode_noise is drawn and multiplied by the scaling factor. The mask (RGB8;
 * its grey level as PIL's convert("L")) is binarised at 0.5 (white = 1 =
 * repaint) and shrunk to the latent size by nearest-neighbour sampling. */
#ifndef LD_PIPELINE_KOALA_INIT_H
#define LD_PIPELINE_KOALA_INIT_H

#include "leandiff.h"
#include "models/autoencoder_kl.h"

ld_status ld_koala_encode_init(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const float *encode_noise,
                               double scaling_factor, int C, int h, int w, float *image_latents);
void ld_koala_mask_latents(const ld_image *mask, int h, int w, float *mask_latents);

#endif
