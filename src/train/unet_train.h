/* Training the UNet2DConditionModel (the SDXL family): its f32 master
 * weights (train_params.h), a forward that keeps only each block's input,
 * and a backward that recomputes one block at a time from that input and
 * runs its backward (gradient checkpointing per block), accumulating into
 * the parameter gradients.
 *
 * The model is the inference model (models/unet2d.c) built over the master
 * weights; the blocks are the units of the forward: conv_in, each
 * ResnetBlock2D (with its skip concatenation), each Transformer2DModel split
 * into its input projection, every BasicTransformerBlock and its output
 * projection, the samplers and the output head.
 *
 *     ld_train_unet *t;
 *     LD_TRY(ld_train_unet_open(ctx, "$MODELS/koala-700m/unet", 0, &t));
 *     ld_train_params_zero_grad(ld_train_unet_params(t));
 *     LD_TRY(ld_train_unet_forward(ctx, t, noisy, B, H, W, tsteps, ctx_emb, 77, text_embeds, time_ids, pred));
 *     ... dpred = d loss / d pred ...
 *     LD_TRY(ld_train_unet_backward(ctx, t, dpred));
 */
#ifndef LD_TRAIN_UNET_TRAIN_H
#define LD_TRAIN_UNET_TRAIN_H

#include "train/lora.h"
#include "train/train_params.h"

#include <jansson.h>

typedef struct ld_train_unet ld_train_unet;

/* A diffusers U-Net folder (config.json + weights in f32/f16/bf16). frozen:
 * the weights stay as stored (mmapped, no gradients) for adapter training;
 * else they are copied into f32 master weights that train. */
ld_status ld_train_unet_open(ld_ctx *ctx, const char *unet_dir, int frozen, ld_train_unet **out);
void ld_train_unet_free(ld_train_unet *t);

ld_train_params *ld_train_unet_params(ld_train_unet *t);
/* Which layers get LoRA adapters (lora.h), and their ranks. */
typedef struct {
    int rank;        /* linear (and 1x1 convolution) adapters */
    float alpha;     /* 0: the rank */
    int all_linear;  /* every linear of the transformers, not only the attention projections */
    int conv_rank;   /* 0: no convolution adapters */
    float conv_alpha; /* 0: conv_rank */
} ld_train_lora_spec;

/* LoRA adapters on every attention projection (to_q, to_k, to_v, to_out.0
 * of attn1 and attn2), the layers peft's diffusers scripts target; with
 * all_linear also on every other linear of the Transformer2DModels
 * (proj_in, proj_out, ff.net.0.proj, ff.net.2), as kohya's LoRA does. With
 * conv_rank, also as kohya's LoRA-C3Lier (LoCon): every ResnetBlock2D's
 * conv1 and conv2 and every Downsample2D's and Upsample2D's conv at
 * conv_rank, and the ResNets' conv_shortcut and time_emb_proj at rank
 * (conv_in and conv_out are not adapted). */
ld_status ld_train_unet_add_lora(ld_ctx *ctx, ld_train_unet *t, const ld_train_lora_spec *sp, uint64_t seed);
/* The adapters (NULL without LoRA). */
ld_lora *ld_train_unet_lora(ld_train_unet *t);
/* What trains: the adapters' parameters when there are any, else the weights. */
ld_train_params *ld_train_unet_trainable(ld_train_unet *t);
const json_t *ld_train_unet_config(const ld_train_unet *t);
int ld_train_unet_out_channels(const ld_train_unet *t);

/* pred [B, out_channels, H, W] for sample [B, in_channels, H, W] (inputs as
 * ld_unet2d_forward). The inputs must stay valid until the backward. */
ld_status ld_train_unet_forward(ld_ctx *ctx, ld_train_unet *t, const float *sample, int B, int H, int W,
                                const float *timesteps, const float *context, int L, const float *text_embeds,
                                const float *time_ids, float *pred);
/* Adds d(loss)/d(parameters) to the gradients, from dpred = d(loss)/d(pred)
 * of the last forward. */
ld_status ld_train_unet_backward(ld_ctx *ctx, ld_train_unet *t, const float *dpred);

/* Feature taps (KOALA's feature distillation): every forward keeps the
 * output of each named module of a transformer block, its self-attention
 * ("up_blocks.0.attentions.1.transformer_blocks.1.attn1"), cross-attention
 * (".attn2") or feed-forward (".ff"), before the residual add, as
 * [B, tokens, C]; one tap per block. An unknown name is an error naming it. */
ld_status ld_train_unet_set_taps(ld_ctx *ctx, ld_train_unet *t, const char *const *names, int n);
/* Tap i of the last forward (n elements, shape [B, tokens, C]); *grad is
 * where the caller puts d(loss)/d(feature) before the backward (the forward
 * zeroes it). NULL past the last tap. Any out pointer may be NULL. */
float *ld_train_unet_tap(ld_train_unet *t, int i, int64_t *n, float **grad, int64_t shape[3]);

/* The products of this model's forward and backward in p (f32 exact, or
 * bf16 with f32 sums), whatever the process's precision; used to run a
 * frozen distillation teacher in bf16 next to an f32 student. */
void ld_train_unet_set_precision(ld_train_unet *t, ld_precision p);

/* Gradient bucketing (train_comm.h): after the backward of each block,
 * fn(ctx, user, seq) with seq = 0, 1, ... in backward order (the time
 * embedding last); an error stops the backward. NULL removes it. */
void ld_train_unet_on_block_done(ld_train_unet *t, ld_status (*fn)(ld_ctx *ctx, void *user, int seq), void *user);
/* For each trainable tensor (ld_train_unet_params order), the seq of the
 * block after which its gradient is final (-1: no block writes it); NULL
 * before the first backward, or when the base is frozen (LoRA). */
const int *ld_train_unet_grad_order(const ld_train_unet *t);

/* Bytes of the activations the last step kept and its scratch peak. */
size_t ld_train_unet_activation_bytes(const ld_train_unet *t);

#endif
