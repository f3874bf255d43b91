/* Stable Cascade pipeline end to end through the public API (ld_pipeline_open
 * + ld_generate with replayed noise and a dump) against
 * cases/stable-cascade-tiny/pipeline{0,1}.safetensors; the same run from
 * Stability-named single files written here (q/k/v packed into in_proj, as
 * stage_b/stage_c/stage_a.safetensors store them); the error paths; and guided
 * steps as two halves (test_halves.h). */
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/stability_names.h"
#include "leandiff.h"
#include "test_halves.h"
#include "test_util.h"

static char prior_dir[4096], decoder_dir[4096];

static const ld_tensor *get(const ld_safetensors *st, const char *name) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t != NULL, "%s: tensor %s missing", ld_safetensors_path(st), name);
    return t;
}

static void compare_latents(const ld_safetensors *got, const ld_safetensors *ref, const char *name) {
    const ld_tensor *a = get(got, name), *b = get(ref, name);
    if (!a || !b) return;
    CHECK(ld_tensor_numel(a) == ld_tensor_numel(b), "%s size", name);
    if (ld_tensor_numel(a) != ld_tensor_numel(b)) return;
    double e = test_rel_l2(a->data, b->data, ld_tensor_numel(b));
    printf("%-28s rel L2 %.3g\n", name, e);
    CHECK(e <= 1e-3, "%s: relative L2 error %.3g > 1e-3", name, e);
}

/* image_u8 equal on >= 99% of values, none off by more than 2. */
static void compare_u8(const uint8_t *got, const uint8_t *ref, int64_t n, const char *what) {
    int64_t equal = 0;
    int worst = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        equal += d == 0;
        if (d > worst) worst = d;
    }
    printf("%s: %.3f%% equal, max off by %d\n", what, 100.0 * (double)equal / (double)n, worst);
    CHECK(equal >= n * 99 / 100 && worst <= 2, "%s: %lld of %lld equal, max off %d", what, (long long)equal,
          (long long)n, worst);
}

static int cancel_at_prior_2(void *user, const char *stage, int step, int total, double s) {
    (void)total;
    (void)s;
    int *calls = user;
    (*calls)++;
    return strcmp(stage, "prior") == 0 && step == 2;
}

static int count_progress(void *user, const char *stage, int step, int total, double s) {
    (void)stage;
    (void)s;
    (*(int *)user)++;
    return step < 1 || step > total; /* never cancels */
}

static void fill_params(const ld_safetensors *ref, ld_gen_params *gp) {
    ld_gen_params_init(gp);
    gp->prompt = ld_safetensors_meta_get(ref, "prompt");
    gp->negative_prompt = ld_safetensors_meta_get(ref, "negative_prompt");
    gp->width = atoi(ld_safetensors_meta_get(ref, "width"));
    gp->height = atoi(ld_safetensors_meta_get(ref, "height"));
    gp->prior_steps = atoi(ld_safetensors_meta_get(ref, "prior_steps"));
    gp->prior_cfg_scale = (float)atof(ld_safetensors_meta_get(ref, "prior_guidance_scale"));
    gp->steps = atoi(ld_safetensors_meta_get(ref, "decoder_steps"));
    gp->cfg_scale = (float)atof(ld_safetensors_meta_get(ref, "decoder_guidance_scale"));
    gp->replay_noise = ld_safetensors_path(ref);
}

/* Runs case j with the pipeline p; returns the image (caller frees). */
static ld_image run_case(ld_ctx *ctx, ld_pipeline *p, const char *td, int j, int full_checks) {
    char path[4096], dump[4096];
    ld_image img = {0};
    snprintf(path, sizeof path, "%s/cases/stable-cascade-tiny/pipeline%d.safetensors", td, j);
    ld_safetensors *ref;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return img;
    }
    snprintf(dump, sizeof dump, "%s/pipeline%d.dump.safetensors", test_tmp_dir("cascade"), j);
    ld_gen_params gp;
    fill_params(ref, &gp);
    gp.dump = dump;
    int calls = 0;
    gp.progress = count_progress;
    gp.progress_user = &calls;
    ld_gen_info info;
    int prior_steps = gp.prior_steps, steps = gp.steps;
    ld_status st = ld_generate(ctx, p, &gp, &img, &info);
    CHECK(st == LD_OK, "pipeline%d: %s", j, ld_ctx_error(ctx));
    CHECK(calls == 1 + prior_steps + steps + 1, "pipeline%d: %d progress calls (text, prior, decoder, vqgan)", j,
          calls);
    if (st != LD_OK) {
        ld_safetensors_close(ref);
        return img;
    }
    CHECK(info.prior_steps == prior_steps && info.steps == steps && info.width == gp.width &&
              info.height == gp.height && !strcmp(info.family, "stable-cascade"),
          "pipeline%d info", j);
    ld_safetensors *got;
    if (ld_safetensors_open(ctx, dump, &got) == LD_OK) {
        if (full_checks) {
            /* every reference key is in the dump */
            for (size_t i = 0; i < ld_safetensors_count(ref); i++) {
                const char *name = ld_safetensors_at(ref, i)->name;
                CHECK(ld_safetensors_find(got, name) != NULL, "pipeline%d dump lacks %s", j, name);
            }
            const char *emb[] = {"prior.prompt_embeds",
                                 "prior.prompt_embeds_pooled",
                                 "prior.negative_prompt_embeds",
                                 "prior.negative_prompt_embeds_pooled",
                                 "prior.timesteps",
                                 "decoder.timesteps"};
            for (int k = 0; k < 6; k++) {
                const ld_tensor *a = get(got, emb[k]), *b = get(ref, emb[k]);
                if (a && b && ld_tensor_numel(a) == ld_tensor_numel(b))
                    test_close(emb[k], a->data, b->data, ld_tensor_numel(b), 1e-4);
            }
            const ld_tensor *a = get(got, "prior.input_ids"), *b = get(ref, "prior.input_ids");
            CHECK(a && b && !memcmp(a->data, b->data, ld_tensor_nbytes(b)), "pipeline%d input_ids", j);
            a = get(got, "prior.attention_mask"), b = get(ref, "prior.attention_mask");
            CHECK(a && b && !memcmp(a->data, b->data, ld_tensor_nbytes(b)), "pipeline%d attention_mask", j);
            char name[64];
            snprintf(name, sizeof name, "prior.step0.latents");
            compare_latents(got, ref, name);
        }
        compare_latents(got, ref, "image_embeddings");
        char name[64];
        snprintf(name, sizeof name, "decoder.step%d.latents", steps - 1);
        compare_latents(got, ref, name);
        const ld_tensor *u8 = get(ref, "image_u8");
        if (u8 && ld_tensor_numel(u8) == (int64_t)img.width * img.height * 3) {
            char what[64];
            snprintf(what, sizeof what, "pipeline%d image_u8", j);
            compare_u8(img.pixels, u8->data, ld_tensor_numel(u8), what);
        } else {
            CHECK(0, "pipeline%d: image is %dx%d", j, img.width, img.height);
        }
        ld_safetensors_close(got);
    } else {
        CHECK(0, "%s", ld_ctx_error(ctx));
    }
    ld_safetensors_close(ref);
    return img;
}

/* ---- Stability naming: pack q/k/v into in_proj, rename out_proj, clip_mapper, codebook ---- */

typedef struct {
    const ld_safetensors *src;
    ld_st_write_entry *e;
    size_t n;
    char **names;
} conv_out;

static int ends(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static void add_entry(conv_out *o, const char *name, const ld_tensor *t, const void *data, int64_t rows) {
    ld_st_write_entry *e = &o->e[o->n];
    memset(e, 0, sizeof *e);
    o->names[o->n] = strdup(name);
    e->name = o->names[o->n];
    e->dtype = t->dtype;
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->shape[0] = rows;
    e->data = data;
    o->n++;
}

/* Writes dst in Stability naming from the diffusers file src. */
static int write_stability(ld_ctx *ctx, const char *src_path, const char *dst_path, int stage_b, int stage_a) {
    ld_safetensors *src;
    if (ld_safetensors_open(ctx, src_path, &src) != LD_OK) return 0;
    size_t n = ld_safetensors_count(src);
    conv_out o = {src, calloc(n, sizeof(ld_st_write_entry)), 0, calloc(n, sizeof(char *))};
    void **packed = calloc(n, sizeof(void *));
    size_t npacked = 0;
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *t = ld_safetensors_at(src, i);
        char name[512];
        snprintf(name, sizeof name, "%s", t->name);
        char *at = strstr(name, ".attention.to_");
        if (at && (ends(name, "to_q.weight") || ends(name, "to_q.bias"))) {
            /* Wq; Wk; Wv stacked on dim 0 */
            const char *kind = ends(name, "weight") ? "weight" : "bias";
            at[strlen(".attention.")] = 0;
            char kn[600], vn[600], out[600];
            snprintf(kn, sizeof kn, "%sto_k.%s", name, kind);
            snprintf(vn, sizeof vn, "%sto_v.%s", name, kind);
            const ld_tensor *k = ld_safetensors_find(src, kn), *v = ld_safetensors_find(src, vn);
            size_t nb = ld_tensor_nbytes(t);
            char *buf = malloc(3 * nb);
            memcpy(buf, t->data, nb);
            memcpy(buf + nb, k->data, nb);
            memcpy(buf + 2 * nb, v->data, nb);
            packed[npacked++] = buf;
            snprintf(out, sizeof out, "%sattn.in_proj_%s", name, kind);
            add_entry(&o, out, t, buf, 3 * t->shape[0]);
        } else if (at && (strstr(name, "to_k.") || strstr(name, "to_v."))) {
            continue; /* packed with to_q */
        } else if (at && strstr(name, "to_out.0.")) {
            char out[600];
            const char *kind = ends(name, "weight") ? "weight" : "bias";
            at[strlen(".attention.")] = 0;
            snprintf(out, sizeof out, "%sattn.out_proj.%s", name, kind);
            add_entry(&o, out, t, t->data, t->shape[0]);
        } else if (stage_b && !strncmp(name, "clip_txt_pooled_mapper.", 23)) {
            char out[600];
            snprintf(out, sizeof out, "clip_mapper.%s", name + 23);
            add_entry(&o, out, t, t->data, t->shape[0]);
        } else if (stage_a && !strcmp(name, "vquantizer.embedding.weight")) {
            add_entry(&o, "vquantizer.codebook.weight", t, t->data, t->shape[0]);
        } else {
            add_entry(&o, name, t, t->data, t->shape[0]);
        }
    }
    ld_status st = ld_safetensors_write(ctx, dst_path, o.e, o.n, NULL);
    CHECK(st == LD_OK, "write %s: %s", dst_path, ld_ctx_error(ctx));
    for (size_t i = 0; i < o.n; i++) free(o.names[i]);
    for (size_t i = 0; i < npacked; i++) free(packed[i]);
    free(packed);
    free(o.names);
    free(o.e);
    ld_safetensors_close(src);
    return st == LD_OK;
}

static void stability_files(ld_ctx *ctx, const char *td, const ld_image *want) {
    const char *tmp = test_tmp_dir("cascade");
    char c_path[4096], b_path[4096], a_path[4096], src[4200];
    snprintf(c_path, sizeof c_path, "%s/stage_c.safetensors", tmp);
    snprintf(b_path, sizeof b_path, "%s/stage_b.safetensors", tmp);
    snprintf(a_path, sizeof a_path, "%s/stage_a.safetensors", tmp);
    snprintf(src, sizeof src, "%s/prior/diffusion_pytorch_model.safetensors", prior_dir);
    if (!write_stability(ctx, src, c_path, 0, 0)) return;
    snprintf(src, sizeof src, "%s/decoder/diffusion_pytorch_model.safetensors", decoder_dir);
    if (!write_stability(ctx, src, b_path, 1, 0)) return;
    snprintf(src, sizeof src, "%s/vqgan/diffusion_pytorch_model.safetensors", decoder_dir);
    if (!write_stability(ctx, src, a_path, 0, 1)) return;
    /* the converted files really use the other names */
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, b_path, &st) == LD_OK) {
        CHECK(ld_safetensors_find(st, "clip_mapper.weight") &&
                  ld_safetensors_find(st, "down_blocks.2.2.attention.attn.in_proj_weight") &&
                  !ld_safetensors_find(st, "down_blocks.2.2.attention.to_q.weight"),
              "stage_b naming");
        ld_safetensors_close(st);
    }
    /* the aliases are views into the packed tensor, not copies */
    ld_weights *ws;
    if (ld_weights_open_file(ctx, c_path, &ws) == LD_OK) {
        CHECK(ld_stability_alias_unet(ctx, ws) == LD_OK, "alias: %s", ld_ctx_error(ctx));
        const ld_tensor *packed = ld_weights_find(ws, "down_blocks.0.2.attention.attn.in_proj_weight");
        const ld_tensor *k = ld_weights_find(ws, "down_blocks.0.2.attention.to_k.weight");
        const ld_tensor *bv = ld_weights_find(ws, "up_blocks.1.2.attention.to_v.bias");
        const ld_tensor *o = ld_weights_find(ws, "up_blocks.1.2.attention.to_out.0.weight");
        CHECK(packed && k && bv && o && k->ndim == 2 && k->shape[0] == packed->shape[0] / 3 &&
                  k->shape[1] == packed->shape[1] &&
                  (const char *)k->data == (const char *)packed->data + ld_tensor_nbytes(k) && bv->shape[0] == 64,
              "stage_c aliases");
        ld_weights_free(ws);
    }
    ld_pipeline_options opt = {.model_dir = prior_dir,
                               .decoder_dir = decoder_dir,
                               .prior_weights = c_path,
                               .decoder_weights = b_path,
                               .vqgan_weights = a_path};
    ld_pipeline *p;
    ld_status s = ld_pipeline_open(ctx, &opt, &p);
    CHECK(s == LD_OK, "open with Stability files: %s", ld_ctx_error(ctx));
    if (s != LD_OK) return;
    ld_image img = run_case(ctx, p, td, 0, 0);
    CHECK(img.pixels && want->pixels && img.width == want->width && img.height == want->height &&
              !memcmp(img.pixels, want->pixels, (size_t)img.width * img.height * 3),
          "Stability single files give the identical image");
    ld_image_free(&img);
    ld_pipeline_free(p);
}

/* ---- errors ---- */

static void expect_open_error(ld_ctx *ctx, const ld_pipeline_options *opt, const char *substr) {
    ld_pipeline *p = NULL;
    ld_status s = ld_pipeline_open(ctx, opt, &p);
    CHECK(s != LD_OK && p == NULL && strstr(ld_ctx_error(ctx), substr), "open: expected error with '%s', got '%s'",
          substr, s == LD_OK ? "success" : ld_ctx_error(ctx));
    ld_pipeline_free(p);
    ld_ctx_clear_error(ctx);
}

static void errors(ld_ctx *ctx, const char *td, ld_pipeline *p) {
    ld_pipeline_options opt = {.model_dir = prior_dir};
    expect_open_error(ctx, &opt, "decoder folder");
    opt.decoder_dir = prior_dir;
    expect_open_error(ctx, &opt, "StableCascadeDecoderPipeline");
    opt.decoder_dir = decoder_dir;
    opt.prior_weights = "/nonexistent/stage_c.safetensors";
    expect_open_error(ctx, &opt, "/nonexistent/stage_c.safetensors");
    opt.prior_weights = NULL;
    char wrong[4200]; /* the decoder's weights as a prior */
    snprintf(wrong, sizeof wrong, "%s/decoder/diffusion_pytorch_model.safetensors", decoder_dir);
    opt.prior_weights = wrong;
    expect_open_error(ctx, &opt, "embedding.1.weight");

    ld_gen_params gp;
    ld_image img;
    ld_gen_params_init(&gp);
    gp.prompt = "x";
    gp.width = 64; /* 64/42.67 -> 2 -> int(2 * 10.67) = 21: odd, no patches of 2 */
    gp.height = 128;
    ld_status s = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(s == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "64x128"), "bad size: %s", ld_ctx_error(ctx));
    ld_ctx_clear_error(ctx);

    char path[4096];
    snprintf(path, sizeof path, "%s/cases/stable-cascade-tiny/pipeline0.safetensors", td);
    gp.width = 256; /* the replay file's latents are for 128x128 */
    gp.replay_noise = path;
    s = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(s == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "prior.latents0"), "replay shape: %s",
          ld_ctx_error(ctx));
    ld_ctx_clear_error(ctx);

    gp.width = 128;
    gp.prior_steps = 6; /* more steps than the replay file has noise for */
    s = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(s == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "prior.step4.noise"), "replay missing: %s",
          ld_ctx_error(ctx));
    ld_ctx_clear_error(ctx);

    int calls = 0;
    gp.replay_noise = NULL;
    gp.prior_steps = 3;
    gp.progress = cancel_at_prior_2;
    gp.progress_user = &calls;
    s = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(s == LD_ERR_CANCELLED && img.pixels == NULL && calls == 3, "cancel: %s (%d calls)", ld_ctx_error(ctx), calls);
    ld_ctx_clear_error(ctx);
}

/* Without replay the RNG drives the run: same seed, same image; defaults resolved. */
static void seeded(ld_ctx *ctx, ld_pipeline *p) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a red apple";
    gp.width = gp.height = 128;
    gp.prior_steps = 2;
    gp.steps = 2;
    gp.seed = 7;
    ld_image a = {0}, b = {0};
    ld_gen_info info;
    CHECK(ld_generate(ctx, p, &gp, &a, &info) == LD_OK, "seeded: %s", ld_ctx_error(ctx));
    CHECK(info.prior_cfg_scale == 4.0f && info.cfg_scale == 0.0f && info.seed == 7, "defaults");
    CHECK(ld_generate(ctx, p, &gp, &b, NULL) == LD_OK, "seeded: %s", ld_ctx_error(ctx));
    CHECK(a.pixels && b.pixels && !memcmp(a.pixels, b.pixels, 128 * 128 * 3), "same seed, same image");
    /* decoder guidance without prior guidance: the negative is encoded for the
     * decoder only (no prior.negative_* in the dump), and changes the image */
    char dump[4200];
    snprintf(dump, sizeof dump, "%s/decoder_cfg_only.safetensors", test_tmp_dir("cascade"));
    ld_image c = {0};
    gp.prior_cfg_scale = 0.0f;
    gp.cfg_scale = 2.0f;
    gp.negative_prompt = "blurry";
    gp.dump = dump;
    CHECK(ld_generate(ctx, p, &gp, &c, &info) == LD_OK, "decoder cfg only: %s", ld_ctx_error(ctx));
    ld_safetensors *st;
    if (c.pixels && ld_safetensors_open(ctx, dump, &st) == LD_OK) {
        CHECK(!ld_safetensors_find(st, "prior.negative_prompt_embeds") &&
                  ld_safetensors_find(st, "prior.prompt_embeds"),
              "decoder cfg only: dump keys");
        ld_safetensors_close(st);
    }
    CHECK(c.pixels && memcmp(a.pixels, c.pixels, 128 * 128 * 3) != 0, "decoder cfg only changes the image");
    ld_image_free(&a);
    ld_image_free(&b);
    ld_image_free(&c);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    snprintf(prior_dir, sizeof prior_dir, "%.4000s/models/stable-cascade-prior-tiny", td);
    snprintf(decoder_dir, sizeof decoder_dir, "%.4000s/models/stable-cascade-tiny", td);
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline_options opt = {.model_dir = prior_dir, .decoder_dir = decoder_dir};
    ld_pipeline *p;
    ld_status s = ld_pipeline_open(ctx, &opt, &p);
    CHECK(s == LD_OK, "open: %s", ld_ctx_error(ctx));
    if (s == LD_OK) {
        CHECK(!strcmp(ld_pipeline_family(p), "stable-cascade"), "family");
        ld_image img0 = run_case(ctx, p, td, 0, 1);
        ld_image img1 = run_case(ctx, p, td, 1, 1);
        stability_files(ctx, td, &img0);
        ld_image_free(&img0);
        ld_image_free(&img1);
        errors(ctx, td, p);
        seeded(ctx, p);
        test_halves_cancel(ctx, p);
        ld_pipeline_free(p);
        test_halves(ctx, prior_dir, decoder_dir, "cascade");
    }
    ld_ctx_free(ctx);
    return test_finish();
}
