/* AutoencoderKL (diffusers): the SDXL / KOALA VAE, built from vae/config.json
 * (specs/koala.md §4.5, §5.3). Decoder (post_quant_conv + decoder) turns
 * latents into images in [-1, 1]; encoder (+ quant_conv) turns images into
 * the 2*latent_channels moments (mean, logvar).
 *
 *     ld_vae *v;
 *     LD_TRY(ld_vae_load(ctx, "model/vae", NULL, &v));
 *     // the caller divides latents by ld_vae_scaling_factor(v) first
 *     LD_TRY(ld_vae_decode(ctx, v, latents, 1, 128, 128, image, 0));
 *     ld_vae_free(v);
 *
 * Mid-block attention accepts both the current names (to_q/to_k/to_v/to_out.0)
 * and the legacy ones (query/key/value/proj_attn), as [C,C] linear or
 * [C,C,1,1] conv-shaped weights. The encoder is optional in a weights file
 * (decoder-only files load; ld_vae_encode then fails with a message).
 * Activations come from an arena owned by the model; with tiling != 0 the
 * decode goes tile by tile over the latent (overlapping tiles blended
 * linearly), so activation memory is bounded by the tile size.
 */
#ifndef LD_MODELS_AUTOENCODER_KL_H
#define LD_MODELS_AUTOENCODER_KL_H

#include "io/weights.h"
#include "models/model_registry.h"
#include <jansson.h>

typedef struct ld_vae ld_vae;

ld_status ld_vae_load(ld_ctx *ctx, const char *vae_dir, const char *variant, ld_vae **out);
/* Borrows ws (see ld_unet2d_build); ld_vae_own_weights hands it over. */
ld_status ld_vae_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_vae **out);
void ld_vae_own_weights(ld_vae *v);
void ld_vae_free(ld_vae *v);

float ld_vae_scaling_factor(const ld_vae *v); /* config scaling_factor (0.13025 for SDXL) */
int ld_vae_force_upcast(const ld_vae *v);      /* config force_upcast (informational: we always run f32) */
int ld_vae_latent_channels(const ld_vae *v);
int ld_vae_out_channels(const ld_vae *v);
int ld_vae_in_channels(const ld_vae *v);
int ld_vae_downscale(const ld_vae *v); /* 2^(len(block_out_channels)-1): 8 for SDXL */
int ld_vae_has_encoder(const ld_vae *v);

/* latents [B, latent_channels, h, w] (already divided by the scaling factor)
 * -> image [B, out_channels, h*f, w*f] with f = ld_vae_downscale (values ~[-1, 1]).
 * tiling != 0: decode overlapping latent tiles (ld_vae_set_tiling) and blend
 * them; latents no larger than one tile decode in one piece either way. */
ld_status ld_vae_decode(ld_ctx *ctx, ld_vae *v, const float *latents, int B, int h, int w, float *image, int tiling);
/* image [B, in_channels, H, W] -> moments [B, 2*latent_channels, h, w]: mean
 * then logvar. Each downsampler halves rounding down, so multiples of the
 * downscale factor f give h = H/f, w = W/f. */
ld_status ld_vae_encode(ld_ctx *ctx, ld_vae *v, const float *image, int B, int H, int W, float *moments);

/* Largest tile side and smallest overlap, in latent pixels, for tiled decode
 * (defaults 72 and 16: a 128x128 latent decodes as 2 x 2 tiles of 72). */
ld_status ld_vae_set_tiling(ld_ctx *ctx, ld_vae *v, int tile, int overlap);

size_t ld_vae_activation_bytes(const ld_vae *v);
/* The bytes of activation memory ld_vae_decode of one h x w latent will take
 * (tiling as in ld_vae_decode), from the config, without running it. */
double ld_vae_decode_estimate(const ld_vae *v, int h, int w, int tiling);

ld_status ld_vae_record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder);
extern const ld_model_type ld_vae_model_type;

#endif
