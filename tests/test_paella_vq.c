/* PaellaVQModel against the reference module cases
 * (cases/wuerstchen-tiny/modules.safetensors: vqgan{i}.latents -> decoded,
 * vqgan{i}.image -> encoded), a naive MixingResidualBlock check (replicate
 * padding), its registry entry (counts vs configs/index.json), and errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/paella_vq.h"
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
    snprintf(path, sizeof path, "%s/models/wuerstchen-tiny/vqgan", td);
    ld_paella_vq *vq;
    if (ld_paella_vq_load(ctx, path, NULL, &vq) != LD_OK) {
        CHECK(0, "load: %s", ld_ctx_error(ctx));
        return;
    }
    CHECK(ld_paella_vq_factor(vq) == 4, "f4");
    CHECK(fabsf(vq->scale_factor - 0.3764f) < 1e-7f, "scale_factor from config");
    snprintf(path, sizeof path, "%s/cases/wuerstchen-tiny/modules.safetensors", td);
    ld_safetensors *f;
    CHECK(ld_safetensors_open(ctx, path, &f) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int i = 0; f; i++) {
        char name[64];
        ld_tensor ls, is;
        snprintf(name, sizeof name, "vqgan%d.latents", i);
        float *lat = get(f, name, &ls);
        if (!lat) {
            CHECK(i >= 2, "at least two vqgan cases");
            break;
        }
        snprintf(name, sizeof name, "vqgan%d.decoded", i);
        float *dec = get(f, name, NULL);
        snprintf(name, sizeof name, "vqgan%d.image", i);
        float *img = get(f, name, &is);
        snprintf(name, sizeof name, "vqgan%d.encoded", i);
        float *enc = get(f, name, NULL);
        int64_t B = ls.shape[0], h = ls.shape[2], w = ls.shape[3];
        float *out = malloc((size_t)(B * 3 * h * w * 16) * 4);
        CHECK(ld_paella_vq_decode(ctx, vq, out, lat, B, h, w) == LD_OK, "decode: %s", ld_ctx_error(ctx));
        snprintf(name, sizeof name, "vqgan case %d decode", i);
        test_close(name, out, dec, B * 3 * h * w * 16, 1e-4);
        int64_t Bi = is.shape[0], H = is.shape[2], W = is.shape[3];
        float *lo = malloc((size_t)(Bi * 4 * (H / 4) * (W / 4)) * 4);
        CHECK(ld_paella_vq_encode(ctx, vq, lo, img, Bi, H, W) == LD_OK, "encode: %s", ld_ctx_error(ctx));
        snprintf(name, sizeof name, "vqgan case %d encode", i);
        test_close(name, lo, enc, Bi * 4 * (H / 4) * (W / 4), 1e-4);
        free(lat);
        free(dec);
        free(img);
        free(enc);
        free(out);
        free(lo);
    }
    float dummy[3 * 10 * 10] = {0};
    CHECK(ld_paella_vq_encode(ctx, vq, dummy, dummy, 1, 10, 10) == LD_ERR_INVALID_ARGUMENT, "10x10 encode rejected");
    ld_safetensors_close(f);
    ld_paella_vq_free(vq);
}

static void test_config_errors(void) {
    ld_weights *rec;
    ld_weights_new_recorder(ctx, &rec);
    ld_paella_vq *vq;
    json_t *cfg = json_pack("{s:i,s:i}", "embed_dim", 30, "levels", 3);
    CHECK(ld_paella_vq_build(ctx, "vqgan/config.json", cfg, rec, &vq) == LD_ERR_MODEL, "embed_dim must halve");
    CHECK(strstr(ld_ctx_error(ctx), "vqgan/config.json: embed_dim") != NULL, "message: %s", ld_ctx_error(ctx));
    json_decref(cfg);
    cfg = json_pack("{s:i}", "levels", 0);
    CHECK(ld_paella_vq_build(ctx, "vqgan/config.json", cfg, rec, &vq) == LD_ERR_MODEL, "levels 0 rejected");
    json_decref(cfg);
    ld_weights_free(rec);
}

int main(void) {
    ctx = ld_ctx_new();
    test_config_errors();
    const char *td = test_testdata_dir();
    if (td) {
        test_cases(td);
        check_counts(td, "wuerstchen/vqgan", "PaellaVQModel");
    }
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata");
    return test_finish();
}
