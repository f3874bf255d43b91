/* Helpers shared by the model tests (header only):
 *
 *     test_recorded_counts(ctx, td, "koala-700m/unet", "UNet2DConditionModel");
 *         builds the model from td/configs/<key>/config.json through its
 *         registry entry with init-random's recorder, and checks the tensor
 *         and parameter counts against td/configs/index.json (BatchNorm
 *         running statistics are buffers: counted as tensors, not parameters);
 *
 *     ld_tensor shape;
 *     float *x = test_case_f32(ctx, file, "prior0.x", &shape);   // NULL if absent
 *     ... free(x);
 *
 *     test_write_config(ctx, "src/config.json", dir, "norm_num_groups", "7");
 *         writes dir/config.json = the source config with one key set to a
 *         JSON value (key NULL: an unchanged copy); returns 0 on failure.
 */
#ifndef LD_TEST_MODEL_UTIL_H
#define LD_TEST_MODEL_UTIL_H

#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/model_registry.h"
#include "test_util.h"

static inline void test_recorded_counts(ld_ctx *ctx, const char *td, const char *key, const char *cls) {
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/index.json", td);
    json_t *index = NULL, *cfg = NULL;
    ld_weights *rec = NULL;
    CHECK(ld_json_load_file(ctx, path, &index) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/configs/%s/config.json", td, key);
    CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_weights_new_recorder(ctx, &rec) == LD_OK, "recorder: %s", ld_ctx_error(ctx));
    const ld_model_type *type = ld_model_type_find(cls);
    CHECK(type != NULL, "%s is registered", cls);
    if (index && cfg && rec && type) {
        CHECK(type->record(ctx, path, cfg, rec) == LD_OK, "record %s: %s", key, ld_ctx_error(ctx));
        int64_t params = 0;
        const size_t n = ld_weights_recorded_count(rec);
        for (size_t i = 0; i < n; i++) {
            const ld_tensor *t = ld_weights_recorded(rec, i);
            if (!strstr(t->name, "running_") && !strstr(t->name, "num_batches_tracked")) params += ld_tensor_numel(t);
        }
        const json_t *e = json_object_get(index, key);
        const int64_t want_p = json_integer_value(json_object_get(e, "params"));
        const int64_t want_t = json_integer_value(json_object_get(e, "tensors"));
        printf("%s: %zu tensors (index.json %lld), %lld parameters (index.json %lld)\n", key, n, (long long)want_t,
               (long long)params, (long long)want_p);
        CHECK(e != NULL && (int64_t)n == want_t && params == want_p, "%s: recorded counts differ from index.json", key);
    }
    ld_weights_free(rec);
    json_decref(cfg);
    json_decref(index);
}

static inline float *test_case_f32(ld_ctx *ctx, const ld_safetensors *f, const char *name, ld_tensor *shape) {
    if (shape) memset(shape, 0, sizeof *shape);
    const ld_tensor *t = ld_safetensors_find(f, name);
    if (!t) return NULL;
    ld_tensor c;
    if (ld_tensor_to_f32(ctx, t, &c) != LD_OK) return NULL;
    if (shape) *shape = c;
    return c.data;
}

static inline int test_write_config(ld_ctx *ctx, const char *src_cfg, const char *dir, const char *key,
                                    const char *value) {
    json_t *cfg;
    if (ld_json_load_file(ctx, src_cfg, &cfg) != LD_OK) return 0;
    if (key) json_object_set_new(cfg, key, json_loads(value, JSON_DECODE_ANY, NULL));
    char path[8300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int ok = json_dump_file(cfg, path, JSON_INDENT(2)) == 0;
    json_decref(cfg);
    return ok;
}

#endif
