/* StableCascadeUNet config.json: parsing and validation (spec wuerstchen.md §5).
 *
 *     ld_sc_config cfg;
 *     LD_TRY(ld_sc_config_parse(ctx, "prior/config.json", json, &cfg));
 *
 * The same class serves Stage C (the prior: clip_text + clip_img inputs, 1x1
 * "UpDownBlock2d" level switches) and Stage B (the decoder: effnet and pixel
 * mappers, 2x2 strided down/up convs). Everything per level is stored in level
 * order: the config's up_* lists are read reversed, as diffusers does. The
 * dropout values are accepted and ignored (inference).
 */
#ifndef LD_MODELS_STABLE_CASCADE_CONFIG_H
#define LD_MODELS_STABLE_CASCADE_CONFIG_H

#include "base/status.h"
#include <jansson.h>
#include <stdint.h>

#define LD_SC_MAX_LEVELS 8
#define LD_SC_MAX_BLOCK_TYPES 8
#define LD_SC_MAX_CONDS 4

/* Block kinds of block_types_per_layer. */
enum { LD_SC_RES = 'C', LD_SC_TIMESTEP = 'T', LD_SC_ATTN = 'A' };

typedef struct {
    int64_t in_channels, out_channels;
    int64_t patch_size;
    int64_t c_r;      /* timestep_ratio_embedding_dim */
    int64_t cond_dim; /* conditioning_dim */
    int64_t clip_seq;
    int64_t clip_text_in;   /* clip_text_in_channels, 0 = absent */
    int64_t clip_pooled_in; /* clip_text_pooled_in_channels */
    int64_t clip_img_in;    /* clip_image_in_channels, 0 = absent */
    int64_t effnet_in;      /* effnet_in_channels, 0 = absent */
    int64_t pixel_in;       /* pixel_mapper_in_channels, 0 = absent */
    int64_t kernel_size;
    int levels;
    int64_t channels[LD_SC_MAX_LEVELS];
    int64_t nhead[LD_SC_MAX_LEVELS];
    int64_t down_layers[LD_SC_MAX_LEVELS]; /* repeats of the block pattern, per level */
    int64_t up_layers[LD_SC_MAX_LEVELS];   /* per level (config list reversed) */
    int64_t down_passes[LD_SC_MAX_LEVELS]; /* down_blocks_repeat_mappers: passes = mappers + 1 */
    int64_t up_passes[LD_SC_MAX_LEVELS];   /* per level (config list reversed) */
    int ntypes[LD_SC_MAX_LEVELS];
    char types[LD_SC_MAX_LEVELS][LD_SC_MAX_BLOCK_TYPES]; /* LD_SC_RES / _TIMESTEP / _ATTN */
    int self_attn[LD_SC_MAX_LEVELS];
    int nconds; /* timestep_conditioning_type entries ("sca", "crp") */
    char conds[LD_SC_MAX_CONDS][16];
    /* switch_level given: level changes are LN2d + 1x1 conv (UpDownBlock2d
     * with interpolation disabled); otherwise LN2d + 2x2 stride-2 (transposed) conv. */
    int updown_1x1;
} ld_sc_config;

ld_status ld_sc_config_parse(ld_ctx *ctx, const char *where, const json_t *json, ld_sc_config *cfg);

/* Spatial size after the down-path level changes, for size checks:
 * returns the smallest (H, W) reached by the embedded input of size (h, w). */
void ld_sc_config_deepest_size(const ld_sc_config *cfg, int64_t h, int64_t w, int64_t *dh, int64_t *dw);

#endif
