/* One training step of a diffusion U-Net on a batch, as diffusers' training
 * scripts do it: noisy = add_noise(x0, noise, t), pred = unet(noisy, t, ...),
 * loss = mean((pred - target)^2) with the target of the scheduler config's
 * prediction_type, then the backward into the parameter gradients.
 *
 *     ld_train_batch b = {.B = 2, .H = 128, .W = 128, .x0 = lat, .noise = eps, .timesteps = t,
 *                         .context = emb, .L = 77, .text_embeds = pooled, .time_ids = ids};
 *     double loss;
 *     LD_TRY(ld_train_step(ctx, unet, sched, &b, 1.0f / accum, NULL, NULL, &loss));
 */
#ifndef LD_TRAIN_TRAIN_STEP_H
#define LD_TRAIN_TRAIN_STEP_H

#include "sched/scheduler.h"
#include "train/unet_train.h"

typedef struct {
    int B, H, W, L;              /* batch, latent size, context tokens */
    const float *x0, *noise;     /* [B, C, H, W] */
    const int64_t *timesteps;    /* [B], 0..num_train_timesteps-1 */
    const float *context;        /* [B, L, cross_attention_dim] */
    const float *text_embeds;    /* [B, text_embeds_dim] (SDXL add-embedding) or NULL */
    const float *time_ids;       /* [B, 6] or NULL */
} ld_train_batch;

/* The noise schedule and prediction type of a pipeline folder
 * (scheduler/scheduler_config.json: betas, num_train_timesteps,
 * prediction_type). */
ld_status ld_train_open_scheduler(ld_ctx *ctx, const char *model_dir, ld_scheduler **s);

/* Forward, loss and backward. The gradients are scaled by grad_scale (1/N
 * to average N accumulated micro-batches) and ADDED to the parameters'
 * gradients. noisy and pred, when not NULL, receive [B, C, H, W]. */
ld_status ld_train_step(ld_ctx *ctx, ld_train_unet *t, const ld_scheduler *s, const ld_train_batch *b,
                        float grad_scale, float *noisy, float *pred, double *loss);

#endif
