/* The UNet2DConditionModel's configuration: config.json interpreted as
 * diffusers does (block types, layers, transformer depths per layer, mid
 * block, embeddings). Parsed once by the model (unet2d_config.c) and read by
 * code that reasons about the architecture without building it (the
 * distillation student builder).
 *
 *     unet_config c;
 *     LD_TRY(ld_unet2d_parse_config(ctx, "unet/config.json", cfg, &c));
 */
#ifndef LD_MODELS_UNET2D_CONFIG_H
#define LD_MODELS_UNET2D_CONFIG_H

#include "base/status.h"

#include <jansson.h>

#define UNET_MAX_BLOCKS 8
#define UNET_MAX_LAYERS 16

typedef struct {
    int in_channels, out_channels, sample_size;
    int center_input_sample, flip_sin_to_cos;
    float freq_shift;
    int nblocks;
    int block_out_channels[UNET_MAX_BLOCKS];
    int down_cross_attn[UNET_MAX_BLOCKS]; /* CrossAttnDownBlock2D (1) or DownBlock2D (0) */
    int up_cross_attn[UNET_MAX_BLOCKS];   /* CrossAttnUpBlock2D (1) or UpBlock2D (0) */
    int layers_per_block[UNET_MAX_BLOCKS];
    int heads[UNET_MAX_BLOCKS];           /* attention heads per down block */
    int down_depth[UNET_MAX_BLOCKS][UNET_MAX_LAYERS]; /* transformer depth per down layer */
    int up_depth[UNET_MAX_BLOCKS][UNET_MAX_LAYERS];   /* per up layer (layers_per_block + 1) */
    int has_mid;
    int mid_depth;
    float mid_scale; /* mid_block_scale_factor */
    float resnet_out_scale;
    int downsample_padding;
    int groups;
    float eps;
    int cross_attention_dim;
    int linear_projection;
    int conv_in_kernel, conv_out_kernel;
    int time_in_dim, temb_dim;
    int add_time_dim;   /* text_time: per-id sinusoid width (0: no addition embedding) */
    int add_in_dim;     /* projection_class_embeddings_input_dim */
    int text_embeds_dim; /* add_in_dim - 6 * add_time_dim */
} unet_config;

ld_status ld_unet2d_parse_config(ld_ctx *ctx, const char *where, const json_t *cfg, unet_config *c);

#endif
