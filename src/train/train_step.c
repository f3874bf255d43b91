/* One training step: noise, forward, MSE loss, backward (see train_step.h). */
#include "train/train_step.h"

#include "io/model_folder.h"

#include <stdio.h>
#include <stdlib.h>

ld_status ld_train_open_scheduler(ld_ctx *ctx, const char *model_dir, ld_scheduler **s) {
    char dir[4096], where[4200];
    json_t *cfg = NULL;
    LD_TRY(ld_component_dir(ctx, model_dir, NULL, "scheduler", dir, sizeof dir));
    LD_TRY(ld_component_config(ctx, dir, &cfg));
    snprintf(where, sizeof where, "%s/scheduler_config.json", dir);
    ld_status st = ld_scheduler_create(ctx, "euler", LD_SCHEDULE_DEFAULT, cfg, where, NULL, s);
    json_decref(cfg);
    return st;
}

ld_status ld_train_step(ld_ctx *ctx, ld_train_unet *t, const ld_scheduler *s, const ld_train_batch *b,
                        float grad_scale, float *noisy_out, float *pred_out, double *loss) {
    const int C = ld_train_unet_out_channels(t);
    const int64_t per = (int64_t)C * b->H * b->W, n = b->B * per;
    if (b->B < 1 || b->H < 1 || b->W < 1 || per > ((int64_t)1 << 40) / b->B)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training step: bad batch size %d x %d x %d", b->B, b->H, b->W);
    float *noisy = malloc(sizeof(float) * (size_t)n), *target = malloc(sizeof(float) * (size_t)n);
    float *pred = malloc(sizeof(float) * (size_t)n), *tf = malloc(sizeof(float) * (size_t)b->B);
    ld_status st = LD_OK;
    if (!noisy || !target || !pred || !tf) st = ld_fail(ctx, LD_ERR_NOMEM, "training step: out of memory");
    if (st == LD_OK)
        st = ld_scheduler_training_pair(ctx, s, b->timesteps, b->B, per, b->x0, b->noise, noisy, target);
    for (int i = 0; st == LD_OK && i < b->B; i++) tf[i] = (float)b->timesteps[i];
    if (st == LD_OK)
        st = ld_train_unet_forward(ctx, t, noisy, b->B, b->H, b->W, tf, b->context, b->L, b->text_embeds,
                                   b->time_ids, pred);
    if (st == LD_OK) {
        /* loss = mean((pred - target)^2); d loss / d pred = 2 (pred - target) / n */
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            const double d = (double)pred[i] - target[i];
            sum += d * d;
        }
        *loss = sum / (double)n;
        const float k = (float)(2.0 / (double)n) * grad_scale;
        for (int64_t i = 0; i < n; i++) target[i] = k * (pred[i] - target[i]);
        st = ld_train_unet_backward(ctx, t, target);
    }
    if (st == LD_OK && noisy_out) memcpy(noisy_out, noisy, sizeof(float) * (size_t)n);
    if (st == LD_OK && pred_out) memcpy(pred_out, pred, sizeof(float) * (size_t)n);
    free(noisy);
    free(target);
    free(pred);
    free(tf);
    return st;
}
