/* One step of KOALA's knowledge distillation (arXiv 2312.04005, the BK-SDM
 * objective with KOALA's self-attention features):
 *
 *   noisy = add_noise(x0, noise, t)             (as a training step)
 *   teacher_pred, f_T = teacher(noisy, ...)     (no gradient)
 *   pred, f_S         = student(noisy, ...)
 *   loss = l_task * mse(pred, target) + l_out * mse(pred, teacher_pred)
 *        + l_feat * sum_i mse(f_S[i], f_T[i])
 *
 * every mse a mean over all elements in float32; f[i] are the outputs of
 * paired attn1 modules (ld_train_unet_set_taps, pair i on both models), the
 * teacher's detached. The gradients are scaled by grad_scale and added to
 * the student's.
 */
#ifndef LD_DISTILL_DISTILL_STEP_H
#define LD_DISTILL_DISTILL_STEP_H

#include "train/train_step.h"

typedef struct {
    float task, out, feat;
} ld_distill_weights;

typedef struct {
    double loss, task, out, feat;
} ld_distill_losses;

/* noisy, pred, teacher_pred (each [B, C, H, W]) may be NULL. */
ld_status ld_distill_step(ld_ctx *ctx, ld_train_unet *student, ld_train_unet *teacher, const ld_scheduler *s,
                          const ld_train_batch *b, const ld_distill_weights *w, float grad_scale, float *noisy,
                          float *pred, float *teacher_pred, ld_distill_losses *losses);

#endif
