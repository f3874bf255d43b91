/* StableCascadeUNet against the reference data (cases/stable-cascade-tiny/
 * modules.safetensors: prior{i}.*, decoder{i}.*), parameter and tensor counts
 * of the released configs vs configs/index.json (through the init-random
 * recorder), and config / input errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/model_registry.h"
#include "models/stability_names.h"
#include "models/stable_cascade_unet.h"
#include "test_model_util.h"

static const ld_tensor *need(const ld_safetensors *st, const char *fmt, const char *a) {
    char name[256];
    snprintf(name, sizeof name, fmt, a);
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t != NULL, "case tensor %s missing", name);
    return t;
}

static void run_module_case(ld_ctx *ctx, ld_sc_unet *m, const ld_safetensors *st, const char *key) {
    const ld_tensor *sample = need(st, "%s.sample", key), *r = need(st, "%s.timestep_ratio", key),
                    *pooled = need(st, "%s.clip_text_pooled", key), *ref = need(st, "%s.out", key);
    if (!sample || !r || !pooled || !ref) return;
    ld_sc_inputs in = {.B = sample->shape[0], .H = sample->shape[2], .W = sample->shape[3]};
    in.sample = sample->data;
    in.r = r->data;
    in.clip_text_pooled = pooled->data;
    in.pooled_len = pooled->shape[1];
    char name[256];
    snprintf(name, sizeof name, "%s.clip_text", key);
    const ld_tensor *text = ld_safetensors_find(st, name);
    snprintf(name, sizeof name, "%s.clip_img", key);
    const ld_tensor *img = ld_safetensors_find(st, name);
    snprintf(name, sizeof name, "%s.effnet", key);
    const ld_tensor *eff = ld_safetensors_find(st, name);
    if (text) {
        in.clip_text = text->data;
        in.text_len = text->shape[1];
    }
    if (img) in.clip_img = img->data;
    if (eff) {
        in.effnet = eff->data;
        in.eh = eff->shape[2];
        in.ew = eff->shape[3];
    }
    int64_t n = ld_tensor_numel(ref);
    float *out = malloc((size_t)n * sizeof(float));
    ld_status s = ld_sc_unet_forward(ctx, m, &in, out);
    CHECK(s == LD_OK, "%s forward: %s", key, ld_ctx_error(ctx));
    if (s == LD_OK) test_close(key, out, ref->data, n, 1e-4);
    /* lane 1 (its own arena, memo and text k/v): the bits of lane 0 */
    float *out1 = malloc((size_t)n * sizeof(float));
    CHECK(s == LD_OK && out1 && ld_sc_unet_forward_lane(ctx, m, 1, &in, out1) == LD_OK &&
              !memcmp(out, out1, (size_t)n * sizeof(float)),
          "%s on lane 1: the bits of lane 0", key);
    free(out1);
    free(out);
}

static void module_cases(ld_ctx *ctx, const char *td) {
    char path[4096], dir[4096];
    snprintf(path, sizeof path, "%s/cases/stable-cascade-tiny/modules.safetensors", td);
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    const char *roles[2][2] = {{"stable-cascade-prior-tiny/prior", "prior"},
                               {"stable-cascade-tiny/decoder", "decoder"}};
    for (int r = 0; r < 2; r++) {
        snprintf(dir, sizeof dir, "%s/models/%s", td, roles[r][0]);
        ld_sc_unet *m;
        ld_status s = ld_sc_unet_load(ctx, dir, NULL, NULL, &m);
        CHECK(s == LD_OK, "load %s: %s", dir, ld_ctx_error(ctx));
        if (s != LD_OK) continue;
        for (int i = 0; i < 2; i++) {
            char key[32];
            snprintf(key, sizeof key, "%s%d", roles[r][1], i);
            run_module_case(ctx, m, st, key);
        }
        ld_sc_unet_free(m);
    }
    ld_safetensors_close(st);
}

/* A broken copy of the tiny decoder config (with the real weights) must fail
 * naming the field, or the tensor that no longer fits. */
static void config_error(ld_ctx *ctx, const char *td, const char *key, const char *json_value, const char *expect) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stable-cascade-tiny/decoder/config.json", td);
    json_t *cfg;
    if (ld_json_load_file(ctx, path, &cfg) != LD_OK) return;
    json_t *v = json_loads(json_value, JSON_DECODE_ANY, NULL);
    json_object_set_new(cfg, key, v);
    ld_weights *ws;
    snprintf(path, sizeof path, "%s/models/stable-cascade-tiny/decoder", td);
    if (ld_weights_open_dir(ctx, path, NULL, &ws) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        json_decref(cfg);
        return;
    }
    ld_sc_unet *m = NULL;
    ld_status s = ld_sc_unet_build(ctx, "decoder/config.json", cfg, ws, &m);
    CHECK(s != LD_OK && strstr(ld_ctx_error(ctx), expect), "%s = %s: expected an error naming '%s', got '%s'", key,
          json_value, expect, s == LD_OK ? "success" : ld_ctx_error(ctx));
    ld_sc_unet_free(m);
    ld_weights_free(ws);
    json_decref(cfg);
    ld_ctx_clear_error(ctx);
}

static void config_errors(ld_ctx *ctx, const char *td) {
    config_error(ctx, td, "block_out_channels", "[16, 32, 64]", "has 4 entries but block_out_channels has 3");
    config_error(ctx, td, "up_blocks_repeat_mappers", "[1, 1]", "up_blocks_repeat_mappers has 2 entries");
    config_error(ctx, td, "num_attention_heads", "[0, 0, 5, 4]", "num_attention_heads[2]");
    config_error(ctx, td, "block_types_per_layer",
                 "[[\"SDCascadeResBlock\"], [\"X\"], [\"SDCascadeResBlock\"], "
                 "[\"SDCascadeResBlock\"]]",
                 "block_types_per_layer[1][0] = X");
    config_error(ctx, td, "switch_level", "[true, false, false]", "switch_level[0]");
    config_error(ctx, td, "switch_level", "[false]", "switch_level must be");
    config_error(ctx, td, "down_num_layers_per_block", "[1, 0, 2, 1]", "down_num_layers_per_block[1]");
    config_error(ctx, td, "kernel_size", "5", "kernel_size");
    config_error(ctx, td, "patch_size", "\"2\"", "patch_size");
    config_error(ctx, td, "clip_text_in_channels", "48", "clip_image_in_channels");
    /* the weights no longer fit */
    config_error(ctx, td, "conditioning_dim", "32", "clip_txt_pooled_mapper.weight");
}

static void forward_errors(ld_ctx *ctx, const char *td) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/stable-cascade-tiny/decoder", td);
    ld_sc_unet *m;
    if (ld_sc_unet_load(ctx, dir, NULL, NULL, &m) != LD_OK) return;
    float x[4 * 16 * 16] = {0}, r = 0.5f, pooled[48] = {0}, out[4 * 16 * 16];
    ld_sc_inputs in = {.B = 1, .H = 15, .W = 16, .sample = x, .r = &r, .clip_text_pooled = pooled, .pooled_len = 1};
    CHECK(ld_sc_unet_forward(ctx, m, &in, out) == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "patch_size"),
          "odd size: %s", ld_ctx_error(ctx));
    in.H = in.W = 8; /* 4x4 after the patch: 4 -> 2 -> 1 -> 0 */
    CHECK(ld_sc_unet_forward(ctx, m, &in, out) == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "too small"),
          "tiny size: %s", ld_ctx_error(ctx));
    CHECK(ld_sc_unet_forward_lane(ctx, m, -1, &in, out) == LD_ERR_INVALID_ARGUMENT &&
              strstr(ld_ctx_error(ctx), "lane -1"),
          "lane -1: %s", ld_ctx_error(ctx));
    ld_sc_unet_free(m);
    ld_ctx_clear_error(ctx);
}

/* Stability naming: a packed in_proj whose rows are not 3*C is an error naming it;
 * diffusers names already present are not shadowed by aliases. */
static void stability_alias_errors(ld_ctx *ctx) {
    char path[4200];
    snprintf(path, sizeof path, "%s/bad_in_proj.safetensors", test_tmp_dir("stable_cascade"));
    float w[4 * 2] = {0}, b[3] = {1, 2, 3}, q[1] = {9};
    int64_t sw[2] = {4, 2}, sb[1] = {3}, sq[1] = {1};
    ld_st_builder sbld;
    ld_st_builder_init(&sbld);
    ld_st_builder_add_f32(ctx, &sbld, "blk.attention.attn.in_proj_weight", 2, sw, w);
    ld_st_builder_write(ctx, &sbld, path);
    ld_st_builder_free(&sbld);
    ld_weights *ws;
    if (ld_weights_open_file(ctx, path, &ws) == LD_OK) {
        CHECK(ld_stability_alias_unet(ctx, ws) == LD_ERR_MODEL && strstr(ld_ctx_error(ctx), "in_proj_weight"),
              "bad in_proj: %s", ld_ctx_error(ctx));
        ld_weights_free(ws);
    }
    ld_ctx_clear_error(ctx);
    ld_st_builder_init(&sbld);
    ld_st_builder_add_f32(ctx, &sbld, "blk.attention.attn.in_proj_bias", 1, sb, b);
    ld_st_builder_add_f32(ctx, &sbld, "blk.attention.to_q.bias", 1, sq, q);
    ld_st_builder_write(ctx, &sbld, path);
    ld_st_builder_free(&sbld);
    if (ld_weights_open_file(ctx, path, &ws) == LD_OK) {
        CHECK(ld_stability_alias_unet(ctx, ws) == LD_OK, "alias: %s", ld_ctx_error(ctx));
        const ld_tensor *tq = ld_weights_find(ws, "blk.attention.to_q.bias");
        const ld_tensor *tv = ld_weights_find(ws, "blk.attention.to_v.bias");
        CHECK(tq && ld_tensor_get_f32(tq, 0) == 9.0f, "existing to_q kept");
        CHECK(tv && tv->shape[0] == 1 && ld_tensor_get_f32(tv, 0) == 3.0f, "to_v = row 2 of in_proj_bias");
        ld_weights_free(ws);
    }
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    module_cases(ctx, td);
    /* init-random recording of the released configs vs configs/index.json */
    const char *comps[] = {"stable-cascade-prior/prior", "stable-cascade-prior/prior_lite", "stable-cascade/decoder",
                           "stable-cascade/decoder_lite"};
    for (int i = 0; i < 4; i++) test_recorded_counts(ctx, td, comps[i], "StableCascadeUNet");
    config_errors(ctx, td);
    forward_errors(ctx, td);
    stability_alias_errors(ctx);
    ld_ctx_free(ctx);
    return test_finish();
}
