/* Backward passes of the ops the SDXL-family U-Net trains through, each next
 * to the forward it reverses (the forwards are those of tensor/ops.h, except
 * attention, whose training forward also saves each row's log-sum-exp).
 *
 * Conventions (as llm.c's *_backward):
 *  - Every gradient output is ACCUMULATED: dx += ..., dw += ..., db += ...
 *    The caller zeroes a buffer before the first contribution; gradient
 *    accumulation over micro-batches is then free.
 *  - Any gradient pointer may be NULL: that gradient is not computed (a
 *    frozen weight, an input that needs none such as the text context).
 *  - Weights are ld_tensor in f32/f16/bf16 (a frozen base weight of a LoRA
 *    run stays in its stored dtype); weight gradients are f32 in the
 *    weight's own layout.
 *  - Like the forwards, each op splits its work over the OpenMP threads
 *    itself and every sum has a fixed order: results do not depend on the
 *    thread count. The products run on ld_gemm's packed kernels.
 *
 *     ld_linear(y, x, M, &w, &b);                          // forward
 *     ld_linear_backward(dy, x, M, &w, dx, dw, db);        // backward
 */
#ifndef LD_TRAIN_GRAD_OPS_H
#define LD_TRAIN_GRAD_OPS_H

#include "tensor/ops.h"

/* ---- linear: y[M, N] = x[M, K] w[N, K]^T + b ---- */
/* dx[M, K] += dy w;  dw[N, K] += dy^T x;  db[N] += column sums of dy. */
void ld_linear_backward(const float *dy, const float *x, int64_t M, const ld_tensor *w, float *dx, float *dw,
                        float *db);
/* db[c] += sum over b and i of dy[b, c, i] for dy [B, C, HW] (a conv bias, or
 * a per-sample channel bias broadcast over HW when B == 1 per call). */
void ld_channel_sum_backward(float *db, const float *dy, int64_t B, int64_t C, int64_t HW);

/* ---- convolution (groups 1, zero padding) ---- */
/* Reverses ld_conv2d(y, x, B, Cin, H, W, w, b, p) with y [B, Cout, Ho, Wo]
 * (groups and replicate padding are not supported: the U-Net has neither):
 * dx by an implicit-GEMM transposed convolution (no im2col buffer), dw by an
 * implicit GEMM over the input's patches, db by sums of dy. Returns 0 when
 * the transposed weight (one f32 copy) cannot be allocated. */
int ld_conv2d_backward(const float *dy, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W,
                        const ld_tensor *w, const ld_conv2d_params *p, float *dx, float *dw, float *db);

/* ---- normalization (statistics recomputed from x in double) ---- */
/* Return 0 when their small per-row/per-channel scratch cannot be allocated. */
int ld_group_norm_backward(const float *dy, const float *x, int64_t B, int64_t C, int64_t HW, int64_t groups,
                           float eps, const ld_tensor *gamma, float *dx, float *dgamma, float *dbeta);
int ld_layer_norm_backward(const float *dy, const float *x, int64_t rows, int64_t dim, float eps,
                           const ld_tensor *gamma, float *dx, float *dgamma, float *dbeta);

/* ---- activations ---- */
/* x is the input of ld_silu (before it ran in place). */
void ld_silu_backward(const float *dy, const float *x, int64_t n, float *dx);
/* x [rows, 2d] is ld_geglu's input: dx[:, :d] and dx[:, d:]. */
void ld_geglu_backward(const float *dy, const float *x, int64_t rows, int64_t d, float *dx);

/* ---- resampling ---- */
/* Reverses ld_upsample_nearest: dx[B, C, H, W] += sums of dy[B, C, Ho, Wo]. */
void ld_upsample_nearest_backward(const float *dy, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho,
                                  int64_t Wo, float *dx);

/* ---- attention (no mask; layouts as ld_attention) ---- */
/* out as ld_attention; lse[(b*H + h)*Lq + i] = log sum_j exp(scale q_i.k_j),
 * what the backward needs to rebuild each block of probabilities. Returns 0
 * when its per-thread scratch cannot be allocated (out and lse untouched). */
int ld_attention_train_forward(float *out, int64_t ldo, float *lse, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq,
                               int64_t Lk, int64_t D, float scale);
/* Blocked backward in one pass over blocks of keys and queries, each
 * recomputing its block of scores from q, k and the saved lse: the Lq x Lk
 * score matrix is never held. dq/dk/dv (each may be NULL) share their
 * operand's layout and stride and are summed onto. Returns 0 when its
 * scratch cannot be allocated. */
int ld_attention_backward(const float *dout, int64_t ldo, const float *out, const float *lse, const float *q,
                          int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t B, int64_t H,
                          int64_t Lq, int64_t Lk, int64_t D, float scale, float *dq, float *dk, float *dv);

#endif
