/* WuerstchenDiffNeXt against the reference module cases
 * (cases/wuerstchen-tiny/modules.safetensors decoder{i}: x, r, effnet, clip
 * -> out), its registry entry (parameter and tensor counts of the released
 * config vs configs/index.json), and config / size errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/wuerstchen_diffnext.h"
#include "test_model_util.h"

static ld_ctx *ctx;

static void test_cases(const char *td) {
    char path[4200];
    snprintf(path, sizeof path, "%s/models/wuerstchen-tiny/decoder", td);
    ld_wuerstchen_diffnext *d;
    if (ld_wuerstchen_diffnext_load(ctx, path, NULL, &d) != LD_OK) {
        CHECK(0, "load: %s", ld_ctx_error(ctx));
        return;
    }
    snprintf(path, sizeof path, "%s/cases/wuerstchen-tiny/modules.safetensors", td);
    ld_safetensors *f;
    CHECK(ld_safetensors_open(ctx, path, &f) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int i = 0; f; i++) {
        char name[64];
        ld_tensor xs, es, cs;
        snprintf(name, sizeof name, "decoder%d.x", i);
        float *x = test_case_f32(ctx, f, name, &xs);
        if (!x) {
            CHECK(i >= 2, "at least two decoder cases");
            break;
        }
        snprintf(name, sizeof name, "decoder%d.r", i);
        float *r = test_case_f32(ctx, f, name, NULL);
        snprintf(name, sizeof name, "decoder%d.effnet", i);
        float *e = test_case_f32(ctx, f, name, &es);
        snprintf(name, sizeof name, "decoder%d.clip", i);
        float *c = test_case_f32(ctx, f, name, &cs);
        snprintf(name, sizeof name, "decoder%d.out", i);
        float *ref = test_case_f32(ctx, f, name, NULL);
        int64_t n = ld_tensor_numel(&xs);
        float *out = malloc((size_t)n * 4);
        ld_wuerstchen_diffnext_inputs in = {.B = xs.shape[0], .H = xs.shape[2], .W = xs.shape[3], .sample = x,
                                            .r = r, .effnet = e, .eh = es.shape[2], .ew = es.shape[3],
                                            .clip_text = c, .text_len = cs.shape[1]};
        CHECK(ld_wuerstchen_diffnext_forward(ctx, d, &in, out) == LD_OK,
              "forward: %s", ld_ctx_error(ctx));
        snprintf(name, sizeof name, "decoder case %d (%lldx%lld)", i, (long long)xs.shape[2], (long long)xs.shape[3]);
        test_close(name, out, ref, n, 1e-4);
        free(x);
        free(r);
        free(e);
        free(c);
        free(ref);
        free(out);
    }
    /* a latent the U-Net cannot halve three times is a clear error */
    float dummy[4 * 24 * 20] = {0};
    ld_wuerstchen_diffnext_inputs bad = {.B = 1, .H = 24, .W = 20, .sample = dummy, .r = dummy, .effnet = dummy,
                                         .eh = 3, .ew = 3, .clip_text = dummy, .text_len = 1};
    CHECK(ld_wuerstchen_diffnext_forward(ctx, d, &bad, dummy) == LD_ERR_INVALID_ARGUMENT,
          "24x20 latent rejected");
    CHECK(strstr(ld_ctx_error(ctx), "multiple of 16") != NULL, "message: %s", ld_ctx_error(ctx));
    ld_safetensors_close(f);
    ld_wuerstchen_diffnext_free(d);
}

static void test_config_errors(const char *td) {
    char path[4200];
    snprintf(path, sizeof path, "%s/models/wuerstchen-tiny/decoder/config.json", td);
    json_t *cfg;
    if (ld_json_load_file(ctx, path, &cfg) != LD_OK) return;
    ld_weights *rec;
    ld_weights_new_recorder(ctx, &rec);
    ld_wuerstchen_diffnext *d;
    CHECK(ld_wuerstchen_diffnext_build(ctx, "decoder/config.json", cfg, rec, &d) == LD_OK, "tiny config builds");
    ld_wuerstchen_diffnext_free(d);
    json_t *bad = json_deep_copy(cfg);
    json_array_remove(json_object_get(bad, "blocks"), 0);
    CHECK(ld_wuerstchen_diffnext_build(ctx, "decoder/config.json", bad, rec, &d) == LD_ERR_MODEL, "list lengths");
    CHECK(strstr(ld_ctx_error(ctx), "blocks 3") != NULL, "message: %s", ld_ctx_error(ctx));
    json_decref(bad);
    bad = json_deep_copy(cfg);
    json_array_set_new(json_object_get(bad, "level_config"), 1, json_string("CTX"));
    CHECK(ld_wuerstchen_diffnext_build(ctx, "decoder/config.json", bad, rec, &d) == LD_ERR_MODEL, "block type");
    CHECK(strstr(ld_ctx_error(ctx), "'X'") != NULL, "message: %s", ld_ctx_error(ctx));
    json_decref(bad);
    bad = json_deep_copy(cfg);
    json_array_set_new(json_object_get(bad, "nhead"), 2, json_integer(3));
    CHECK(ld_wuerstchen_diffnext_build(ctx, "decoder/config.json", bad, rec, &d) == LD_ERR_MODEL, "nhead");
    CHECK(strstr(ld_ctx_error(ctx), "nhead[2]") != NULL, "message: %s", ld_ctx_error(ctx));
    json_decref(bad);
    bad = json_deep_copy(cfg);
    json_object_set_new(bad, "c_out", json_integer(8));
    CHECK(ld_wuerstchen_diffnext_build(ctx, "decoder/config.json", bad, rec, &d) == LD_ERR_UNSUPPORTED, "c_out");
    json_decref(bad);
    ld_weights_free(rec);
    json_decref(cfg);
}

int main(void) {
    ctx = ld_ctx_new();
    const char *td = test_testdata_dir();
    if (td) {
        test_config_errors(td);
        test_cases(td);
        test_recorded_counts(ctx, td, "wuerstchen/decoder", "WuerstchenDiffNeXt");
    }
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata");
    return test_finish();
}
