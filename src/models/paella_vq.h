/* PaellaVQModel (Wuerstchen Stage A, shared by Wuerstchen v2 and Stable
 * Cascade), built from vqgan/config.json. Spec: specs/wuerstchen.md section 3.
 *
 * decode() runs the decoder on the latent as is (diffusers'
 * force_not_quantize=True: no codebook lookup); encode() runs the encoder
 * (PixelUnshuffle, MixingResidualBlocks, 1x1 conv and BatchNorm) without
 * quantizing. The pipelines multiply the latent by scale_factor first.
 *
 *     ld_paella_vq *vq;
 *     LD_TRY(ld_paella_vq_load(ctx, "wuerstchen/vqgan", NULL, &vq));
 *     LD_TRY(ld_paella_vq_decode(ctx, vq, img, lat, B, h, w));  // img [B,3,h*f,w*f]
 *     ld_paella_vq_free(vq);
 */
#ifndef LD_MODELS_PAELLA_VQ_H
#define LD_MODELS_PAELLA_VQ_H

#include "models/model_registry.h"

#define LD_PAELLA_MAX_LEVELS 8

/* MixingResidualBlock(C, 4C) */
typedef struct {
    int64_t c;
    ld_tensor gammas;              /* [6] */
    ld_tensor dw_w, dw_b;          /* depthwise.1 (after ReplicationPad2d(1)) */
    ld_tensor fc1_w, fc1_b, fc2_w, fc2_b; /* channelwise.0 / .2 */
} ld_paella_mixres;

typedef struct {
    /* 'M' MixingResidualBlock, 'T' ConvTranspose2d(k4, s2, p1), 'D' Conv2d(k4, s2, p1), '1' 1x1 conv */
    char kind;
    ld_paella_mixres m;
    ld_tensor w, b;     /* convolutions ('1' without bias in the encoder's last block) */
    int64_t c_in, c_out;
} ld_paella_stage;

typedef struct {
    int64_t in_channels, out_channels, scale, levels, bottleneck, embed_dim, latent_channels, n_embeddings;
    float scale_factor;
    ld_tensor in_w, in_b;     /* in_block.1 */
    ld_paella_stage *down;    /* down_blocks.* (the last: 1x1 conv + BatchNorm) */
    int n_down;
    ld_tensor bn_w, bn_b, bn_mean, bn_var; /* down_blocks.{last}.1 */
    ld_tensor codebook;       /* vquantizer.embedding.weight (not used at inference) */
    ld_paella_stage *up;      /* up_blocks.* */
    int n_up;
    ld_tensor out_w, out_b;   /* out_block.0 */
    ld_weights *ws;           /* owned when made by _load */
} ld_paella_vq;

ld_status ld_paella_vq_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws, ld_paella_vq **out);
ld_status ld_paella_vq_load(ld_ctx *ctx, const char *dir, const char *variant, ld_paella_vq **out);
void ld_paella_vq_free(ld_paella_vq *vq);

/* Spatial factor between latent and image (scale * 2^(levels-1)). */
int64_t ld_paella_vq_factor(const ld_paella_vq *vq);
/* lat [B, latent_channels, h, w] -> img [B, out_channels, h*f, w*f]. */
ld_status ld_paella_vq_decode(ld_ctx *ctx, const ld_paella_vq *vq, float *img, const float *lat, int64_t B, int64_t h,
                              int64_t w);
/* img [B, in_channels, H, W] (H, W multiples of the factor) -> lat [B, latent_channels, H/f, W/f]. */
ld_status ld_paella_vq_encode(ld_ctx *ctx, const ld_paella_vq *vq, float *lat, const float *img, int64_t B, int64_t H,
                              int64_t W);

extern const ld_model_type ld_model_paella_vq;

#endif
