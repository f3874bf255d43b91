/* Reading reference training and distillation cases (see replay_case.h). */
#include "train/replay_case.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ld_replay_batch_free(ld_replay_batch *b) {
    ld_tensor_free(&b->x0);
    ld_tensor_free(&b->noise);
    ld_tensor_free(&b->ts);
    ld_tensor_free(&b->ctx);
    ld_tensor_free(&b->text);
    ld_tensor_free(&b->ids);
}

/* step{s}.<name> as an owned f32 tensor of ndim dims (or I64 for the timesteps). */
static ld_status get(ld_ctx *ctx, const ld_safetensors *cs, const char *path, int s, const char *name, int ndim,
                     int optional, ld_tensor *out) {
    char key[96];
    snprintf(key, sizeof key, "step%d.%s", s, name);
    memset(out, 0, sizeof *out);
    const ld_tensor *t = ld_safetensors_find(cs, key);
    if (!t) return optional ? LD_OK : ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s' is missing", path, key);
    if (t->ndim != ndim) return ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' has %d dimensions, expected %d", path, key, t->ndim, ndim);
    if (!strcmp(name, "timesteps")) {
        if (t->dtype != LD_I64) return ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' must be I64", path, key);
        LD_TRY(ld_tensor_alloc(ctx, out, LD_I64, t->ndim, t->shape));
        memcpy(out->data, t->data, ld_tensor_nbytes(t));
        return LD_OK;
    }
    if (t->dtype != LD_F32 && t->dtype != LD_F16 && t->dtype != LD_BF16)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' must be F32, F16 or BF16", path, key);
    return ld_tensor_to_f32(ctx, t, out);
}

ld_status ld_replay_read_batch(ld_ctx *ctx, const ld_safetensors *cs, const char *path, int s, ld_replay_batch *rb,
                               ld_train_batch *b) {
    memset(rb, 0, sizeof *rb);
    LD_TRY(get(ctx, cs, path, s, "x0", 4, 0, &rb->x0));
    LD_TRY(get(ctx, cs, path, s, "noise", 4, 0, &rb->noise));
    LD_TRY(get(ctx, cs, path, s, "timesteps", 1, 0, &rb->ts));
    LD_TRY(get(ctx, cs, path, s, "encoder_hidden_states", 3, 0, &rb->ctx));
    LD_TRY(get(ctx, cs, path, s, "text_embeds", 2, 1, &rb->text));
    LD_TRY(get(ctx, cs, path, s, "time_ids", 2, 1, &rb->ids));
    const int64_t B = rb->x0.shape[0];
    if (!ld_shape_equal(4, rb->x0.shape, rb->noise.ndim, rb->noise.shape) || rb->ts.shape[0] != B ||
        rb->ctx.shape[0] != B || (rb->text.data && rb->text.shape[0] != B) ||
        (rb->ids.data && (rb->ids.shape[0] != B || rb->ids.shape[1] != 6)) || B > 4096 || rb->ctx.shape[1] > 4096)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: the step%d tensors disagree on the batch (x0 %lld samples)", path, s,
                       (long long)B);
    *b = (ld_train_batch){.B = (int)B, .H = (int)rb->x0.shape[2], .W = (int)rb->x0.shape[3], .L = (int)rb->ctx.shape[1],
                          .x0 = rb->x0.data, .noise = rb->noise.data, .timesteps = rb->ts.data,
                          .context = rb->ctx.data, .text_embeds = rb->text.data, .time_ids = rb->ids.data};
    return LD_OK;
}

ld_status ld_replay_meta_num(ld_ctx *ctx, const ld_safetensors *cs, const char *path, const char *key, double *out) {
    const char *v = ld_safetensors_meta_get(cs, key);
    char *end;
    if (!v || (*out = strtod(v, &end), end == v || *end))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: metadata '%s' must be a number (got %s)", path, key, v ? v : "nothing");
    return LD_OK;
}

ld_status ld_replay_settings(ld_ctx *ctx, const ld_safetensors *cs, const char *path, double *lr, double betas[2],
                             double *eps, double *wd, int *steps) {
    double st;
    LD_TRY(ld_replay_meta_num(ctx, cs, path, "lr", lr));
    LD_TRY(ld_replay_meta_num(ctx, cs, path, "eps", eps));
    LD_TRY(ld_replay_meta_num(ctx, cs, path, "weight_decay", wd));
    LD_TRY(ld_replay_meta_num(ctx, cs, path, "steps", &st));
    if (st < 1 || st > 1000 || st != (int)st)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: metadata 'steps' must be a count from 1 to 1000", path);
    *steps = (int)st;
    const char *bv = ld_safetensors_meta_get(cs, "betas");
    json_t *j = bv ? json_loads(bv, 0, NULL) : NULL;
    int ok = json_is_array(j) && json_array_size(j) == 2 && json_is_number(json_array_get(j, 0)) &&
             json_is_number(json_array_get(j, 1));
    if (ok) {
        betas[0] = json_number_value(json_array_get(j, 0));
        betas[1] = json_number_value(json_array_get(j, 1));
    }
    json_decref(j);
    if (!ok) return ld_fail(ctx, LD_ERR_FORMAT, "%s: metadata 'betas' must be a JSON list of two numbers", path);
    return LD_OK;
}

ld_status ld_replay_dump_params(ld_ctx *ctx, ld_st_builder *out, const ld_train_params *p, const float *data,
                                const char *prefix) {
    for (size_t i = 0; i < p->count; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, p->tensors[i].name);
        LD_TRY(ld_st_builder_add_f32(ctx, out, name, p->tensors[i].ndim, p->tensors[i].shape, data + p->offset[i]));
    }
    return LD_OK;
}

