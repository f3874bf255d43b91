/* LoRA adapters for training (Hu et al. 2021, as peft applies them to
 * diffusers' U-Net): a frozen linear weight W [out, in] gets
 *     y = W x + (alpha / rank) * B (A x),   A [rank, in], B [out, rank]
 * and a frozen convolution W [out, in, kh, kw] (LoCon, kohya's LoRA-C3Lier)
 *     y = conv(x, W) + (alpha / rank) * conv1x1(conv(x, A), B),
 *     A [rank, in, kh, kw] with W's stride and padding, B [out, rank, 1, 1].
 * A is initialised as peft and kohya do (kaiming-uniform, a = sqrt(5):
 * uniform in +-1/sqrt(fan_in), fan_in = in*kh*kw) and B zero, so training
 * starts from the base model. Each adapter has its own rank and alpha. Only
 * A and B train; they live in one packed ld_train_params.
 *
 * Files (ld_lora_save):
 *   peft / diffusers: "unet.<module>.lora_A.weight", "unet.<module>.lora_B.weight"
 *       (what StableDiffusionXLPipeline.load_lora_weights reads; it has no
 *       alpha, so B is saved times alpha / rank and loads at scale 1);
 *   kohya: "lora_unet_<module with _>.lora_down.weight" (A), ".lora_up.weight"
 *       (B) and ".alpha" (what A1111, ComfyUI and sd.cpp read).
 * A convolution's A and B keep their 4-D shapes in both layouts.
 */
#ifndef LD_TRAIN_LORA_H
#define LD_TRAIN_LORA_H

#include "tensor/ops.h"
#include "train/train_params.h"

/* One layer to adapt. */
typedef struct {
    const ld_tensor *w;    /* frozen weight named "<module>.weight": [out, in] or [out, in, kh, kw] */
    int rank;
    float alpha;           /* 0: the rank (scale 1) */
    ld_conv2d_params conv; /* a convolution's stride and padding (groups 1, dilation 1) */
    int conv1x1;           /* w is the 2-D view of a 1x1 convolution the model runs as a linear (proj_in
                            * without use_linear_projection): A and B are kept 4-D, [r, in, 1, 1], [out, r, 1, 1] */
} ld_lora_layer;

typedef struct {
    int rank;           /* of the first linear or 1x1 adapter, */
    float alpha;        /*   for the files' metadata */
    int conv_rank;      /* of the first kxk convolution's adapter (0: none) */
    float conv_alpha;
    size_t n;           /* adapted layers */
    ld_lora_layer *layer; /* their frozen weights (looked up by data pointer), ranks, alphas */
    float *scale;       /* alpha / rank of each */
    char **module;      /* "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q" */
    ld_train_params params; /* tensor 2i: layer i's A, 2i + 1: its B */
} ld_lora;

/* Adapters on each of layers[0..n-1]; A drawn from seed. */
ld_status ld_lora_create(ld_ctx *ctx, const ld_lora_layer *layers, size_t n, uint64_t seed, ld_lora *out);
void ld_lora_free(ld_lora *l);
/* The adapter of a base weight, or -1. */
int ld_lora_find(const ld_lora *l, const ld_tensor *w);

/* Linear adapter i: y[M, out] += scale * B (A x) for x [M, in]. */
ld_status ld_lora_forward(ld_ctx *ctx, const ld_lora *l, int i, const float *x, int64_t M, float *y);
/* Accumulates dA, dB into the packed gradients and (dx != NULL) dx[M, in]. */
ld_status ld_lora_backward(ld_ctx *ctx, ld_lora *l, int i, const float *dy, const float *x, int64_t M, float *dx);

/* Convolution adapter i: y [B, out, Ho, Wo] += scale * conv1x1(conv(x, A), B)
 * for x [B, in, H, W] (Ho, Wo as the base convolution's). */
ld_status ld_lora_conv_forward(ld_ctx *ctx, const ld_lora *l, int i, const float *x, int64_t B, int64_t H,
                               int64_t W, float *y);
/* Accumulates dA, dB and (dx != NULL) dx [B, in, H, W]; both convolutions'
 * backward run on grad_conv.c's. */
ld_status ld_lora_conv_backward(ld_ctx *ctx, ld_lora *l, int i, const float *dy, const float *x, int64_t B,
                                int64_t H, int64_t W, float *dx);

typedef enum { LD_LORA_PEFT = 0, LD_LORA_KOHYA = 1 } ld_lora_format;
/* Writes the adapters (as F32 or F16), atomically. */
ld_status ld_lora_save(ld_ctx *ctx, const ld_lora *l, ld_lora_format fmt, ld_dtype dtype, const char *path);

#endif
