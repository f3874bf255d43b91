/* The original (SGM / "LDM") module names of an SDXL-family U-Net, the ones
 * kohya's sd-scripts uses for SDXL LoRA files ("lora_unet_input_blocks_4_1_
 * transformer_blocks_0_attn1_to_q"), A1111 and ComfyUI read, and most SDXL
 * LoRAs in circulation carry: the inverse of diffusers'
 * convert_ldm_unet_checkpoint, derived from the U-Net's own layout (the
 * blocks, layers, attentions and samplers its diffusers tensor names show),
 * so other depths (KOALA's) map too.
 *
 *     ld_unet_layout l;
 *     ld_unet_layout_from_weights(ws, &l);
 *     char sgm[256];
 *     if (ld_unet_sgm_module(&l, "down_blocks.1.attentions.0.proj_in", sgm, sizeof sgm))
 *         ... sgm is "input_blocks.4.1.proj_in" for SDXL ...
 */
#ifndef LD_MODELS_SGM_NAMES_H
#define LD_MODELS_SGM_NAMES_H

#include "io/weights.h"

#define LD_SGM_MAX_BLOCKS 8

typedef struct {
    int nblocks;                              /* down blocks (= up blocks) */
    int down_layers[LD_SGM_MAX_BLOCKS], down_sampler[LD_SGM_MAX_BLOCKS], down_attn[LD_SGM_MAX_BLOCKS];
    int up_layers[LD_SGM_MAX_BLOCKS], up_sampler[LD_SGM_MAX_BLOCKS], up_attn[LD_SGM_MAX_BLOCKS];
} ld_unet_layout;

/* The layout the diffusers tensor names of ws show. */
void ld_unet_layout_from_weights(const ld_weights *ws, ld_unet_layout *l);
/* The SGM name of a diffusers module path (without ".weight"); 0 when the
 * module has none (out of range, or not a U-Net module). */
int ld_unet_sgm_module(const ld_unet_layout *l, const char *module, char *out, size_t n);

#endif
