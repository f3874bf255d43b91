/* AutoencoderKL against the reference data: decode (latent -> decoded) and
 * encode (image -> moments) of every case of cases/koala-{700m,1b}-tiny/
 * vae.safetensors within the module tolerance; legacy attention names
 * (query/key/value/proj_attn, conv-shaped) give the same numbers; a
 * decoder-only file decodes and refuses to encode; tiled decode of a larger
 * random latent matches the untiled decode closely with bounded activation
 * memory; init-random counts equal configs/index.json for the SDXL VAE;
 * rejected config fields, missing and misshapen tensors fail clearly. */
#include "io/json.h"
#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/model_registry.h"
#include "test_model_util.h"

static int run_cases(ld_ctx *ctx, ld_vae *v, const char *cases_path, const char *label, int with_encoder) {
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, cases_path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return 0;
    }
    int ran = 0;
    for (int i = 0;; i++) {
        char key[64];
        snprintf(key, sizeof key, "case%d.latent", i);
        const ld_tensor *lat = ld_safetensors_find(st, key);
        if (!lat) break;
        snprintf(key, sizeof key, "case%d.decoded", i);
        const ld_tensor *dec = ld_safetensors_find(st, key);
        snprintf(key, sizeof key, "case%d.image", i);
        const ld_tensor *img = ld_safetensors_find(st, key);
        snprintf(key, sizeof key, "case%d.moments", i);
        const ld_tensor *mom = ld_safetensors_find(st, key);
        CHECK(dec && img && mom, "case%d tensors", i);
        if (!dec || !img || !mom) break;
        int B = (int)lat->shape[0], h = (int)lat->shape[2], w = (int)lat->shape[3];
        float *out = malloc(ld_tensor_nbytes(dec));
        ld_status rc = ld_vae_decode(ctx, v, lat->data, B, h, w, out, 0);
        CHECK(rc == LD_OK, "decode: %s", ld_ctx_error(ctx));
        char what[200];
        snprintf(what, sizeof what, "%s case%d decode [%d,4,%d,%d]", label, i, B, h, w);
        if (rc == LD_OK) test_close(what, out, dec->data, ld_tensor_numel(dec), 1e-4);
        free(out);
        if (with_encoder) {
            out = malloc(ld_tensor_nbytes(mom));
            rc = ld_vae_encode(ctx, v, img->data, B, (int)img->shape[2], (int)img->shape[3], out);
            CHECK(rc == LD_OK, "encode: %s", ld_ctx_error(ctx));
            snprintf(what, sizeof what, "%s case%d encode [%d,3,%d,%d]", label, i, B, (int)img->shape[2],
                     (int)img->shape[3]);
            if (rc == LD_OK) test_close(what, out, mom->data, ld_tensor_numel(mom), 1e-4);
            free(out);
        }
        ran++;
    }
    ld_safetensors_close(st);
    return ran;
}

static void reference_cases(ld_ctx *ctx, const char *td, const char *model) {
    char dir[8192], cases[8192];
    snprintf(dir, sizeof dir, "%s/models/%s/vae", td, model);
    snprintf(cases, sizeof cases, "%s/cases/%s/vae.safetensors", td, model);
    ld_vae *v;
    ld_status rc = ld_vae_load(ctx, dir, NULL, &v);
    CHECK(rc == LD_OK, "load %s: %s", dir, ld_ctx_error(ctx));
    if (rc != LD_OK) return;
    CHECK(fabsf(ld_vae_scaling_factor(v) - 0.13025f) < 1e-7f, "scaling_factor");
    CHECK(ld_vae_force_upcast(v) == 1 && ld_vae_downscale(v) == 8 && ld_vae_latent_channels(v) == 4, "config");
    CHECK(ld_vae_has_encoder(v), "has encoder");
    CHECK(run_cases(ctx, v, cases, model, 1) >= 1, "%s cases ran", model);
    ld_vae_free(v);
}

typedef enum { COPY_AS_IS, COPY_DROP_PREFIX, COPY_RESHAPE, COPY_LEGACY_ATTN } copy_mode;

/* Copies src weights into dir: COPY_DROP_PREFIX leaves out names starting with
 * target, COPY_RESHAPE adds a row to tensor target, COPY_LEGACY_ATTN renames
 * the mid attentions to query/key/value/proj_attn with [C,C,1,1] weights. */
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
        char name[256];
        snprintf(name, sizeof name, "%s", t->name);
        if (mode == COPY_DROP_PREFIX && !strncmp(t->name, target, strlen(target))) continue;
        if (mode == COPY_RESHAPE && !strcmp(t->name, target)) {
            int64_t row = ld_tensor_numel(t) / shape[0];
            shape[0] += 1;
            grown = calloc((size_t)(row * shape[0]), ld_dtype_size(t->dtype));
            memcpy(grown, t->data, ld_tensor_nbytes(t));
            data = grown;
        }
        const char *at = strstr(t->name, "mid_block.attentions.0.");
        if (mode == COPY_LEGACY_ATTN && at) {
            static const char *const from[] = {"to_q", "to_k", "to_v", "to_out.0"};
            static const char *const to[] = {"query", "key", "value", "proj_attn"};
            const char *leaf = at + strlen("mid_block.attentions.0.");
            for (int k = 0; k < 4; k++) {
                size_t n = strlen(from[k]);
                if (!strncmp(leaf, from[k], n) && leaf[n] == '.')
                    snprintf(name, sizeof name, "%.*s%s%s", (int)(leaf - t->name), t->name, to[k], leaf + n);
            }
            if (ndim == 2 && strcmp(name, t->name) != 0) {
                shape[2] = shape[3] = 1;
                ndim = 4;
            }
        }
        ok = ld_st_builder_add(ctx, &b, name, t->dtype, ndim, shape, data) == LD_OK;
    }
    char path[8300];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (ok) ok = ld_st_builder_write(ctx, &b, path) == LD_OK;
    free(grown);
    ld_st_builder_free(&b);
    ld_safetensors_close(st);
    return ok;
}

static void expect_load_error(ld_ctx *ctx, const char *dir, const char *what, const char *n1, const char *n2) {
    ld_vae *v = NULL;
    ld_ctx_clear_error(ctx);
    ld_status rc = ld_vae_load(ctx, dir, NULL, &v);
    const char *msg = ld_ctx_error(ctx);
    printf("%s -> %s\n", what, msg);
    CHECK(rc != LD_OK && v == NULL, "%s: load should fail", what);
    CHECK(strstr(msg, n1) != NULL, "%s: message should name '%s'", what, n1);
    if (n2) CHECK(strstr(msg, n2) != NULL, "%s: message should name '%s'", what, n2);
    ld_vae_free(v);
}

static void alternative_files(ld_ctx *ctx, const char *td) {
    char src_cfg[8192], src_w[8192], cases[8192];
    snprintf(src_cfg, sizeof src_cfg, "%s/models/koala-700m-tiny/vae/config.json", td);
    snprintf(src_w, sizeof src_w, "%s/models/koala-700m-tiny/vae/diffusion_pytorch_model.safetensors", td);
    snprintf(cases, sizeof cases, "%s/cases/koala-700m-tiny/vae.safetensors", td);
    const char *dir = test_tmp_dir("vae-alt");
    ld_vae *v;

    /* legacy attention names with conv-shaped weights */
    CHECK(test_write_config(ctx, src_cfg, dir, NULL, NULL), "write config");
    CHECK(copy_weights(ctx, src_w, dir, COPY_LEGACY_ATTN, NULL), "copy: %s", ld_ctx_error(ctx));
    ld_status rc = ld_vae_load(ctx, dir, NULL, &v);
    CHECK(rc == LD_OK, "legacy names load: %s", ld_ctx_error(ctx));
    if (rc == LD_OK) {
        CHECK(run_cases(ctx, v, cases, "legacy attention names", 1) >= 1, "legacy cases ran");
        ld_vae_free(v);
    }

    /* decoder-only file */
    CHECK(copy_weights(ctx, src_w, dir, COPY_DROP_PREFIX, "encoder."), "copy: %s", ld_ctx_error(ctx));
    rc = ld_vae_load(ctx, dir, NULL, &v);
    CHECK(rc == LD_OK, "decoder-only load: %s", ld_ctx_error(ctx));
    if (rc == LD_OK) {
        CHECK(!ld_vae_has_encoder(v), "no encoder");
        CHECK(run_cases(ctx, v, cases, "decoder-only", 0) >= 1, "decoder-only cases ran");
        float img[3 * 16 * 16] = {0}, mom[8 * 2 * 2];
        ld_ctx_clear_error(ctx);
        CHECK(ld_vae_encode(ctx, v, img, 1, 16, 16, mom) != LD_OK, "encode without encoder fails");
        CHECK(strstr(ld_ctx_error(ctx), "encoder") != NULL, "message: %s", ld_ctx_error(ctx));
        ld_vae_free(v);
    }

    /* errors */
    static const char *const rejected[][2] = {
        {"shift_factor", "0.1159"},
        {"latents_mean", "[0, 0, 0, 0]"},
        {"act_fn", "\"relu\""},
        {"up_block_types", "[\"UpDecoderBlock2D\", \"AttnUpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]"},
        {"down_block_types", "[\"DownEncoderBlock2D\"]"},
    };
    CHECK(copy_weights(ctx, src_w, dir, COPY_AS_IS, NULL), "copy: %s", ld_ctx_error(ctx));
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        CHECK(test_write_config(ctx, src_cfg, dir, rejected[i][0], rejected[i][1]), "write config");
        expect_load_error(ctx, dir, rejected[i][0], rejected[i][0], NULL);
    }
    CHECK(test_write_config(ctx, src_cfg, dir, NULL, NULL), "write config");
    CHECK(copy_weights(ctx, src_w, dir, COPY_DROP_PREFIX, "decoder.up_blocks.2.resnets.0.conv_shortcut.weight"),
          "copy: %s", ld_ctx_error(ctx));
    expect_load_error(ctx, dir, "missing tensor", "decoder.up_blocks.2.resnets.0.conv_shortcut.weight",
                      "diffusion_pytorch_model.safetensors");
    CHECK(copy_weights(ctx, src_w, dir, COPY_RESHAPE, "decoder.mid_block.attentions.0.to_v.weight"), "copy: %s",
          ld_ctx_error(ctx));
    expect_load_error(ctx, dir, "wrong shape", "decoder.mid_block.attentions.0.to_v.weight", "[64, 64]");
}

/* Tiled decode of a latent larger than a tile vs the untiled decode. */
static void tiled_decode(ld_ctx *ctx, const char *td) {
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/models/koala-1b-tiny/vae", td);
    ld_vae *v;
    if (ld_vae_load(ctx, dir, NULL, &v) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    CHECK(ld_vae_set_tiling(ctx, v, 8, 8) != LD_OK, "overlap >= tile rejected");
    CHECK(ld_vae_set_tiling(ctx, v, 8, 4) == LD_OK, "set tiling");
    const int h = 14, w = 19, f = 8; /* 3 x 4 tiles of 8 */
    size_t nz = (size_t)4 * h * w, ni = (size_t)3 * h * f * w * f;
    float *z = malloc(sizeof(float) * nz), *full = malloc(sizeof(float) * ni), *tiled = malloc(sizeof(float) * ni);
    uint64_t seed = 7;
    for (size_t i = 0; i < nz; i++) z[i] = 2.0f * test_rand(&seed);
    CHECK(ld_vae_decode(ctx, v, z, 1, h, w, full, 0) == LD_OK, "untiled: %s", ld_ctx_error(ctx));
    size_t untiled_bytes = ld_vae_activation_bytes(v);
    ld_vae_free(v);
    CHECK(ld_vae_load(ctx, dir, NULL, &v) == LD_OK, "reload");
    CHECK(ld_vae_set_tiling(ctx, v, 8, 4) == LD_OK, "set tiling");
    CHECK(ld_vae_decode(ctx, v, z, 1, h, w, tiled, 1) == LD_OK, "tiled: %s", ld_ctx_error(ctx));
    size_t tiled_bytes = ld_vae_activation_bytes(v);
    double maxd = 0, sumd = 0, maxref = 0;
    for (size_t i = 0; i < ni; i++) {
        double d = fabs((double)full[i] - tiled[i]);
        if (!(d <= maxd)) maxd = d;
        sumd += d;
        if (fabs(full[i]) > maxref) maxref = fabs(full[i]);
    }
    printf("tiled decode %dx%d latent (tile 8, overlap 4) vs untiled: max|diff| %.4g, mean|diff| %.4g, "
           "max|untiled| %.3g; activations %.1f MiB tiled vs %.1f MiB untiled\n",
           h, w, maxd, sumd / ni, maxref, tiled_bytes / 1048576.0, untiled_bytes / 1048576.0);
    /* Tiles see their own GroupNorm statistics and attention (as in diffusers'
     * tiled_decode), so they are not bit-equal; white-noise latents in tiles of
     * 8 are a hard case (measured: max 0.25, mean 0.033 of max 0.99). */
    CHECK(maxd < 0.4 * maxref && sumd / ni < 0.05 * maxref, "tiled decode close to untiled");
    CHECK(tiled_bytes < untiled_bytes / 3, "tiled decode uses less activation memory");

    /* no seams: the tiled image is as smooth across tile borders as the untiled one */
    double jump_tiled = 0, jump_full = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h * f; y++)
            for (int x = 1; x < w * f; x++) {
                size_t i = ((size_t)c * h * f + y) * w * f + x;
                jump_tiled += fabs(tiled[i] - tiled[i - 1]);
                jump_full += fabs(full[i] - full[i - 1]);
            }
    printf("mean horizontal neighbour difference: tiled %.4g, untiled %.4g\n", jump_tiled / ni, jump_full / ni);
    CHECK(jump_tiled < 1.05 * jump_full, "no seams added");

    /* a twice wider latent needs no more activation memory (beyond O(W)) */
    const int h2 = h, w2 = 2 * w;
    float *z2 = malloc(sizeof(float) * 4 * h2 * w2), *img2 = malloc(sizeof(float) * 3 * h2 * f * w2 * f);
    for (size_t i = 0; i < (size_t)4 * h2 * w2; i++) z2[i] = 2.0f * test_rand(&seed);
    CHECK(ld_vae_decode(ctx, v, z2, 1, h2, w2, img2, 1) == LD_OK, "tiled 2x: %s", ld_ctx_error(ctx));
    size_t tiled2_bytes = ld_vae_activation_bytes(v);
    printf("tiled decode %dx%d latent: activations %.2f MiB (vs %.2f MiB at %dx%d)\n", h2, w2,
           tiled2_bytes / 1048576.0, tiled_bytes / 1048576.0, h, w);
    CHECK(tiled2_bytes <= tiled_bytes + (size_t)(h2 + w2) * f * sizeof(float) + 4096, "bounded memory");
    /* a tile as large as the latent is the untiled decode */
    float *one = malloc(sizeof(float) * ni);
    CHECK(ld_vae_set_tiling(ctx, v, 64, 16) == LD_OK, "set tiling");
    CHECK(ld_vae_decode(ctx, v, z, 1, h, w, one, 1) == LD_OK, "one tile: %s", ld_ctx_error(ctx));
    CHECK(memcmp(one, full, sizeof(float) * ni) == 0, "one tile == untiled");
    free(one);

    free(z2);
    free(img2);
    free(z);
    free(full);
    free(tiled);
    ld_vae_free(v);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    reference_cases(ctx, td, "koala-700m-tiny");
    reference_cases(ctx, td, "koala-1b-tiny");
    alternative_files(ctx, td);
    tiled_decode(ctx, td);
    test_recorded_counts(ctx, td, "sdxl-base/vae", "AutoencoderKL");
    ld_ctx_free(ctx);
    return test_finish();
}
