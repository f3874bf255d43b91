/* Stability AI's single-file checkpoints of Stable Cascade (stage_a,
 * stage_b*, stage_c*.safetensors) read through diffusers names (spec
 * wuerstchen.md §10.2): aliases are views into the file, nothing is copied.
 *
 *     ld_weights *ws;
 *     LD_TRY(ld_weights_open_file(ctx, "stage_c_lite_bf16.safetensors", &ws));
 *     LD_TRY(ld_stability_alias_unet(ctx, ws));    // then build the UNet from ws
 *
 * Stage B / C: "X.attention.attn.in_proj_weight" [3C, C] gives
 * X.attention.to_q / to_k / to_v .weight as rows [0,C), [C,2C), [2C,3C) (same
 * for in_proj_bias); "X.attention.attn.out_proj.*" is X.attention.to_out.0.*;
 * Stage B's "clip_mapper.*" is clip_txt_pooled_mapper.*.
 * Stage A: "vquantizer.codebook.weight" is vquantizer.embedding.weight.
 * Names already in diffusers form are left alone, so calling these on a
 * diffusers file is harmless.
 */
#ifndef LD_MODELS_STABILITY_NAMES_H
#define LD_MODELS_STABILITY_NAMES_H

#include "io/weights.h"

ld_status ld_stability_alias_unet(ld_ctx *ctx, ld_weights *ws);
ld_status ld_stability_alias_vqgan(ld_ctx *ctx, ld_weights *ws);

#endif
