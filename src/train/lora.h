/* LoRA adapters for training (Hu et al. 2021, as peft applies them to
 * diffusers' U-Net): a frozen linear weight W [out, in] gets
 *     y = W x + (alpha / rank) * B (A x),   A [rank, in], B [out, rank]
 * with A initialised as peft does (kaiming-uniform, a = sqrt(5): uniform in
 * +-1/sqrt(in)) and B zero, so training starts from the base model. Only A
 * and B train; they live in one packed ld_train_params.
 *
 * Files (ld_lora_save):
 *   peft / diffusers: "unet.<module>.lora_A.weight", "unet.<module>.lora_B.weight"
 *       (what StableDiffusionXLPipeline.load_lora_weights reads; it has no
 *       alpha, so B is saved times alpha / rank and loads at scale 1);
 *   kohya: "lora_unet_<module with _>.lora_down.weight" (A), ".lora_up.weight"
 *       (B) and ".alpha" (what A1111, ComfyUI and sd.cpp read).
 */
#ifndef LD_TRAIN_LORA_H
#define LD_TRAIN_LORA_H

#include "train/train_params.h"

typedef struct {
    int rank;
    float alpha, scale; /* scale = alpha / rank */
    size_t n;           /* adapted layers */
    const ld_tensor **base; /* their frozen weights (looked up by data pointer) */
    char **module;      /* "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q" */
    ld_train_params params; /* tensor 2i: layer i's A, 2i + 1: its B */
} ld_lora;

/* Adapters on each of bases[0..n-1] (2-D weights named "<module>.weight"). */
ld_status ld_lora_create(ld_ctx *ctx, const ld_tensor *const *bases, size_t n, int rank, float alpha, uint64_t seed,
                         ld_lora *out);
void ld_lora_free(ld_lora *l);
/* The adapter of a base weight, or -1. */
int ld_lora_find(const ld_lora *l, const ld_tensor *w);

/* y[M, out] += scale * B (A x) for adapter i (x [M, in]). */
ld_status ld_lora_forward(ld_ctx *ctx, const ld_lora *l, int i, const float *x, int64_t M, float *y);
/* Accumulates dA, dB into the packed gradients and (dx != NULL) dx[M, in]. */
ld_status ld_lora_backward(ld_ctx *ctx, ld_lora *l, int i, const float *dy, const float *x, int64_t M, float *dx);

typedef enum { LD_LORA_PEFT = 0, LD_LORA_KOHYA = 1 } ld_lora_format;
/* Writes the adapters (as F32 or F16), atomically. */
ld_status ld_lora_save(ld_ctx *ctx, const ld_lora *l, ld_lora_format fmt, ld_dtype dtype, const char *path);

#endif
