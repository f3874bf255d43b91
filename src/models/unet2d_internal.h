/* Inside the UNet2DConditionModel: its configuration (unet2d_config.h) and
 * its weights. Shared by unet2d_config.c (parsing and validation) and
 * unet2d.c (build and forward). */
#ifndef LD_MODELS_UNET2D_INTERNAL_H
#define LD_MODELS_UNET2D_INTERNAL_H

#include "models/unet2d.h"
#include "models/unet2d_blocks.h"
#include "models/unet2d_config.h"

typedef struct {
    int nlayers, cin, cout, cross_attn;
    ld_resnet resnets[UNET_MAX_LAYERS];
    ld_transformer2d attentions[UNET_MAX_LAYERS];
    int has_sampler;
    ld_downsample down;
    ld_upsample up;
} unet_block;

struct ld_unet2d {
    unet_config cfg;
    ld_wb conv_in, time_linear_1, time_linear_2, add_linear_1, add_linear_2, conv_norm_out, conv_out;
    unet_block down[UNET_MAX_BLOCKS], up[UNET_MAX_BLOCKS];
    ld_resnet mid_resnets[2];
    ld_transformer2d mid_attention;
    ld_weights *ws;
    int owns_ws;
    ld_arena arena;
};

#endif
