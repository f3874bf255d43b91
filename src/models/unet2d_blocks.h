/* Building blocks of diffusers' UNet2DConditionModel, shared with the
 * AutoencoderKL: ResnetBlock2D, Downsample2D, Upsample2D and the
 * Transformer2DModel (GroupNorm, proj_in, BasicTransformerBlocks with
 * self-attention, cross-attention and a GEGLU feed-forward, proj_out).
 *
 * Each block is a weights struct filled by a *_build function that looks
 * every tensor up by its checkpoint name under a prefix (for example
 * "down_blocks.1.resnets.0."), and a *_forward function that reads like the
 * module's equations (specs/koala.md §7). Forwards take activations as f32
 * NCHW arrays and take their temporaries from an arena, leaving it as they
 * found it. They fail only when the arena cannot grow.
 */
#ifndef LD_MODELS_UNET2D_BLOCKS_H
#define LD_MODELS_UNET2D_BLOCKS_H

#include "base/arena.h"
#include "io/weights.h"
#include "tensor/tensor.h"

/* A weight and an optional bias (bias.data == NULL, bias.ndim == 0 when absent). */
typedef struct {
    ld_tensor w, b;
} ld_wb;

/* Weight lookups under a prefix: "<prefix><name>.weight" / ".bias".
 * norm: weight and bias [c]; conv: [cout, cin, k, k] + [cout];
 * linear: [out, in] (+ [out] when with_bias); conv1x1_as_linear: a
 * [out, in, 1, 1] conv weight viewed as the [out, in] matrix it is. */
ld_status ld_get_norm(ld_ctx *ctx, ld_weights *ws, ld_wb *n, const char *prefix, const char *name, int64_t c);
ld_status ld_get_conv(ld_ctx *ctx, ld_weights *ws, ld_wb *c, const char *prefix, const char *name, int64_t cout,
                      int64_t cin, int64_t k);
ld_status ld_get_linear(ld_ctx *ctx, ld_weights *ws, ld_wb *l, const char *prefix, const char *name, int64_t out,
                        int64_t in, int with_bias);
ld_status ld_get_conv1x1_as_linear(ld_ctx *ctx, ld_weights *ws, ld_wb *l, const char *prefix, const char *name,
                                   int64_t out, int64_t in);

/* ResnetBlock2D (resnet_time_scale_shift "default", act SiLU):
 *   h = conv1(SiLU(norm1(x))) [+ time_emb_proj(SiLU(temb))]
 *   h = conv2(SiLU(norm2(h)))
 *   out = (shortcut(x) + h) / out_scale */
typedef struct {
    int cin, cout, groups;
    float eps, out_scale;
    ld_wb norm1, conv1, norm2, conv2;
    ld_wb time_emb_proj; /* absent when temb_dim == 0 (VAE) */
    ld_wb conv_shortcut; /* 1x1, present iff cin != cout */
} ld_resnet;

ld_status ld_resnet_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_resnet *r, int cin, int cout,
                          int temb_dim, int groups, float eps, float out_scale);
/* out [B, cout, H, W] from x [B, cin, H, W]; temb_act [B, temb_dim] is
 * SiLU(emb) (NULL when the block has no time embedding). out must not alias x. */
ld_status ld_resnet_forward(ld_ctx *ctx, ld_arena *a, const ld_resnet *r, float *out, const float *x, int B, int H,
                            int W, const float *temb_act);
/* Arena floats ld_resnet_forward takes for its scratch (for memory estimates). */
int64_t ld_resnet_scratch_floats(const ld_resnet *r, int B, int64_t HW);

/* Downsample2D with a conv: padding 1 -> conv 3x3 stride 2 pad 1;
 * padding 0 -> zero pad right and bottom by one, then conv stride 2 pad 0. */
typedef struct {
    int channels, padding;
    ld_wb conv;
} ld_downsample;

ld_status ld_downsample_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_downsample *d, int channels,
                              int padding);
void ld_downsample_out_size(const ld_downsample *d, int H, int W, int *Ho, int *Wo);
ld_status ld_downsample_forward(ld_ctx *ctx, ld_arena *a, const ld_downsample *d, float *out, const float *x, int B,
                                int H, int W);
int64_t ld_downsample_scratch_floats(const ld_downsample *d, int B, int H, int W);

/* Upsample2D with a conv: nearest resize to (Ho, Wo) (normally 2H, 2W), conv 3x3 pad 1. */
typedef struct {
    int channels;
    ld_wb conv;
} ld_upsample;

ld_status ld_upsample_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_upsample *u, int channels);
ld_status ld_upsample_forward(ld_ctx *ctx, ld_arena *a, const ld_upsample *u, float *out, const float *x, int B,
                              int H, int W, int Ho, int Wo);

/* BasicTransformerBlock (layer_norm, GEGLU feed-forward, no attention biases):
 *   x += attn1(LN1(x));  x += attn2(LN2(x), context);  x += FF(LN3(x)) */
typedef struct {
    ld_wb norm1, norm2, norm3;
    ld_tensor attn1_q, attn1_k, attn1_v;
    ld_wb attn1_out;
    ld_tensor attn2_q, attn2_k, attn2_v;
    ld_wb attn2_out;
    ld_wb ff_in;  /* ff.net.0.proj: [2 * inner, C] */
    ld_wb ff_out; /* ff.net.2: [C, inner] */
} ld_tblock;

/* Transformer2DModel (continuous input):
 *   r = x; x = proj_in(GN(x)) as tokens; blocks; x = proj_out(x) back to NCHW; x += r
 * proj_in/proj_out are Linear (use_linear_projection) or 1x1 convs, which are
 * the same matrix product on pixel-major tokens. */
typedef struct {
    int channels, heads, head_dim, depth, ctx_dim, groups, ff_inner;
    ld_wb norm, proj_in, proj_out;
    ld_tblock *blocks; /* depth entries, owned */
} ld_transformer2d;

ld_status ld_transformer2d_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_transformer2d *t, int channels,
                                 int heads, int depth, int ctx_dim, int groups, int linear_projection);
void ld_transformer2d_free(ld_transformer2d *t);
/* x [B, C, H*W] updated in place; context [B, L, ctx_dim]. */
ld_status ld_transformer2d_forward(ld_ctx *ctx, ld_arena *a, const ld_transformer2d *t, float *x, int B, int64_t HW,
                                   const float *context, int L);
int64_t ld_transformer2d_scratch_floats(const ld_transformer2d *t, int B, int64_t HW, int L);

/* Adds tb [B, C] per sample and channel to x [B, C, HW]. */
void ld_add_per_sample_channel(float *x, const float *tb, int B, int C, int64_t HW);

#endif
