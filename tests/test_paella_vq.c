/* PaellaVQModel against the reference module cases
 * (cases/wuerstchen-tiny/modules.safetensors: vqgan{i}.latents -> decoded,
 * vqgan{i}.image -> encoded), a naive MixingResidualBlock check (replicate
 * padding), its registry entry (counts vs configs/index.json), and errors. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/paella_vq.h"
#include "test_model_util.h"

static ld_ctx *ctx;

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
        float *lat = test_case_f32(ctx, f, name, &ls);
        if (!lat) {
            CHECK(i >= 2, "at least two vqgan cases");
            break;
        }
        snprintf(name, sizeof name, "vqgan%d.decoded", i);
        float *dec = test_case_f32(ctx, f, name, NULL);
        snprintf(name, sizeof name, "vqgan%d.image", i);
        float *img = test_case_f32(ctx, f, name, &is);
        snprintf(name, sizeof name, "vqgan%d.encoded", i);
        float *enc = test_case_f32(ctx, f, name, NULL);
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
        test_recorded_counts(ctx, td, "wuerstchen/vqgan", "PaellaVQModel");
    }
    ld_ctx_free(ctx);
    if (!td) return test_skip("no testdata");
    return test_finish();
}
