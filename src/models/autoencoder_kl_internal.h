/* Inside the AutoencoderKL: its configuration and weights, shared by
 * autoencoder_kl.c (build, encoder, decoder) and autoencoder_kl_tiled.c
 * (batched and tiled decoding). */
#ifndef LD_MODELS_AUTOENCODER_KL_INTERNAL_H
#define LD_MODELS_AUTOENCODER_KL_INTERNAL_H

#include "models/autoencoder_kl.h"
#include "models/unet2d_blocks.h"

#define VAE_MAX_BLOCKS 8
#define VAE_MAX_LAYERS 8

typedef struct {
    int in_channels, out_channels, latent_channels;
    int nblocks, block_out_channels[VAE_MAX_BLOCKS];
    int layers_per_block, groups;
    float scaling_factor;
    int force_upcast, use_quant_conv, use_post_quant_conv, mid_attention;
} vae_config;

typedef struct {
    int nlayers, cout, has_sampler;
    ld_resnet resnets[VAE_MAX_LAYERS];
    ld_downsample down;
    ld_upsample up;
} vae_block;

/* UNetMidBlock2D: resnet, single-head self-attention over all pixels, resnet. */
typedef struct {
    ld_resnet resnets[2];
    int has_attention, channels;
    ld_wb group_norm, to_q, to_k, to_v, to_out;
} vae_mid;

struct ld_vae {
    vae_config cfg;
    int has_encoder;
    ld_wb enc_conv_in, enc_norm_out, enc_conv_out, quant_conv;
    vae_block enc_down[VAE_MAX_BLOCKS];
    vae_mid enc_mid;
    ld_wb post_quant_conv, dec_conv_in, dec_norm_out, dec_conv_out;
    vae_block dec_up[VAE_MAX_BLOCKS];
    vae_mid dec_mid;
    ld_weights *ws;
    int owns_ws;
    ld_arena arena;
    int tile, overlap; /* tiled decode, in latent pixels */
};

/* Decodes one latent z [latent_channels, h, w] into image [out_channels, h*f, w*f]. */
ld_status ld_vae_decode_one(ld_ctx *ctx, ld_vae *v, const float *z, int h, int w, float *image);
/* Arena floats ld_vae_decode_one takes at h x w (the same walk, not run). */
double ld_vae_decode_one_floats(const ld_vae *v, int h, int w);

#endif
