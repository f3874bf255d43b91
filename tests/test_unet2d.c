/* UNet2DConditionModel against the reference data: every case of
 * cases/koala-{700m,1b}-tiny/unet.safetensors within the module tolerance;
 * init-random's recorded tensor and parameter counts equal configs/index.json
 * for koala-700m, koala-1b and sdxl-base; conv-shaped proj_in/proj_out
 * (use_linear_projection false) give the same numbers as the linear ones;
 * rejected config fields, a missing tensor and a misshapen tensor fail with
 * messages naming them. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/model_registry.h"
#include "models/unet2d.h"
#include "test_model_util.h"

static const float *case_tensor(const ld_safetensors *st, const char *prefix, const char *name, int64_t *numel,
                                const ld_tensor **out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", prefix, name);
    const ld_tensor *t = ld_safetensors_find(st, key);
    CHECK(t && t->dtype == LD_F32, "case tensor %s", key);
    if (!t || t->dtype != LD_F32) return NULL;
    if (numel) *numel = ld_tensor_numel(t);
    if (out) *out = t;
    return (const float *)t->data;
}

/* Runs every case{i}.t{T} of a unet.safetensors through u; returns the number run. */
static int run_cases(ld_ctx *ctx, ld_unet2d *u, const char *cases_path, const char *label) {
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, cases_path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return 0;
    }
    int ran = 0;
    for (size_t i = 0; i < ld_safetensors_count(st); i++) {
        const char *name = ld_safetensors_at(st, i)->name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".out") != 0) continue;
        char prefix[200];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 4), name);
        const ld_tensor *ts, *te;
        int64_t n_out, n_t;
        const float *sample = case_tensor(st, prefix, "sample", NULL, &ts);
        const float *t = case_tensor(st, prefix, "timestep", &n_t, NULL);
        const float *ehs = case_tensor(st, prefix, "encoder_hidden_states", NULL, &te);
        const float *text = case_tensor(st, prefix, "text_embeds", NULL, NULL);
        const float *ids = case_tensor(st, prefix, "time_ids", NULL, NULL);
        const float *ref = case_tensor(st, prefix, "out", &n_out, NULL);
        if (!sample || !t || !ehs || !text || !ids || !ref) continue;
        int B = (int)ts->shape[0], H = (int)ts->shape[2], W = (int)ts->shape[3], L = (int)te->shape[1];
        float tb[64];
        for (int b = 0; b < B && b < 64; b++) tb[b] = t[n_t == 1 ? 0 : b];
        float *out = malloc(sizeof(float) * (size_t)n_out);
        const ld_unet2d_inputs in = {.B = B, .H = H, .W = W, .sample = sample, .timesteps = tb,
                                     .encoder_hidden_states = ehs, .L = L, .text_embeds = text, .time_ids = ids};
        ld_status rc = ld_unet2d_forward(ctx, u, &in, out);
        CHECK(rc == LD_OK, "%s %s: %s", label, prefix, ld_ctx_error(ctx));
        if (rc == LD_OK) {
            char what[300];
            snprintf(what, sizeof what, "%s %s [%d,%d,%d,%d]", label, prefix, B, (int)ts->shape[1], H, W);
            test_close(what, out, ref, n_out, 1e-4);
            ran++;
        }
        free(out);
    }
    ld_safetensors_close(st);
    return ran;
}

static void reference_cases(ld_ctx *ctx, const char *td, const char *model) {
    char dir[8192], cases[8192];
    snprintf(dir, sizeof dir, "%s/models/%s/unet", td, model);
    snprintf(cases, sizeof cases, "%s/cases/%s/unet.safetensors", td, model);
    ld_unet2d *u;
    ld_status rc = ld_unet2d_load(ctx, dir, NULL, &u);
    CHECK(rc == LD_OK, "load %s: %s", dir, ld_ctx_error(ctx));
    if (rc != LD_OK) return;
    CHECK(ld_unet2d_in_channels(u) == 4 && ld_unet2d_out_channels(u) == 4, "%s channels", model);
    CHECK(ld_unet2d_cross_attention_dim(u) == 80, "%s cross_attention_dim", model);
    CHECK(ld_unet2d_text_embeds_dim(u) == 48 && ld_unet2d_addition_time_embed_dim(u) == 16, "%s addition dims",
          model);
    int ran = run_cases(ctx, u, cases, model);
    CHECK(ran >= 3, "%s: %d cases ran", model, ran);
    printf("%s: activation arena %.1f KiB\n", model, ld_unet2d_activation_bytes(u) / 1024.0);
    ld_unet2d_free(u);
}

/* ---- modified copies of the tiny model for the error and alternative-layout tests ---- */

typedef enum { COPY_AS_IS, COPY_DROP, COPY_RESHAPE, COPY_AS_CONV1X1 } copy_mode;

/* Copies the weights of src into dir/diffusion_pytorch_model.safetensors:
 * COPY_DROP leaves out `target`, COPY_RESHAPE gives it one more row,
 * COPY_AS_CONV1X1 stores every tensor whose name contains `target` and is 2-D
 * as [out, in, 1, 1]. */
static int copy_weights(ld_ctx *ctx, const char *src, const char *dir, copy_mode mode, const char *target) {
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, src, &st) != LD_OK) return 0;
    ld_st_builder b;
    ld_st_builder_init(&b);
    int ok = 1;
    void *grown = NULL;
    for (size_t i = 0; i < ld_safetensors_count(st) && ok; i++) {
        const ld_tensor *t = ld_safetensors_at(st, i);
        int64_t shape[LD_MAX_DIMS];
        int ndim = t->ndim;
        memcpy(shape, t->shape, sizeof shape);
        const void *data = t->data;
        if (mode == COPY_DROP && !strcmp(t->name, target)) continue;
        if (mode == COPY_RESHAPE && !strcmp(t->name, target)) {
            int64_t row = ld_tensor_numel(t) / shape[0];
            shape[0] += 1;
            grown = calloc((size_t)(row * shape[0]), ld_dtype_size(t->dtype));
            memcpy(grown, t->data, ld_tensor_nbytes(t));
            data = grown;
        }
        if (mode == COPY_AS_CONV1X1 && strstr(t->name, target) && ndim == 2) {
            shape[2] = shape[3] = 1;
            ndim = 4;
        }
        ok = ld_st_builder_add(ctx, &b, t->name, t->dtype, ndim, shape, data) == LD_OK;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (ok) ok = ld_st_builder_write(ctx, &b, path) == LD_OK;
    free(grown);
    ld_st_builder_free(&b);
    ld_safetensors_close(st);
    return ok;
}

/* Loading dir must fail with a message containing every `needles` entry. */
static void expect_load_error(ld_ctx *ctx, const char *dir, const char *what, const char *n1, const char *n2) {
    ld_unet2d *u = NULL;
    ld_ctx_clear_error(ctx);
    ld_status rc = ld_unet2d_load(ctx, dir, NULL, &u);
    const char *msg = ld_ctx_error(ctx);
    printf("%s -> %s\n", what, msg);
    CHECK(rc != LD_OK && u == NULL, "%s: load should fail", what);
    CHECK(strstr(msg, n1) != NULL, "%s: message should name '%s'", what, n1);
    if (n2) CHECK(strstr(msg, n2) != NULL, "%s: message should name '%s'", what, n2);
    ld_unet2d_free(u);
}

static void error_cases(ld_ctx *ctx, const char *td) {
    char src_cfg[8192], src_w[8192];
    snprintf(src_cfg, sizeof src_cfg, "%s/models/koala-700m-tiny/unet/config.json", td);
    snprintf(src_w, sizeof src_w, "%s/models/koala-700m-tiny/unet/diffusion_pytorch_model.safetensors", td);
    const char *dir = test_tmp_dir("unet2d-errors");

    /* rejected config fields, weights unchanged */
    CHECK(copy_weights(ctx, src_w, dir, COPY_AS_IS, NULL), "copy weights: %s", ld_ctx_error(ctx));
    static const char *const rejected[][2] = {
        {"class_embed_type", "\"timestep\""},
        {"time_cond_proj_dim", "256"},
        {"encoder_hid_dim", "80"},
        {"attention_type", "\"gated\""},
        {"resnet_time_scale_shift", "\"scale_shift\""},
        {"only_cross_attention", "true"},
        {"dual_cross_attention", "true"},
        {"addition_embed_type", "\"text\""},
        {"mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\""},
        {"down_block_types", "[\"DownBlock2D\", \"SimpleCrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"]"},
        {"block_out_channels", "[32, 64]"},
        {"act_fn", "\"gelu\""},
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        CHECK(test_write_config(ctx, src_cfg, dir, rejected[i][0], rejected[i][1]), "write config");
        expect_load_error(ctx, dir, rejected[i][0], rejected[i][0], NULL);
    }

    /* a missing tensor, a tensor of the wrong shape */
    CHECK(test_write_config(ctx, src_cfg, dir, NULL, NULL), "write config");
    const char *victim = "up_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight";
    CHECK(copy_weights(ctx, src_w, dir, COPY_DROP, victim), "copy weights: %s", ld_ctx_error(ctx));
    expect_load_error(ctx, dir, "missing tensor", victim, "diffusion_pytorch_model.safetensors");
    victim = "down_blocks.2.resnets.0.conv_shortcut.weight";
    CHECK(copy_weights(ctx, src_w, dir, COPY_RESHAPE, victim), "copy weights: %s", ld_ctx_error(ctx));
    expect_load_error(ctx, dir, "wrong shape", victim, "[96, 64, 1, 1]");
}

/* use_linear_projection false stores proj_in/proj_out as 1x1 convs: same math. */
static void conv_projection(ld_ctx *ctx, const char *td) {
    char src_dir[8192], src_cfg[8192], src_w[8192], cases[8192];
    snprintf(src_dir, sizeof src_dir, "%s/models/koala-1b-tiny/unet", td);
    snprintf(src_cfg, sizeof src_cfg, "%s/models/koala-1b-tiny/unet/config.json", td);
    snprintf(src_w, sizeof src_w, "%s/models/koala-1b-tiny/unet/diffusion_pytorch_model.safetensors", td);
    snprintf(cases, sizeof cases, "%s/cases/koala-1b-tiny/unet.safetensors", td);
    const char *dir = test_tmp_dir("unet2d-convproj");
    CHECK(test_write_config(ctx, src_cfg, dir, "use_linear_projection", "false"), "write config");
    CHECK(copy_weights(ctx, src_w, dir, COPY_AS_CONV1X1, ".proj_"), "copy: %s", ld_ctx_error(ctx));
    ld_unet2d *u;
    ld_status rc = ld_unet2d_load(ctx, dir, NULL, &u);
    CHECK(rc == LD_OK, "conv-projection load: %s", ld_ctx_error(ctx));
    if (rc != LD_OK) return;
    CHECK(run_cases(ctx, u, cases, "koala-1b-tiny conv proj") >= 3, "conv projection cases ran");
    ld_unet2d_free(u);
}

static void bad_arguments(ld_ctx *ctx, const char *td) {
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/models/koala-700m-tiny/unet", td);
    ld_unet2d *u;
    if (ld_unet2d_load(ctx, dir, NULL, &u) != LD_OK) return;
    float x[4 * 8 * 8] = {0}, t = 1, ehs[80] = {0}, out[4 * 8 * 8];
    ld_ctx_clear_error(ctx);
    ld_unet2d_inputs bad = {.B = 1, .H = 8, .W = 8, .sample = x, .timesteps = &t, .encoder_hidden_states = ehs, .L = 1};
    CHECK(ld_unet2d_forward(ctx, u, &bad, out) == LD_ERR_INVALID_ARGUMENT,
          "missing text_embeds rejected");
    CHECK(strstr(ld_ctx_error(ctx), "text_embeds") != NULL, "message names text_embeds: %s", ld_ctx_error(ctx));
    bad.B = 0;
    CHECK(ld_unet2d_forward(ctx, u, &bad, out) == LD_ERR_INVALID_ARGUMENT, "B = 0 rejected");
    CHECK(ld_unet2d_forward(ctx, u, NULL, out) == LD_ERR_INVALID_ARGUMENT, "no inputs rejected");

    /* latent sizes not divisible by 4: the up path resizes to the skips' sizes */
    ld_ctx_clear_error(ctx);
    float xo[2 * 4 * 13 * 7], oo[2 * 4 * 13 * 7], tt[2] = {10, 700}, e2[2 * 5 * 80], te[2 * 48], ids[12];
    uint64_t seed = 3;
    test_fill(xo, 2 * 4 * 13 * 7, seed);
    test_fill(e2, 2 * 5 * 80, seed + 1);
    test_fill(te, 2 * 48, seed + 2);
    for (int i = 0; i < 12; i++) ids[i] = (float)(64 * (i % 6));
    const ld_unet2d_inputs odd = {.B = 2, .H = 13, .W = 7, .sample = xo, .timesteps = tt, .encoder_hidden_states = e2,
                                  .L = 5, .text_embeds = te, .time_ids = ids};
    ld_status rc = ld_unet2d_forward(ctx, u, &odd, oo);
    CHECK(rc == LD_OK, "13x7 latent: %s", ld_ctx_error(ctx));
    int finite = 1;
    for (int i = 0; i < 2 * 4 * 13 * 7; i++) finite &= isfinite(oo[i]) != 0;
    CHECK(rc == LD_OK && finite, "13x7 latent output finite");
    ld_unet2d_free(u);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    reference_cases(ctx, td, "koala-700m-tiny");
    reference_cases(ctx, td, "koala-1b-tiny");

    test_recorded_counts(ctx, td, "koala-700m/unet", "UNet2DConditionModel");
    test_recorded_counts(ctx, td, "koala-1b/unet", "UNet2DConditionModel");
    test_recorded_counts(ctx, td, "sdxl-base/unet", "UNet2DConditionModel");
    error_cases(ctx, td);
    conv_projection(ctx, td);
    bad_arguments(ctx, td);
    ld_ctx_free(ctx);
    return test_finish();
}
