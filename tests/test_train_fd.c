/* The whole U-Net backward on U-Nets other than the replay case's: for
 * koala-1b-tiny (a mid block, other widths) and sdxl-teacher-tiny (two
 * layers per block, up to four transformer layers, a mid block), the latter
 * also from a bf16 copy of its weights, full fine-tuning on 8x12 latents
 * (not square, batch 2): the backward's gradient of L = sum(r * pred) along
 * a random direction agrees with a central finite difference of the forward,
 * for all parameters at once and for the parameters of each part of the net
 * (embeddings, each down block, the mid block, each up block, conv_in/out)
 * on its own, so a wrong gradient in one part cannot hide in the sum. */
#include "io/safetensors.h"
#include "test_util.h"
#include "train/unet_train.h"

#include <math.h>

enum { B = 2, H = 8, W = 12, L = 77 };

typedef struct {
    ld_train_unet *t;
    const float *x, *ts, *c, *te, *ids, *r;
    float *pred;
    int64_t npred;
} fd_case;

static double loss(ld_ctx *ctx, const fd_case *k) {
    if (ld_train_unet_forward(ctx, k->t, k->x, B, H, W, k->ts, k->c, L, k->te, k->ids, k->pred) != LD_OK) return NAN;
    double l = 0;
    for (int64_t i = 0; i < k->npred; i++) l += (double)k->r[i] * k->pred[i];
    return l;
}

/* 1 when parameter `name` belongs to `part` (a name prefix; "" is all of them) */
static int in_part(const char *name, const char *part) {
    if (!*part) return 1;
    if (!strcmp(part, "embeddings"))
        return !strncmp(name, "time_embedding.", 15) || !strncmp(name, "add_embedding.", 14);
    if (!strcmp(part, "ends"))
        return !strncmp(name, "conv_in.", 8) || !strncmp(name, "conv_out.", 9) || !strncmp(name, "conv_norm_out.", 14);
    return !strncmp(name, part, strlen(part));
}

/* The directional derivative along v (scaled by each weight's magnitude,
 * zero outside `part`) by the backward and by a central difference. */
static void check_part(ld_ctx *ctx, const char *model, const fd_case *k, ld_train_params *p, const char *part,
                       uint64_t seed) {
    float *v = calloc((size_t)p->total, sizeof(float)), *keep = malloc(sizeof(float) * (size_t)p->total);
    if (!v || !keep) {
        CHECK(0, "out of memory");
        free(v), free(keep);
        return;
    }
    int64_t used = 0;
    for (size_t i = 0; i < p->count; i++) {
        if (!in_part(p->tensors[i].name, part)) continue;
        const int64_t o = p->offset[i], n = ld_tensor_numel(&p->tensors[i]);
        test_fill(v + o, n, seed + i);
        for (int64_t j = 0; j < n; j++) v[o + j] *= fabsf(p->value[o + j]) + 1e-2f;
        used += n;
    }
    CHECK(used > 0, "%s: no parameters in part '%s'", model, part);
    double analytic = 0;
    for (int64_t i = 0; i < p->total; i++) analytic += (double)p->grad[i] * v[i];
    memcpy(keep, p->value, sizeof(float) * (size_t)p->total);
    /* central differences at h and h/2, extrapolated (Richardson) to cancel
     * their h^2 error: for all parameters at once that error was 4e-2 at
     * h = 1e-2 and 3e-4 at 1e-3, where f32 rounding starts to show */
    const double h = 8e-3;
    double d[2];
    for (int q = 0; q < 2; q++) {
        const double hq = q ? h / 2 : h;
        double l[2];
        for (int s = 0; s < 2; s++) {
            for (int64_t i = 0; i < p->total; i++) p->value[i] = keep[i] + (float)((s ? -hq : hq) * v[i]);
            l[s] = loss(ctx, k);
        }
        d[q] = (l[0] - l[1]) / (2 * hq);
    }
    memcpy(p->value, keep, sizeof(float) * (size_t)p->total);
    const double fd = (4 * d[1] - d[0]) / 3, e = fabs(fd - analytic) / fmax(fabs(fd), 1e-3);
    CHECK(e < 1e-2, "%s, %s (%lld parameters): backward %.6g vs finite difference %.6g (rel %.2e)", model,
          *part ? part : "all parameters", (long long)used, analytic, fd, e);
    free(v), free(keep);
}

static void check_model(ld_ctx *ctx, const char *model, const char *unet_dir) {
    ld_train_unet *t;
    ld_status st = ld_train_unet_open(ctx, unet_dir, 0, &t);
    CHECK(st == LD_OK, "%s: open: %s", model, ld_ctx_error(ctx));
    if (st != LD_OK) return;
    const json_t *cfg = ld_train_unet_config(t);
    const int cin = (int)json_integer_value(json_object_get(cfg, "in_channels"));
    const int cross = (int)json_integer_value(json_object_get(cfg, "cross_attention_dim"));
    const int tdim = (int)json_integer_value(json_object_get(cfg, "projection_class_embeddings_input_dim")) -
                     6 * (int)json_integer_value(json_object_get(cfg, "addition_time_embed_dim"));
    CHECK(cin > 0 && cross > 0 && tdim > 0, "%s: config sizes %d %d %d", model, cin, cross, tdim);
    const int64_t nx = (int64_t)B * cin * H * W, npred = (int64_t)B * ld_train_unet_out_channels(t) * H * W;
    float *x = malloc(sizeof(float) * (size_t)nx), *c = malloc(sizeof(float) * (size_t)(B * L * cross));
    float *te = malloc(sizeof(float) * (size_t)(B * tdim)), *r = malloc(sizeof(float) * (size_t)npred);
    float *pred = malloc(sizeof(float) * (size_t)npred);
    float ts[B] = {90, 700}, ids[6 * B] = {64, 96, 0, 0, 64, 96, 80, 80, 8, 0, 64, 96};
    if (x && c && te && r && pred) {
        test_fill(x, nx, 1), test_fill(c, B * L * cross, 2), test_fill(te, B * tdim, 3), test_fill(r, npred, 4);
        fd_case k = {t, x, ts, c, te, ids, r, pred, npred};
        ld_train_params *p = ld_train_unet_params(t);
        ld_train_params_zero_grad(p);
        st = ld_train_unet_forward(ctx, t, x, B, H, W, ts, c, L, te, ids, pred);
        if (st == LD_OK) st = ld_train_unet_backward(ctx, t, r);
        CHECK(st == LD_OK, "%s: step: %s", model, ld_ctx_error(ctx));
        const char *parts[] = {"", "embeddings", "ends", "down_blocks.0.", "down_blocks.1.", "down_blocks.2.",
                               "mid_block.", "up_blocks.0.", "up_blocks.1.", "up_blocks.2."};
        for (size_t i = 0; st == LD_OK && i < sizeof parts / sizeof *parts; i++)
            check_part(ctx, model, &k, p, parts[i], 100 * (uint64_t)i);
    } else {
        CHECK(0, "out of memory");
    }
    free(x), free(c), free(te), free(r), free(pred);
    ld_train_unet_free(t);
}

/* unet_dir's weights as bf16 (config copied) in dst; 1 on success */
static int bf16_copy(ld_ctx *ctx, const char *unet_dir, const char *dst) {
    char path[4400], cmd[13000]; /* paths are at most 4200 bytes */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/config.json' '%s/'", dst, unet_dir, dst);
    if (system(cmd) != 0) return 0;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", unet_dir);
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, path, &st) != LD_OK) return 0;
    ld_st_builder b;
    ld_st_builder_init(&b);
    ld_status rc = LD_OK;
    for (size_t i = 0; rc == LD_OK && i < ld_safetensors_count(st); i++) {
        const ld_tensor *t = ld_safetensors_at(st, i);
        const int64_t n = ld_tensor_numel(t);
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
        float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
        rc = h && f ? LD_OK : LD_ERR_NOMEM;
        if (rc == LD_OK) {
            ld_convert_to_f32(f, t->data, t->dtype, 0, n);
            for (int64_t j = 0; j < n; j++) h[j] = ld_f32_to_bf16(f[j]);
            rc = ld_st_builder_add(ctx, &b, t->name, LD_BF16, t->ndim, t->shape, h);
        }
        free(h), free(f);
    }
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dst);
    if (rc == LD_OK) rc = ld_st_builder_write(ctx, &b, path);
    ld_st_builder_free(&b);
    ld_safetensors_close(st);
    return rc == LD_OK;
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    char dir[4200], copy[4200];
    snprintf(dir, sizeof dir, "%.4000s/models/koala-1b-tiny/unet", td);
    check_model(ctx, "koala-1b-tiny", dir);
    snprintf(dir, sizeof dir, "%.4000s/models/sdxl-teacher-tiny/unet", td);
    check_model(ctx, "sdxl-teacher-tiny", dir);
    snprintf(copy, sizeof copy, "%.4000s/unet-bf16", test_tmp_dir("train_fd"));
    CHECK(bf16_copy(ctx, dir, copy), "bf16 copy: %s", ld_ctx_error(ctx));
    check_model(ctx, "sdxl-teacher-tiny (bf16 weights)", copy);
    ld_ctx_free(ctx);
    return test_finish();
}
