/* The Wuerstchen v2 pipeline through the library API (ld_pipeline_open +
 * ld_generate) against the reference runs cases/wuerstchen-tiny/pipeline{j}:
 * the recorded noise is replayed, every intermediate is dumped and compared
 * (text embeddings and timesteps at the module tolerance, latents at 1e-3
 * relative L2, image_u8 >= 99 % equal and none off by more than 2). Also the
 * errors for sizes that do not fit, missing or wrong folders, and cancel; and
 * guided steps as two halves (test_halves.h). */
#include "io/safetensors.h"
#include "test_halves.h"
#include "test_util.h"

#include "leandiff.h"

static ld_ctx *ctx;
static char prior_dir[4200], decoder_dir[4200];

static float *f32(const ld_safetensors *f, const char *name, int64_t *n) {
    const ld_tensor *t = ld_safetensors_find(f, name);
    if (!t) return NULL;
    ld_tensor c;
    if (ld_tensor_to_f32(ctx, t, &c) != LD_OK) return NULL;
    *n = ld_tensor_numel(&c);
    return c.data;
}

/* Compares tensor `name` of got vs ref. mode 0: module tolerance, 1: relative L2 1e-3. */
static void compare(const ld_safetensors *got, const ld_safetensors *ref, const char *name, int mode) {
    int64_t ng = 0, nr = 0;
    float *g = f32(got, name, &ng), *r = f32(ref, name, &nr);
    CHECK(g && r && ng == nr, "%s: present in both with the same size (%lld vs %lld)", name, (long long)ng,
          (long long)nr);
    if (g && r && ng == nr) {
        if (mode == 0) {
            test_close(name, g, r, nr, 1e-4);
        } else {
            double d = 0, s = 0;
            for (int64_t i = 0; i < nr; i++) {
                d += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
                s += (double)r[i] * r[i];
            }
            double rel = sqrt(d / (s > 0 ? s : 1));
            printf("%s %s: relative L2 %.3g (limit 1e-3)\n", rel <= 1e-3 ? "ok  " : "FAIL", name, rel);
            CHECK(rel <= 1e-3, "%s relative L2 %.3g", name, rel);
        }
    }
    free(g);
    free(r);
}

static void compare_i64(const ld_safetensors *got, const ld_safetensors *ref, const char *name) {
    const ld_tensor *g = ld_safetensors_find(got, name), *r = ld_safetensors_find(ref, name);
    CHECK(g && r && g->dtype == LD_I64 && ld_tensor_numel(g) == ld_tensor_numel(r) &&
              memcmp(g->data, r->data, ld_tensor_nbytes(r)) == 0,
          "%s equal", name);
}

static void compare_u8(const uint8_t *g, const uint8_t *r, int64_t n, const char *what) {
    int64_t same = 0, maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t d = g[i] > r[i] ? g[i] - r[i] : r[i] - g[i];
        same += d == 0;
        if (d > maxd) maxd = d;
    }
    printf("%s: %.3f%% equal, max diff %lld\n", what, 100.0 * same / n, (long long)maxd);
    CHECK(same >= 0.99 * n && maxd <= 2, "%s: %lld of %lld equal, max diff %lld", what, (long long)same,
          (long long)n, (long long)maxd);
}

static int progress_calls;
static int count_progress(void *user, const char *stage, int step, int total, double s) {
    (void)user;
    (void)s;
    CHECK(step >= 1 && step <= total, "progress %s %d/%d", stage, step, total);
    progress_calls++;
    return 0;
}

static void run_case(const char *td, int j) {
    char path[4200], dump[4300];
    snprintf(path, sizeof path, "%s/cases/wuerstchen-tiny/pipeline%d.safetensors", td, j);
    snprintf(dump, sizeof dump, "%s/pipeline%d.safetensors", test_tmp_dir("wuerstchen_pipeline"), j);
    ld_safetensors *ref;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    ld_pipeline_options opt = {.model_dir = prior_dir, .decoder_dir = decoder_dir};
    ld_pipeline *p;
    if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) {
        CHECK(0, "open: %s", ld_ctx_error(ctx));
        ld_safetensors_close(ref);
        return;
    }
    CHECK(strcmp(ld_pipeline_family(p), "wuerstchen") == 0, "family");
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = ld_safetensors_meta_get(ref, "prompt");
    gp.negative_prompt = ld_safetensors_meta_get(ref, "negative_prompt");
    gp.height = atoi(ld_safetensors_meta_get(ref, "height"));
    gp.width = atoi(ld_safetensors_meta_get(ref, "width"));
    gp.prior_steps = atoi(ld_safetensors_meta_get(ref, "prior_steps"));
    gp.prior_cfg_scale = (float)atof(ld_safetensors_meta_get(ref, "prior_guidance_scale"));
    gp.steps = atoi(ld_safetensors_meta_get(ref, "decoder_steps"));
    gp.cfg_scale = (float)atof(ld_safetensors_meta_get(ref, "decoder_guidance_scale"));
    gp.replay_noise = path;
    gp.dump = dump;
    gp.progress = count_progress;
    progress_calls = 0;
    ld_image img;
    ld_gen_info info;
    ld_status st = ld_generate(ctx, p, &gp, &img, &info);
    CHECK(st == LD_OK, "generate case %d: %s", j, ld_ctx_error(ctx));
    ld_safetensors *got = NULL;
    if (st == LD_OK && ld_safetensors_open(ctx, dump, &got) == LD_OK) {
        printf("case %d: %dx%d, prior %d steps cfg %g, decoder %d steps cfg %g, %.2f s\n", j, info.width, info.height,
               info.prior_steps, info.prior_cfg_scale, info.steps, info.cfg_scale, info.seconds);
        CHECK(progress_calls == 1 + gp.prior_steps + gp.steps + 1, "progress calls %d", progress_calls);
        CHECK(info.width == gp.width && info.height == gp.height && img.width == gp.width && img.height == gp.height,
              "image size");
        compare_i64(got, ref, "prior.input_ids");
        compare_i64(got, ref, "prior.attention_mask");
        compare(got, ref, "prior.prompt_embeds", 0);
        compare(got, ref, "prior.negative_prompt_embeds", 0);
        compare(got, ref, "prior.timesteps", 0);
        char name[64];
        for (int i = 0; i < gp.prior_steps; i++) {
            snprintf(name, sizeof name, "prior.step%d.latents", i);
            compare(got, ref, name, 1);
        }
        compare(got, ref, "image_embeddings", 1);
        compare(got, ref, "decoder.prompt_embeds", 0);
        compare(got, ref, "decoder.timesteps", 0);
        for (int i = 0; i < gp.steps; i++) {
            snprintf(name, sizeof name, "decoder.step%d.latents", i);
            compare(got, ref, name, 1);
        }
        compare(got, ref, "image", 1);
        const ld_tensor *r8 = ld_safetensors_find(ref, "image_u8"), *g8 = ld_safetensors_find(got, "image_u8");
        CHECK(r8 && g8 && ld_tensor_numel(r8) == ld_tensor_numel(g8), "image_u8 present");
        if (r8 && g8 && ld_tensor_numel(r8) == ld_tensor_numel(g8)) {
            compare_u8(g8->data, r8->data, ld_tensor_numel(r8), "image_u8 (dump)");
            CHECK(ld_tensor_numel(r8) == (int64_t)img.width * img.height * 3, "returned image size");
            compare_u8(img.pixels, r8->data, ld_tensor_numel(r8), "image_u8 (returned image)");
        }
    }
    ld_safetensors_close(got);
    ld_image_free(&img);
    ld_pipeline_free(p);
    ld_safetensors_close(ref);
}

static int cancel_at_prior(void *user, const char *stage, int step, int total, double s) {
    (void)user;
    (void)step;
    (void)total;
    (void)s;
    return strcmp(stage, "prior") == 0;
}

static void test_errors(void) {
    ld_pipeline_options opt = {.model_dir = prior_dir};
    ld_pipeline *p = NULL;
    CHECK(ld_pipeline_open(ctx, &opt, &p) == LD_ERR_INVALID_ARGUMENT, "decoder folder required");
    CHECK(strstr(ld_ctx_error(ctx), "decoder") != NULL, "message: %s", ld_ctx_error(ctx));
    opt.decoder_dir = prior_dir;
    CHECK(ld_pipeline_open(ctx, &opt, &p) == LD_ERR_MODEL, "a prior folder as decoder is rejected");
    CHECK(strstr(ld_ctx_error(ctx), "WuerstchenDecoderPipeline") != NULL, "message: %s", ld_ctx_error(ctx));
    opt.decoder_dir = decoder_dir;
    if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) {
        CHECK(0, "open: %s", ld_ctx_error(ctx));
        return;
    }
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a sausage";
    gp.prior_steps = 1;
    gp.steps = 1;
    ld_image img;
    gp.height = 1000;
    gp.width = 128;
    CHECK(ld_generate(ctx, p, &gp, &img, NULL) == LD_ERR_INVALID_ARGUMENT, "height 1000 rejected");
    CHECK(strstr(ld_ctx_error(ctx), "height 1000") && strstr(ld_ctx_error(ctx), "896 or 1024"), "message: %s",
          ld_ctx_error(ctx));
    gp.height = 128;
    gp.width = 64;
    CHECK(ld_generate(ctx, p, &gp, &img, NULL) == LD_ERR_INVALID_ARGUMENT, "width 64 rejected");
    CHECK(strstr(ld_ctx_error(ctx), "width 64") && strstr(ld_ctx_error(ctx), "128"), "message: %s",
          ld_ctx_error(ctx));
    gp.width = 128;
    gp.progress = cancel_at_prior;
    CHECK(ld_generate(ctx, p, &gp, &img, NULL) == LD_ERR_CANCELLED, "cancel from the progress callback");
    CHECK(img.pixels == NULL, "no image after cancel");
    gp.progress = NULL;
    gp.replay_noise = "/nonexistent/replay.safetensors";
    CHECK(ld_generate(ctx, p, &gp, &img, NULL) == LD_ERR_IO, "missing replay file");
    /* a seeded run (no replay) works and is deterministic */
    gp.replay_noise = NULL;
    gp.seed = 7;
    ld_image a, b;
    CHECK(ld_generate(ctx, p, &gp, &a, NULL) == LD_OK, "seeded run: %s", ld_ctx_error(ctx));
    CHECK(ld_generate(ctx, p, &gp, &b, NULL) == LD_OK, "seeded run again");
    CHECK(a.pixels && b.pixels && a.width == 128 && memcmp(a.pixels, b.pixels, 128 * 128 * 3) == 0,
          "same seed, same image");
    ld_image_free(&a);
    ld_image_free(&b);
    /* defaults: prior_steps 0 runs DEFAULT_STAGE_C_TIMESTEPS (29 steps) */
    char dump[4300];
    snprintf(dump, sizeof dump, "%s/defaults.safetensors", test_tmp_dir("wuerstchen_pipeline"));
    gp.prior_steps = 0;
    gp.prior_cfg_scale = -1.0f;
    gp.dump = dump;
    gp.progress = count_progress;
    progress_calls = 0;
    ld_gen_info info;
    CHECK(ld_generate(ctx, p, &gp, &a, &info) == LD_OK, "default prior steps: %s", ld_ctx_error(ctx));
    CHECK(info.prior_steps == 29 && info.prior_cfg_scale == 4.0f && info.cfg_scale == 0.0f, "defaults reported");
    CHECK(progress_calls == 1 + 29 + 1 + 1, "29 prior steps ran (%d progress calls)", progress_calls);
    ld_safetensors *f = NULL;
    if (ld_safetensors_open(ctx, dump, &f) == LD_OK) {
        const ld_tensor *t = ld_safetensors_find(f, "prior.timesteps");
        CHECK(t && ld_tensor_numel(t) == 30, "30 prior timesteps");
        if (t && ld_tensor_numel(t) == 30) {
            CHECK(ld_tensor_get_f32(t, 19) == 0.66666669f && ld_tensor_get_f32(t, 20) == 0.60000002f &&
                      ld_tensor_get_f32(t, 29) == 0.0f,
                  "DEFAULT_STAGE_C_TIMESTEPS values");
        }
        CHECK(ld_safetensors_find(f, "prior.negative_prompt_embeds") != NULL, "prior CFG 4 encodes the negative");
        CHECK(ld_safetensors_find(f, "decoder.negative_prompt_embeds") == NULL, "decoder without CFG does not");
    }
    ld_safetensors_close(f);
    ld_image_free(&a);
    ld_pipeline_free(p);
}

int main(void) {
    ctx = ld_ctx_new();
    const char *td = test_testdata_dir();
    if (!td) {
        ld_ctx_free(ctx);
        return test_skip("no testdata");
    }
    snprintf(prior_dir, sizeof prior_dir, "%s/models/wuerstchen-prior-tiny", td);
    snprintf(decoder_dir, sizeof decoder_dir, "%s/models/wuerstchen-tiny", td);
    run_case(td, 0);
    run_case(td, 1);
    test_errors();
    test_halves(ctx, prior_dir, decoder_dir, "wuerstchen");
    ld_pipeline_options opt = {.model_dir = prior_dir, .decoder_dir = decoder_dir};
    ld_pipeline *p = NULL;
    CHECK(ld_pipeline_open(ctx, &opt, &p) == LD_OK, "open: %s", ld_ctx_error(ctx));
    if (p) test_halves_cancel(ctx, p);
    ld_pipeline_free(p);
    ld_ctx_free(ctx);
    return test_finish();
}
