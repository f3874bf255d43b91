/* Replay of a reference training case (see train_replay.h). */
#include "train/train_replay.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "train/adamw.h"
#include "train/replay_case.h"
#include "train/train_step.h"

#include <stdio.h>
#include <stdlib.h>

static ld_status replay(ld_ctx *ctx, const char *model_dir, const ld_safetensors *cs, const char *case_path,
                        ld_train_unet *t, ld_scheduler *sched, ld_st_builder *out) {
    double lr = 0, betas[2] = {0, 0}, eps = 0, wd = 0;
    int steps = 0;
    LD_TRY(ld_replay_settings(ctx, cs, case_path, &lr, betas, &eps, &wd, &steps));
    ld_train_params *p = ld_train_unet_params(t);
    ld_adamw opt;
    LD_TRY(ld_adamw_init(ctx, &opt, p->total, (float)lr, (float)betas[0], (float)betas[1], (float)eps, (float)wd));
    ld_status st = LD_OK;
    for (int s = 1; st == LD_OK && s <= steps; s++) {
        ld_replay_batch rb;
        ld_train_batch b;
        st = ld_replay_read_batch(ctx, cs, case_path, s, &rb, &b);
        const int64_t C = ld_train_unet_out_channels(t), n = (int64_t)b.B * C * b.H * b.W;
        float *noisy = NULL, *pred = NULL;
        if (st == LD_OK && rb.x0.shape[1] != C)
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s: step%d.x0 has %lld channels, the U-Net of %s predicts %lld",
                         case_path, s, (long long)rb.x0.shape[1], model_dir, (long long)C);
        if (st == LD_OK && (!(noisy = malloc(sizeof(float) * (size_t)n)) || !(pred = malloc(sizeof(float) * (size_t)n))))
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        double loss = 0;
        if (st == LD_OK) {
            ld_train_params_zero_grad(p);
            st = ld_train_step(ctx, t, sched, &b, 1.0f, noisy, pred, &loss);
        }
        char key[64];
        const float lossf = (float)loss;
        const int64_t one = 1;
        if (st == LD_OK) st = (snprintf(key, sizeof key, "step%d.noisy", s), ld_st_builder_add_f32(ctx, out, key, 4, rb.x0.shape, noisy));
        if (st == LD_OK) st = (snprintf(key, sizeof key, "step%d.pred", s), ld_st_builder_add_f32(ctx, out, key, 4, rb.x0.shape, pred));
        if (st == LD_OK) st = (snprintf(key, sizeof key, "step%d.loss", s), ld_st_builder_add_f32(ctx, out, key, 1, &one, &lossf));
        if (st == LD_OK && s == 1) st = ld_replay_dump_params(ctx, out, p, p->grad, "grad.");
        if (st == LD_OK) {
            ld_adamw_update(&opt, p->value, p->grad, (float)lr);
            ld_log_info("replay step %d: loss %.6f", s, loss);
        }
        free(noisy);
        free(pred);
        ld_replay_batch_free(&rb);
    }
    if (st == LD_OK) st = ld_replay_dump_params(ctx, out, p, p->value, "param.");
    ld_adamw_free(&opt);
    return st;
}

ld_status ld_train_replay(ld_ctx *ctx, const char *model_dir, const char *case_path, const char *dump_path) {
    char unet_dir[4096];
    ld_safetensors *cs = NULL;
    ld_train_unet *t = NULL;
    ld_scheduler *sched = NULL;
    ld_st_builder out;
    ld_st_builder_init(&out);
    ld_status st = ld_safetensors_open(ctx, case_path, &cs);
    if (st == LD_OK) st = ld_component_dir(ctx, model_dir, NULL, "unet", unet_dir, sizeof unet_dir);
    if (st == LD_OK) st = ld_train_unet_open(ctx, unet_dir, 0, &t);
    if (st == LD_OK) st = ld_train_open_scheduler(ctx, model_dir, &sched);
    if (st == LD_OK) st = replay(ctx, model_dir, cs, case_path, t, sched, &out);
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &out, "produced_by", "leandiff train --replay");
    if (st == LD_OK) st = ld_st_builder_write(ctx, &out, dump_path);
    ld_st_builder_free(&out);
    ld_scheduler_free(sched);
    ld_train_unet_free(t);
    ld_safetensors_close(cs);
    return st;
}
