/* WuerstchenPrior against the reference module cases
 * (cases/wuerstchen-tiny/modules.safetensors prior{i}: x, r, c -> out), its
 * registry entry (init-random record vs configs/index.json), and config
 * errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/wuerstchen_prior.h"
#include "test_util.h"

static ld_ctx *ctx;

static float *get(ld_safetensors *f, const char *name, ld_tensor *shape) {
    const ld_tensor *t = ld_safetensors_find(f, name);
    if (!t) return NULL;
    ld_tensor c;
    if (ld_tensor_to_f32(ctx, t, &c) != LD_OK) return NULL;
    if (shape) *shape = c;
    return c.data;
}

/* Records the model from a released config; compares counts with index.json. */
static void check_counts(const char *td, const char *key, const char *cls) {
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/%s/config.json", td, key);
    json_t *cfg, *index;
    CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/configs/index.json", td);
    CHECK(ld_json_load_file(ctx, path, &index) == LD_OK, "%s", ld_ctx_error(ctx));
    const ld_model_type *mt = ld_model_type_find(cls);
    CHECK(mt != NULL, "%s registered", cls);
    ld_weights *rec;
    ld_weights_new_recorder(ctx, &rec);
    if (mt && cfg) CHECK(mt->record(ctx, key, cfg, rec) == LD_OK, "record %s: %s", key, ld_ctx_error(ctx));
    int64_t params = 0;
    size_t n = ld_weights_recorded_count(rec);
    for (size_t i = 0; i < n; i++) { /* index.json counts parameters, not BatchNorm buffers */
        const ld_tensor *t = ld_weights_recorded(rec, i);
        if (!strstr(t->name, "running_") && !strstr(t->name, "num_batches_tracked")) params += ld_tensor_numel(t);
    }
    json_t *e = json_object_get(index, key);
    int64_t want_p = json_integer_value(json_object_get(e, "params"));
    int64_t want_t = json_integer_value(json_object_get(e, "tensors"));
    CHECK(params == want_p, "%s: %lld params, index.json says %lld", key, (long long)params, (long long)want_p);
    CHECK((int64_t)n == want_t, "%s: %zu tensors, index.json says %lld", key, n, (long long)want_t);
    printf("%s: %lld params, %zu tensors\n", key, (long long)params, n);
    ld_weights_free(rec);
    json_decref(cfg);
    json_decref(index);
}

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
        float *x = get(f, name, &xs);
        if (!x) {
            CHECK(i >= 2, "at least two prior cases");
            break;
        }
        snprintf(name, sizeof name, "prior%d.r", i);
        float *r = get(f, name, NULL);
        snprintf(name, sizeof name, "prior%d.c", i);
        float *c = get(f, name, &cs);
        snprintf(name, sizeof name, "prior%d.out", i);
        float *ref = get(f, name, NULL);
        int64_t n = ld_tensor_numel(&xs);
        float *out = malloc((size_t)n * 4);
        CHECK(ld_wuerstchen_prior_forward(ctx, p, out, x, xs.shape[0], xs.shape[2], xs.shape[3], r, c, cs.shape[1]) ==
                  LD_OK,
              "forward");
        snprintf(name, sizeof name, "prior case %d", i);
        test_close(name, out, ref, n, 1e-4);
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
        check_counts(td, "wuerstchen-prior/prior", "WuerstchenPrior");
    }
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata");
    return test_finish();
}
