/* AutoencoderTiny (TAESD, madebyollin/taesd and taesdxl): diffusers'
 * tiny autoencoder (about 1.2 M parameters per half) that decodes SD/SDXL
 * latents fast, for previews and for users who prefer speed to the full VAE.
 *
 *     ld_vae_tiny *t;
 *     LD_TRY(ld_vae_tiny_load(ctx, "$MODELS/taesdxl", NULL, &t));
 *     LD_TRY(ld_vae_tiny_decode(ctx, t, img, lat, B, h, w));  // img [B,3,8h,8w] in [-1, 1]
 *     ld_vae_tiny_free(t);
 *
 * As diffusers' DecoderTiny: x = tanh(x / 3) * 3, conv 3x3 + ReLU, then per
 * level `num_decoder_blocks[i]` AutoencoderTinyBlocks (conv-ReLU-conv-ReLU-conv
 * plus a skip (1x1 conv when the width changes), ReLU), a nearest 2x
 * upsampling and a bias-free conv (the last level: its conv to the output
 * channels with bias, no upsampling), then y * 2 - 1. The latents are decoded
 * as the U-Net makes them (scaling_factor 1: TAESD-XL reads the scaled SDXL
 * latent space). EncoderTiny: (x + 1) / 2, a conv per level (stride 2 and no
 * bias after the first) followed by its blocks, and a conv to the latent
 * channels. Tensor names are the diffusers ones (decoder.layers.N...,
 * encoder.layers.N...).
 */
#ifndef LD_MODELS_AUTOENCODER_TINY_H
#define LD_MODELS_AUTOENCODER_TINY_H

#include "models/model_registry.h"

#define LD_VAE_TINY_MAX_LEVELS 8
#define LD_VAE_TINY_MAX_LAYERS 128

typedef struct {
    enum { TINY_CONV, TINY_RELU, TINY_BLOCK, TINY_UPSAMPLE } kind;
    int64_t cin, cout;
    int stride;
    ld_tensor w, b;                 /* TINY_CONV (b.data NULL: no bias) */
    ld_tensor cw[3], cb[3], skip_w; /* TINY_BLOCK: conv.0/2/4, skip (skip_w.data NULL: identity) */
} ld_vae_tiny_layer;

typedef struct {
    int n;
    ld_vae_tiny_layer l[LD_VAE_TINY_MAX_LAYERS];
} ld_vae_tiny_stack;

typedef struct {
    int64_t in_channels, out_channels, latent_channels, scale; /* scale: image / latent side */
    float scaling_factor;
    int has_encoder;
    ld_vae_tiny_stack enc, dec;
    ld_weights *ws; /* owned when made by _load */
} ld_vae_tiny;

ld_status ld_vae_tiny_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws, ld_vae_tiny **out);
ld_status ld_vae_tiny_load(ld_ctx *ctx, const char *dir, const char *variant, ld_vae_tiny **out);
void ld_vae_tiny_free(ld_vae_tiny *t);

/* lat [B, latent_channels, h, w] -> img [B, out_channels, h*scale, w*scale] in [-1, 1] scale. */
ld_status ld_vae_tiny_decode(ld_ctx *ctx, const ld_vae_tiny *t, float *img, const float *lat, int64_t B, int64_t h,
                             int64_t w);
/* img [B, in_channels, H, W] in [-1, 1] (H, W multiples of scale) -> lat [B, latent_channels, H/scale, W/scale]. */
ld_status ld_vae_tiny_encode(ld_ctx *ctx, const ld_vae_tiny *t, float *lat, const float *img, int64_t B, int64_t H,
                             int64_t W);
/* Bytes of activations a decode of B x h x w needs (for memory checks). */
size_t ld_vae_tiny_decode_bytes(const ld_vae_tiny *t, int64_t B, int64_t h, int64_t w);

extern const ld_model_type ld_model_vae_tiny;

#endif
