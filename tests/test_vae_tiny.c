/* AutoencoderTiny (TAESD) against diffusers' AutoencoderTiny: the tiny
 * random-weight folder and cases in tests/data/taesd (made by
 * make_taesd_ref.py from diffusers' own code): decode of latents (batch 1 and
 * 2, odd sizes) and encode of images, within the module tolerance; init-random's
 * recording of the class gives exactly the folder's tensor names and shapes;
 * configs it does not support and a missing tensor fail with messages naming
 * them. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/autoencoder_tiny.h"
#include "test_util.h"

static const ld_tensor *find(const ld_safetensors *st, const char *name) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t && t->dtype == LD_F32, "case tensor %s", name);
    return t && t->dtype == LD_F32 ? t : NULL;
}

int main(void) {
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/tests/data/taesd", src ? src : ".");
    ld_ctx *ctx = ld_ctx_new();
    ld_vae_tiny *t = NULL;
    const char *model = test_make_taesd("vae_tiny");
    if (!model || ld_vae_tiny_load(ctx, model, NULL, &t) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return test_finish();
    }
    CHECK(t->scale == 8 && t->has_encoder, "scale %lld, encoder %d", (long long)t->scale, t->has_encoder);
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    ld_safetensors *cs = NULL;
    if (ld_safetensors_open(ctx, path, &cs) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return test_finish();
    }
    for (int i = 0; i < 2; i++) {
        char a[32], b[32], what[64];
        snprintf(a, sizeof a, "latents%d", i);
        snprintf(b, sizeof b, "decoded%d", i);
        const ld_tensor *lat = find(cs, a), *ref = find(cs, b);
        if (lat && ref) {
            float *img = malloc(sizeof(float) * (size_t)ld_tensor_numel(ref));
            CHECK(ld_vae_tiny_decode(ctx, t, img, lat->data, lat->shape[0], lat->shape[2], lat->shape[3]) == LD_OK,
                  "%s", ld_ctx_error(ctx));
            snprintf(what, sizeof what, "decode %s [%lld, 4, %lld, %lld]", a, (long long)lat->shape[0],
                     (long long)lat->shape[2], (long long)lat->shape[3]);
            test_close(what, img, ref->data, ld_tensor_numel(ref), 1e-4);
            free(img);
        }
        snprintf(a, sizeof a, "image%d", i);
        snprintf(b, sizeof b, "encoded%d", i);
        const ld_tensor *im = find(cs, a), *enc = find(cs, b);
        if (im && enc) {
            float *lt = malloc(sizeof(float) * (size_t)ld_tensor_numel(enc));
            CHECK(ld_vae_tiny_encode(ctx, t, lt, im->data, im->shape[0], im->shape[2], im->shape[3]) == LD_OK, "%s",
                  ld_ctx_error(ctx));
            snprintf(what, sizeof what, "encode %s [%lld, 3, %lld, %lld]", a, (long long)im->shape[0],
                     (long long)im->shape[2], (long long)im->shape[3]);
            test_close(what, lt, enc->data, ld_tensor_numel(enc), 1e-4);
            free(lt);
        }
    }
    float dummy[3 * 64 * 64];
    CHECK(ld_vae_tiny_encode(ctx, t, dummy, dummy, 1, 60, 64) != LD_OK && strstr(ld_ctx_error(ctx), "multiple"),
          "odd image size refused: %s", ld_ctx_error(ctx));
    ld_safetensors_close(cs);

    /* the recorded tensors are exactly the folder's */
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = NULL;
    CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    ld_weights *rec = NULL;
    CHECK(ld_weights_new_recorder(ctx, &rec) == LD_OK && ld_model_vae_tiny.record(ctx, path, cfg, rec) == LD_OK,
          "record: %s", ld_ctx_error(ctx));
    size_t n = ld_weights_recorded_count(rec), match = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *r = ld_weights_recorded(rec, i), *f = ld_weights_find(t->ws, r->name);
        match += f && ld_shape_equal(f->ndim, f->shape, r->ndim, r->shape);
    }
    for (size_t k = 0; k < ld_weights_file_count(t->ws); k++) total += ld_safetensors_count(ld_weights_file(t->ws, k));
    CHECK(match == n && n == total, "recorded %zu tensors, %zu match, the folder has %zu", n, match, total);
    printf("%s init-random records %zu tensors, all in the folder (%zu)\n", match == n && n == total ? "ok  " : "FAIL",
           n, total);
    ld_weights_free(rec);

    /* unsupported configs, a missing tensor */
    json_t *bad = json_deep_copy(cfg);
    json_object_set_new(bad, "act_fn", json_string("silu"));
    ld_vae_tiny *x = NULL;
    CHECK(ld_vae_tiny_build(ctx, "bad", bad, t->ws, &x) != LD_OK && strstr(ld_ctx_error(ctx), "silu"), "act_fn: %s",
          ld_ctx_error(ctx));
    json_decref(bad);
    bad = json_deep_copy(cfg);
    json_object_set_new(bad, "decoder_block_out_channels", json_pack("[i,i,i,i]", 16, 16, 32, 16));
    CHECK(ld_vae_tiny_build(ctx, "bad", bad, t->ws, &x) != LD_OK && strstr(ld_ctx_error(ctx), "decoder.layers."),
          "a missing/misshapen tensor is named: %s", ld_ctx_error(ctx));
    json_decref(bad);
    json_decref(cfg);
    ld_vae_tiny_free(t);
    ld_ctx_free(ctx);
    return test_finish();
}
