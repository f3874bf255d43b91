/* WuerstchenPrior against the reference module cases
 * (cases/wuerstchen-tiny/modules.safetensors prior{i}: x, r, c -> out), its
 * registry entry (init-random record vs configs/index.json), and config
 * errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/wuerstchen_prior.h"
#include "test_model_util.h"

static ld_ctx *ctx;

static void test_cases(const char *td) {
    char path[4200];
    snprintf(path, sizeof path, "%s/models/wuerstchen-prior-tiny/prior", td);
    ld_wuerstchen_prior *p;
    if (ld_wuerstchen_prior_load(ctx, path, NULL, &p) != LD_OK) {
        CHECK(0, "load: %s", ld_ctx_error(ctx));
        return;
    }
    snprintf(path, sizeof path, "%s/cases/wuerstchen-tiny/modules.safetensors", td);
    ld_safetensors *f;
    CHECK(ld_safetensors_open(ctx, path, &f) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int i = 0; f; i++) {
        char name[64];
        ld_tensor xs, cs;
        snprintf(name, sizeof name, "prior%d.x", i);
        float *x = test_case_f32(ctx, f, name, &xs);
        if (!x) {
            CHECK(i >= 2, "at least two prior cases");
            break;
        }
        snprintf(name, sizeof name, "prior%d.r", i);
        float *r = test_case_f32(ctx, f, name, NULL);
        snprintf(name, sizeof name, "prior%d.c", i);
        float *c = test_case_f32(ctx, f, name, &cs);
        snprintf(name, sizeof name, "prior%d.out", i);
        float *ref = test_case_f32(ctx, f, name, NULL);
        int64_t n = ld_tensor_numel(&xs);
        float *out = malloc((size_t)n * 4);
        ld_wuerstchen_prior_inputs in = {.B = xs.shape[0], .H = xs.shape[2], .W = xs.shape[3], .sample = x, .r = r,
                                         .clip_text = c, .text_len = cs.shape[1]};
        CHECK(ld_wuerstchen_prior_forward(ctx, p, &in, out) == LD_OK, "forward");
        snprintf(name, sizeof name, "prior case %d", i);
        test_close(name, out, ref, n, 1e-4);
        /* lane 1: its own arena and memo, the same bits; lane 2 does not exist */
        float *out1 = malloc((size_t)n * 4);
        CHECK(out1 && ld_wuerstchen_prior_forward_lane(ctx, p, 1, &in, out1) == LD_OK && !memcmp(out, out1, (size_t)n * 4),
              "prior case %d on lane 1: the bits of lane 0", i);
        CHECK(ld_wuerstchen_prior_forward_lane(ctx, p, 2, &in, out1) == LD_ERR_INVALID_ARGUMENT &&
                  strstr(ld_ctx_error(ctx), "lane 2"),
              "lane 2: %s", ld_ctx_error(ctx));
        ld_ctx_clear_error(ctx);
        free(out1);
        free(x);
        free(r);
        free(c);
        free(ref);
        free(out);
    }
    ld_safetensors_close(f);
    ld_wuerstchen_prior_free(p);
}

static void test_config_errors(void) {
    ld_weights *rec;
    ld_weights_new_recorder(ctx, &rec);
    ld_wuerstchen_prior *p;
    json_t *cfg = json_pack("{s:i,s:i,s:i}", "c", 64, "nhead", 5, "c_cond", 48);
    CHECK(ld_wuerstchen_prior_build(ctx, "prior/config.json", cfg, rec, &p) == LD_ERR_MODEL, "nhead must divide c");
    CHECK(strstr(ld_ctx_error(ctx), "prior/config.json") && strstr(ld_ctx_error(ctx), "nhead"), "message: %s",
          ld_ctx_error(ctx));
    json_decref(cfg);
    cfg = json_pack("{s:i}", "depth", 0);
    CHECK(ld_wuerstchen_prior_build(ctx, "prior/config.json", cfg, rec, &p) == LD_ERR_MODEL, "depth 0 rejected");
    CHECK(strstr(ld_ctx_error(ctx), "depth") != NULL, "message: %s", ld_ctx_error(ctx));
    json_decref(cfg);
    cfg = json_pack("{s:s}", "c", "big");
    CHECK(ld_wuerstchen_prior_build(ctx, "prior/config.json", cfg, rec, &p) != LD_OK, "string c rejected");
    json_decref(cfg);
    ld_weights_free(rec);
}

int main(void) {
    ctx = ld_ctx_new();
    test_config_errors();
    const char *td = test_testdata_dir();
    if (td) {
        test_cases(td);
        test_recorded_counts(ctx, td, "wuerstchen-prior/prior", "WuerstchenPrior");
    }
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata");
    return test_finish();
}
