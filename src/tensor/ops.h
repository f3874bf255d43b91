/* Neural-network ops shared by every model family. They know nothing of
 * models: plain f32 activation pointers with explicit sizes (NCHW unless
 * stated), weights as ld_tensor in their stored dtype (f32/f16/bf16).
 *
 * Conventions
 *  - Every op splits its work over the OpenMP threads itself; call ops from
 *    serial code. Results do not depend on the thread count.
 *  - Ops do not allocate from the heap on the hot path except the bounded
 *    per-thread scratch they document; they cannot fail (shapes are validated
 *    when models are built).
 *  - Output and input may alias only where a function says so.
 *  - Each op has a portable C path; SIMD variants are picked at run time.
 */
#ifndef LD_TENSOR_OPS_H
#define LD_TENSOR_OPS_H

#include "tensor/gemm.h"
#include "tensor/tensor.h"

/* ---- elementwise (in place) ---- */
void ld_silu(float *x, int64_t n);
void ld_gelu_erf(float *x, int64_t n);   /* x * 0.5 * (1 + erf(x / sqrt 2)) */
void ld_gelu_tanh(float *x, int64_t n);  /* PyTorch approximate="tanh" */
void ld_quick_gelu(float *x, int64_t n); /* x * sigmoid(1.702 x) */
void ld_sigmoid(float *x, int64_t n);
void ld_leaky_relu(float *x, int64_t n, float slope);
void ld_scale(float *x, int64_t n, float s);
/* y = a + b; y may alias a or b. */
void ld_add(float *y, const float *a, const float *b, int64_t n);
/* y += x * s (a scaled residual). */
void ld_add_scaled(float *y, const float *x, float s, int64_t n);
/* x[b, c, :] += bias[c] for NCHW (bias length C). */
void ld_add_channel_bias(float *x, int64_t B, int64_t C, int64_t HW, const float *bias);
/* GEGLU: x is [rows, 2d]; y[r, i] = x[r, i] * gelu_erf(x[r, d + i]). y must not alias x. */
void ld_geglu(float *y, const float *x, int64_t rows, int64_t d);
/* FiLM on NCHW x [B, C, HW] in place: x[b, c, :] = x[b, c, :] * a[b*C + c] + t[b*C + c]. */
void ld_channel_affine(float *x, int64_t B, int64_t C, int64_t HW, const float *a, const float *t);

/* ---- linear ---- */
/* y[M, N] = x[M, K] w[N, K]^T + b[N]; K and N from w's shape (a 1x1 conv
 * weight [N, K, 1, 1] works too). b may be NULL. */
void ld_linear(float *y, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b);
/* Same with row strides (elements) for y and x. */
void ld_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const ld_tensor *w,
                       const ld_tensor *b);
/* y += x w^T + b, the residual add fused into the product (for each
 * element: y, then the sum over k, then b[n]; one pass over y fewer than
 * ld_linear and ld_add). */
void ld_linear_add(float *y, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b);
/* The same product written channel-major and added to y: x [M, K] (tokens),
 * y [N, M] = beta * y + (x w^T)^T + b (for each n: beta*y, then the sum over
 * k, then b[n]). Turns attention output tokens straight into a residual
 * NCHW image (M = pixels) without a transpose. */
void ld_linear_to_channels(float *y, float beta, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b);

/* ---- convolution ---- */
typedef struct {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dilation_h, dilation_w;
    int groups;
    int replicate_pad; /* pad by repeating edge pixels instead of zeros */
} ld_conv2d_params;

/* stride 1, padding `pad`, dilation 1, 1 group, zero padding */
ld_conv2d_params ld_conv2d_params_make(int stride, int pad);
int64_t ld_conv2d_out_dim(int64_t in, int64_t kernel, int stride, int pad, int dilation);

/* x [B, Cin, H, W], w [Cout, Cin/groups, kh, kw], b [Cout] or NULL ->
 * y [B, Cout, Ho, Wo]. Implicit GEMM over bounded tiles: no full im2col;
 * 3x3 convolutions of at least 32 channels by Winograd's algorithm unless
 * the calling thread asked for the direct sums (ld_conv_set_direct). */
void ld_conv2d(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
               const ld_tensor *b, const ld_conv2d_params *p);

/* on = 1: ld_conv2d on the calling thread keeps the direct sums (no
 * Winograd), as training does, whose backward differentiates the direct
 * form. Returns the previous setting (default 0). */
int ld_conv_set_direct(int on);
/* PyTorch ConvTranspose2d: x [B, Cin, H, W], w [Cin, Cout, kh, kw] (groups 1),
 * Ho = (H-1)*stride - 2*pad + kh. */
void ld_conv_transpose2d(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                         const ld_tensor *b, int stride, int pad);

/* ---- normalization (y may alias x) ---- */
/* GroupNorm over NCHW, affine if gamma/beta are given. */
void ld_group_norm(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                   const ld_tensor *gamma, const ld_tensor *beta);
/* ld_group_norm then ld_silu, fused (each channel row activated while in
 * cache); the same bits as the two calls. */
void ld_group_norm_silu(float *y, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups, float eps,
                        const ld_tensor *gamma, const ld_tensor *beta);
/* LayerNorm over the last dim of [rows, dim]; gamma/beta may be NULL (no affine). */
void ld_layer_norm(float *y, const float *x, int64_t rows, int64_t dim, float eps, const ld_tensor *gamma,
                   const ld_tensor *beta);
/* LayerNorm over the channels of NCHW at each pixel (Wuerstchen's LayerNorm2d). */
void ld_layer_norm_channels(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps,
                            const ld_tensor *gamma, const ld_tensor *beta);
/* The same LayerNorm (no affine) written token-major: y [B, HW, C], the
 * ld_layer_norm_channels values bit for bit. Linear layers then read their
 * input rows whole (bf16 products on rows ran 8-19 % faster than on NCHW planes in bench_gemm). */
void ld_layer_norm_channels_tokens(float *y, const float *x, int64_t B, int64_t C, int64_t HW, float eps);
/* GlobalResponseNorm (ConvNeXt-V2) in two fused steps on NCHW activations:
 *  1. ld_gelu_channel_norms: x = gelu_erf(x) in place and, for each (b, c),
 *     norm[b*C + c] = ||x[b, c, :]||_2 of the result (sums in double);
 *  2. ld_conv1x1_grn: the following 1x1 convolution (w [Cout, C]) applied to
 *     GRN(x)[b, c, p] = g[c] * (x[b, c, p] * s[b*C + c]) + t[c] + x[b, c, p],
 *     where the caller derives the scale s from the norms (G / (mean G + eps));
 *     the GRN is computed while the product packs its input (no extra pass).
 *     y [B, Cout, HW] = beta * y + w . GRN(x) + bias (beta 1: a residual). */
void ld_gelu_channel_norms(float *x, int64_t B, int64_t C, int64_t HW, float *norm);
void ld_conv1x1_grn(float *y, float beta, const float *x, int64_t B, int64_t C, int64_t HW, const float *g,
                    const float *s, const float *t, const ld_tensor *w, const ld_tensor *bias);
/* The statistics of ld_layer_norm_channels alone: mean[b*HW + p] and
 * rstd[b*HW + p] = 1/sqrt(var + eps) of each pixel over the C channels. */
void ld_layer_norm_channels_stats(float *mean, float *rstd, const float *x, int64_t B, int64_t C, int64_t HW,
                                  float eps);
/* 1x1 convolution (w [Cout, Ca + Cb]) of cat(norm(a), c2) built while packed:
 * norm(a)[b, c, p] = (a[b, c, p] - mean[b*HW + p]) * rstd[b*HW + p] (the
 * ld_layer_norm_channels result, bit for bit; mean and rstd NULL: a as is),
 * c2 [B, Cb, HW] appended (Cb may be 0, c2 then NULL).
 * y [B, Cout, HW] = beta * y + w . in + bias. */
void ld_conv1x1_cat(float *y, float beta, const float *a, int64_t Ca, const float *mean, const float *rstd,
                    const float *c2, int64_t Cb, int64_t B, int64_t HW, const ld_tensor *w, const ld_tensor *bias);
/* In-place softmax of each row of [rows, n]; a row that is all -inf gives zeros. */
void ld_softmax_rows(float *x, int64_t rows, int64_t n);

/* ---- attention ---- */
typedef struct {
    float scale;          /* usually 1/sqrt(D) */
    int causal;           /* mask key j > query i */
    const float *mask;    /* optional additive mask, (b,i,j) at mask[b*mask_b + i*mask_q + j] */
    int64_t mask_b, mask_q; /* strides; 0 broadcasts */
    const uint8_t *key_keep; /* optional [B, Lk]: 0 = padding key, never attended */
} ld_attn_params;

/* Multi-head scaled-dot-product attention.
 * q: B x Lq rows of stride ldq; head h uses columns [h*D, (h+1)*D). Batch b
 * starts at q + b*Lq*ldq. k, v: B x Lk rows (strides ldk, ldv). out: B x Lq
 * rows of stride ldo. Blocked with an online softmax: the Lq x Lk score matrix
 * is never materialized beyond one block per thread. A query whose keys are
 * all masked gets zeros. */
void ld_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                  int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, const ld_attn_params *p);
/* The same in slices of about slice_flops each (0: the default, ~4 GFLOP,
 * or 1536 query rows of a larger head: a few tenths of a second at worst),
 * with ld_check_cancel(ctx, where) between slices: a self-attention over a
 * huge image can be stopped. A slice is as many whole heads of one batch
 * entry as fit (each head's K and V are then packed once), or a run of query
 * rows of one head when a head alone is larger (a last run shorter than the
 * least run joins the one before). Bitwise the same results as
 * ld_attention (heads and query rows are independent).
 * Causal attention is not sliced. LD_ERR_CANCELLED leaves out partly written. */
ld_status ld_attention_checked(ld_ctx *ctx, const char *where, int64_t slice_flops, float *out, int64_t ldo,
                               const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                               int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, const ld_attn_params *p);

/* ---- resampling and layout ---- */
/* PyTorch F.interpolate(mode="nearest") to (Ho, Wo): src = floor(dst * in / out). */
void ld_upsample_nearest(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo);
/* F.interpolate(mode="bilinear", align_corners=True). */
void ld_resize_bilinear_ac(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                           int64_t Wo);
/* F.interpolate(mode="bicubic", antialias=True, align_corners=ac): PyTorch's
 * separable AA resampler (cubic a = -0.5, support scaled when downsampling). */
void ld_resize_bicubic_aa(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo, int align_corners);
/* [B, C, H, W] -> [B, C/r^2, H*r, W*r] */
void ld_pixel_shuffle(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int r);
/* [B, C, H, W] -> [B, C*r^2, H/r, W/r] */
void ld_pixel_unshuffle(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int r);
/* y [B, Ca+Cb, HW] = cat(a [B, Ca, HW], b [B, Cb, HW]) along channels. */
void ld_concat_channels(float *y, const float *a, int64_t Ca, const float *b, int64_t Cb, int64_t B, int64_t HW);
/* [B, C, HW] <-> [B, HW, C] */
void ld_nchw_to_nhwc(float *y, const float *x, int64_t B, int64_t C, int64_t HW);
void ld_nhwc_to_nchw(float *y, const float *x, int64_t B, int64_t C, int64_t HW);

/* ---- embeddings ---- */
/* diffusers get_timestep_embedding: for each of n timesteps t, half = dim/2,
 * freq_i = exp(-ln(max_period) * i / (half - shift)), arg = scale * t * freq_i,
 * [sin, cos] (or [cos, sin] when flip_sin_to_cos); zero-padded if dim is odd. */
void ld_timestep_embedding(float *y, const float *t, int64_t n, int dim, int flip_sin_to_cos, float shift,
                           float scale, float max_period);

#endif
