/* LoRA files at inference: merged into a component's weights for a run.
 *
 *     LD_TRY(ld_lora_merge(ctx, ws, LD_LORA_UNET, loras, n));   // before building the model on ws
 *
 * Key layouts read (the two that trainers write for diffusers-layout models):
 *   peft / diffusers: "unet.<module>.lora_A.weight" + ".lora_B.weight" (also the
 *       older ".lora.down.weight" + ".lora.up.weight"), optional "<module>.alpha";
 *       text encoders under "text_encoder." and "text_encoder_2.";
 *   kohya: "lora_unet_<module, '.' -> '_'>.lora_down.weight" + ".lora_up.weight"
 *       + ".alpha"; text encoders "lora_te1_" (or "lora_te_") and "lora_te2_".
 *       U-Net modules by their diffusers names or by the original SGM names
 *       kohya's SDXL scripts write ("lora_unet_input_blocks_4_1_...",
 *       models/sgm_names.h).
 * A layer W [out, in] (or a conv [out, in, kh, kw] with down [r, in, kh, kw],
 * up [out, r, 1, 1]) becomes W + scale * alpha / r * up . down, as an f32 copy
 * (ld_weights_override_f32); every other tensor stays as stored, mmapped.
 * Several files add up. A key that matches no tensor of the component, an
 * A without its B, shapes that do not line up, or a kind of adapter this
 * does not merge (LoHa, LoKr, DoRA) is an error naming the key and the file.
 */
#ifndef LD_MODELS_LORA_MERGE_H
#define LD_MODELS_LORA_MERGE_H

#include "io/weights.h"
#include "leandiff.h"

typedef enum { LD_LORA_UNET = 0, LD_LORA_TE1, LD_LORA_TE2 } ld_lora_target;

ld_status ld_lora_merge(ld_ctx *ctx, ld_weights *ws, ld_lora_target target, const ld_lora_ref *loras, int n);

/* Checks that every key of the file belongs to a known layout and component
 * (before any model is loaded). */
ld_status ld_lora_check_file(ld_ctx *ctx, const char *path);
/* The same two on an open file (path names it in messages). */
ld_status ld_lora_check(ld_ctx *ctx, const ld_safetensors *f, const char *path);
ld_status ld_lora_merge_file(ld_ctx *ctx, ld_weights *ws, ld_lora_target target, const ld_safetensors *f,
                             const char *path, float scale);

/* kohya's name of a module: prefix ("lora_unet") + "_" + module with '.' -> '_' + suffix. */
void ld_lora_kohya_name(char *buf, size_t n, const char *prefix, const char *module, const char *suffix);

#endif
