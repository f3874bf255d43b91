/* One distillation step (see distill_step.h). */
#include "distill/distill_step.h"

#include <stdlib.h>
#include <string.h>

/* mean((a - b)^2) in double; g (if set) += k * (a - b) * 2 / n */
static double mse(const float *a, const float *b, int64_t n, float *g, float k) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        s += d * d;
    }
    if (g) {
        const float c = (float)(2.0 / (double)n) * k;
        for (int64_t i = 0; i < n; i++) g[i] += c * (a[i] - b[i]);
    }
    return s / (double)n;
}

ld_status ld_distill_step(ld_ctx *ctx, ld_train_unet *student, ld_train_unet *teacher, const ld_scheduler *s,
                          const ld_train_batch *b, const ld_distill_weights *w, float grad_scale, float *noisy_out,
                          float *pred_out, float *tpred_out, ld_distill_losses *L) {
    const int C = ld_train_unet_out_channels(student);
    const int64_t per = (int64_t)C * b->H * b->W, n = b->B * per;
    if (b->B < 1 || b->H < 1 || b->W < 1 || per > ((int64_t)1 << 40) / b->B)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "distillation step: bad batch size");
    if (ld_train_unet_out_channels(teacher) != C)
        return ld_fail(ctx, LD_ERR_MODEL, "teacher predicts %d channels, the student %d",
                       ld_train_unet_out_channels(teacher), C);
    float *noisy = malloc(sizeof(float) * (size_t)n), *target = malloc(sizeof(float) * (size_t)n);
    float *pred = malloc(sizeof(float) * (size_t)n), *tpred = malloc(sizeof(float) * (size_t)n);
    float *dpred = calloc((size_t)n, sizeof(float)), *tf = malloc(sizeof(float) * (size_t)b->B);
    ld_status st = LD_OK;
    if (!noisy || !target || !pred || !tpred || !dpred || !tf) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    if (st == LD_OK) st = ld_scheduler_training_pair(ctx, s, b->timesteps, b->B, per, b->x0, b->noise, noisy, target);
    for (int i = 0; st == LD_OK && i < b->B; i++) tf[i] = (float)b->timesteps[i];
    if (st == LD_OK)
        st = ld_train_unet_forward(ctx, teacher, noisy, b->B, b->H, b->W, tf, b->context, b->L, b->text_embeds,
                                   b->time_ids, tpred);
    if (st == LD_OK)
        st = ld_train_unet_forward(ctx, student, noisy, b->B, b->H, b->W, tf, b->context, b->L, b->text_embeds,
                                   b->time_ids, pred);
    if (st == LD_OK) {
        L->task = mse(pred, target, n, dpred, grad_scale * w->task);
        L->out = mse(pred, tpred, n, dpred, grad_scale * w->out);
        L->feat = 0;
        for (int i = 0;; i++) {
            int64_t ns, nt;
            float *gs, *fs = ld_train_unet_tap(student, i, &ns, &gs, NULL), *ft = ld_train_unet_tap(teacher, i, &nt, NULL, NULL);
            if (!fs && !ft) break;
            if (!fs || !ft || ns != nt) {
                st = ld_fail(ctx, LD_ERR_MODEL, "feature pair %d: the student's and the teacher's features differ "
                                                "in count or size", i);
                break;
            }
            L->feat += mse(fs, ft, ns, gs, grad_scale * w->feat);
        }
        L->loss = w->task * L->task + w->out * L->out + w->feat * L->feat;
    }
    if (st == LD_OK) st = ld_train_unet_backward(ctx, student, dpred);
    if (st == LD_OK && noisy_out) memcpy(noisy_out, noisy, sizeof(float) * (size_t)n);
    if (st == LD_OK && pred_out) memcpy(pred_out, pred, sizeof(float) * (size_t)n);
    if (st == LD_OK && tpred_out) memcpy(tpred_out, tpred, sizeof(float) * (size_t)n);
    free(noisy), free(target), free(pred), free(tpred), free(dpred), free(tf);
    return st;
}
