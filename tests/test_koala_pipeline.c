/* The SDXL/KOALA pipeline end to end against diffusers' StableDiffusionXLPipeline:
 * every case of testdata/cases/koala-{700m,1b}-tiny/pipeline*.safetensors is
 * replayed (its latents0 / step noise) through ld_generate with a dump, and
 * every dumped tensor is compared with the case; one case also goes through
 * the real CLI (`leandiff generate ... --replay-noise --dump`). Then the
 * behaviours the cases do not cover: an explicit "" negative prompt is
 * encoded while no negative prompt gives zeros, seeds are reproducible,
 * cancellation, and parameter errors. */
#include "io/fileio.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "test_util.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static const ld_tensor *find(const ld_safetensors *st, const char *name) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t != NULL, "%s: tensor '%s' missing", ld_safetensors_path(st), name);
    return t;
}

static int same_shape(const ld_tensor *a, const ld_tensor *b, const char *what) {
    int ok = a && b && ld_shape_equal(a->ndim, a->shape, b->ndim, b->shape) && a->dtype == b->dtype;
    CHECK(ok, "%s: shape or dtype differs", what);
    return ok;
}

static void compare_u8(const char *what, const uint8_t *got, const uint8_t *ref, int64_t n) {
    int64_t equal = 0;
    int maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        if (d == 0) equal++;
        if (d > maxd) maxd = d;
    }
    double frac = (double)equal / (double)n;
    printf("%s %s: %.4f%% equal, max |diff| %d\n", frac >= 0.99 && maxd <= 2 ? "ok  " : "FAIL", what, 100 * frac, maxd);
    CHECK(frac >= 0.99 && maxd <= 2, "%s: %.4f equal, max diff %d", what, frac, maxd);
}

/* Compares a dump with the reference case, key by key. */
static void compare_dump(const char *dump_path, const ld_safetensors *ref, int steps) {
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *got;
    if (ld_safetensors_open(ctx, dump_path, &got) != LD_OK) {
        CHECK(0, "cannot open the dump: %s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return;
    }
    const char *ids[] = {"ids1", "ids2"};
    for (int i = 0; i < 2; i++) {
        const ld_tensor *a = find(got, ids[i]), *b = find(ref, ids[i]);
        if (same_shape(a, b, ids[i]))
            CHECK(!memcmp(a->data, b->data, ld_tensor_nbytes(b)), "%s: token ids differ", ids[i]);
    }
    /* text side and exact inputs: module tolerance */
    const char *mods[] = {"prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds",
                          "negative_pooled_prompt_embeds", "time_ids", "timesteps"};
    for (int i = 0; i < 6; i++) {
        const ld_tensor *a = find(got, mods[i]), *b = find(ref, mods[i]);
        if (same_shape(a, b, mods[i])) test_close(mods[i], a->data, b->data, ld_tensor_numel(b), 1e-4);
    }
    /* latents after each step, final latents, decoded image: relative L2 */
    for (int i = 0; i <= steps + 1; i++) {
        char name[64];
        if (i < steps) snprintf(name, sizeof name, "step%d.latents", i);
        else snprintf(name, sizeof name, i == steps ? "final_latents" : "image");
        const ld_tensor *a = find(got, name), *b = find(ref, name);
        if (!same_shape(a, b, name)) continue;
        double e = test_rel_l2(a->data, b->data, ld_tensor_numel(b));
        printf("%s %s: relative L2 %.3g\n", e <= 1e-3 ? "ok  " : "FAIL", name, e);
        CHECK(e <= 1e-3, "%s: relative L2 %.3g > 1e-3", name, e);
    }
    const ld_tensor *a = find(got, "image_u8"), *b = find(ref, "image_u8");
    if (same_shape(a, b, "image_u8")) compare_u8("image_u8", a->data, b->data, ld_tensor_numel(b));
    ld_safetensors_close(got);
    ld_ctx_free(ctx);
}

typedef struct {
    const char *prompt, *negative, *sampler;
    int steps, width, height;
    float cfg;
} case_meta;

static case_meta read_meta(const ld_safetensors *st) {
    case_meta m;
    m.prompt = ld_safetensors_meta_get(st, "prompt");
    const char *none = ld_safetensors_meta_get(st, "negative_is_none");
    m.negative = none && !strcmp(none, "true") ? NULL : ld_safetensors_meta_get(st, "negative_prompt");
    m.sampler = ld_safetensors_meta_get(st, "sampler");
    m.steps = atoi(ld_safetensors_meta_get(st, "steps"));
    m.cfg = (float)atof(ld_safetensors_meta_get(st, "guidance_scale"));
    m.width = atoi(ld_safetensors_meta_get(st, "width"));
    m.height = atoi(ld_safetensors_meta_get(st, "height"));
    return m;
}

static void run_library_case(ld_pipeline *pipe, const char *case_path, const char *tmp, const char *tag) {
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *ref;
    if (ld_safetensors_open(ctx, case_path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return;
    }
    case_meta m = read_meta(ref);
    printf("== %s: '%s' negative %s%s%s, %d steps, cfg %g, %s, %dx%d\n", tag, m.prompt, m.negative ? "'" : "",
           m.negative ? m.negative : "none", m.negative ? "'" : "", m.steps, m.cfg, m.sampler, m.width, m.height);
    char dump[4200];
    snprintf(dump, sizeof dump, "%s/%s.dump.safetensors", tmp, tag);
    remove(dump);
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = m.prompt;
    gp.negative_prompt = m.negative;
    gp.steps = m.steps;
    gp.cfg_scale = m.cfg;
    gp.sampler = m.sampler;
    gp.width = m.width;
    gp.height = m.height;
    gp.seed = 7;
    gp.replay_noise = case_path;
    gp.dump = dump;
    ld_image img;
    ld_gen_info info;
    if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK) {
        CHECK(0, "%s: %s", tag, ld_ctx_error(ctx));
    } else {
        CHECK(img.width == m.width && img.height == m.height && img.channels == 3, "image size %dx%d", img.width,
              img.height);
        CHECK(info.steps == m.steps && info.cfg_scale == m.cfg && !strcmp(info.sampler, m.sampler) &&
                  info.width == m.width && info.seed == 7 && !strcmp(info.family, "sdxl"),
              "gen info: %d steps, cfg %g, %s, %dx%d", info.steps, info.cfg_scale, info.sampler, info.width,
              info.height);
        const ld_tensor *u8 = ld_safetensors_find(ref, "image_u8");
        if (u8 && ld_tensor_numel(u8) == (int64_t)img.width * img.height * 3)
            compare_u8("returned pixels", img.pixels, u8->data, ld_tensor_numel(u8));
        ld_image_free(&img);
        compare_dump(dump, ref, m.steps);
    }
    ld_safetensors_close(ref);
    ld_ctx_free(ctx);
}

static void shell_quote(char *out, size_t n, const char *s) {
    size_t o = 0;
    out[o++] = '\'';
    for (; *s && o + 5 < n; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    out[o++] = '\'';
    out[o] = 0;
}

/* One case through the real program, then the dump and the PNG metadata. */
static void run_cli_case(const char *model, const char *case_path, const char *tmp) {
    const char *bin = getenv("LEANDIFF_BIN");
    if (!bin) {
        printf("LEANDIFF_BIN not set: CLI case skipped\n");
        return;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *ref;
    if (ld_safetensors_open(ctx, case_path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return;
    }
    case_meta m = read_meta(ref);
    char qp[1024], qn[1024], dump[4200], png[4200], cmd[16384];
    shell_quote(qp, sizeof qp, m.prompt);
    snprintf(dump, sizeof dump, "%s/cli.dump.safetensors", tmp);
    snprintf(png, sizeof png, "%s/cli.png", tmp);
    remove(dump);
    remove(png);
    int o = snprintf(cmd, sizeof cmd, "'%s' generate -m '%s' -p %s --steps %d --cfg-scale %g --sampler %s -W %d -H %d "
                     "--replay-noise '%s' --dump '%s' -o '%s' -s 123 -t 2",
                     bin, model, qp, m.steps, m.cfg, m.sampler, m.width, m.height, case_path, dump, png);
    if (m.negative) {
        shell_quote(qn, sizeof qn, m.negative);
        snprintf(cmd + o, sizeof cmd - (size_t)o, " -n %s", qn);
    }
    printf("== CLI: %s\n", cmd);
    int rc = system(cmd);
    CHECK(rc == 0, "CLI exit status %d", rc);
    if (rc == 0) {
        compare_dump(dump, ref, m.steps);
        ld_png p;
        if (ld_png_read(ctx, png, 1, &p) != LD_OK) {
            CHECK(0, "%s", ld_ctx_error(ctx));
        } else {
            const ld_tensor *u8 = ld_safetensors_find(ref, "image_u8");
            CHECK(p.width == m.width && p.height == m.height, "PNG size %dx%d", p.width, p.height);
            if (u8 && p.rgb && ld_tensor_numel(u8) == (int64_t)p.width * p.height * 3)
                compare_u8("PNG pixels", p.rgb, u8->data, ld_tensor_numel(u8));
            const char *params = ld_png_text(&p, "parameters");
            char want[512];
            /* the replay file, not the seed (-s 123 was never drawn) */
            char noise[4400];
            snprintf(want, sizeof want, "Steps: %d, Sampler: %s, CFG scale: %g, Size: %dx%d, Model: %s",
                     m.steps, !strcmp(m.sampler, "euler_a") ? "Euler a" : "Euler", m.cfg, m.width, m.height,
                     strrchr(model, '/') + 1);
            snprintf(noise, sizeof noise, "Precision: f32, Noise file: %s, RNG: NV", case_path);
            CHECK(params && !strncmp(params, m.prompt, strlen(m.prompt)) && strstr(params, want) &&
                      strstr(params, noise) && !strstr(params, "Seed:"),
                  "parameters chunk:\n%s\nshould contain:\n%s\n%s", params ? params : "(missing)", want, noise);
            if (m.negative) {
                char negline[512];
                snprintf(negline, sizeof negline, "\nNegative prompt: %s\n", m.negative);
                CHECK(params && strstr(params, negline), "no negative prompt line in:\n%s", params);
            }
            ld_png_free(&p);
        }
    }
    ld_safetensors_close(ref);
    ld_ctx_free(ctx);
}

static int progress_cancel(void *user, const char *stage, int step, int total, double secs) {
    (void)stage, (void)step, (void)total, (void)secs;
    return ++*(int *)user >= 2;
}

/* Behaviours beyond the reference cases, on the 700M tiny model at 64x64. */
static void behaviours(ld_pipeline *pipe, const char *tmp) {
    ld_ctx *ctx = ld_ctx_new();
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a small test";
    gp.width = gp.height = 64;
    gp.steps = 2;
    gp.cfg_scale = 4.0f;
    char d1[4200], d2[4200];
    snprintf(d1, sizeof d1, "%s/neg-none.safetensors", tmp);
    snprintf(d2, sizeof d2, "%s/neg-empty.safetensors", tmp);
    ld_image a, b, c;
    ld_gen_info info;
    /* no negative prompt: zeros; "" : encoded (nonzero) */
    gp.dump = d1;
    gp.seed = 5;
    CHECK(ld_generate(ctx, pipe, &gp, &a, &info) == LD_OK, "%s", ld_ctx_error(ctx));
    gp.negative_prompt = "";
    gp.dump = d2;
    CHECK(ld_generate(ctx, pipe, &gp, &b, &info) == LD_OK, "%s", ld_ctx_error(ctx));
    ld_safetensors *s1 = NULL, *s2 = NULL;
    if (ld_safetensors_open(ctx, d1, &s1) == LD_OK && ld_safetensors_open(ctx, d2, &s2) == LD_OK) {
        const ld_tensor *z = ld_safetensors_find(s1, "negative_prompt_embeds");
        const ld_tensor *e = ld_safetensors_find(s2, "negative_prompt_embeds");
        const ld_tensor *zp = ld_safetensors_find(s1, "negative_pooled_prompt_embeds");
        double sz = 0, se = 0;
        for (int64_t i = 0; z && i < ld_tensor_numel(z); i++) sz += fabs(((float *)z->data)[i]);
        for (int64_t i = 0; zp && i < ld_tensor_numel(zp); i++) sz += fabs(((float *)zp->data)[i]);
        for (int64_t i = 0; e && i < ld_tensor_numel(e); i++) se += fabs(((float *)e->data)[i]);
        CHECK(z && zp && e && sz == 0.0 && se > 0.0, "uncond: none -> sum|.| %g (want 0), \"\" -> %g (want > 0)", sz, se);
        const ld_tensor *l1 = ld_safetensors_find(s1, "latents0"), *l2 = ld_safetensors_find(s2, "latents0");
        CHECK(l1 && l2 && !memcmp(l1->data, l2->data, ld_tensor_nbytes(l1)), "same seed, different initial noise");
    } else {
        CHECK(0, "%s", ld_ctx_error(ctx));
    }
    ld_safetensors_close(s1);
    ld_safetensors_close(s2);
    ld_image_free(&b);
    /* the same seed reproduces the image exactly, another seed changes it */
    gp.negative_prompt = NULL;
    gp.dump = NULL;
    CHECK(ld_generate(ctx, pipe, &gp, &b, &info) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(a.pixels && b.pixels && !memcmp(a.pixels, b.pixels, 64 * 64 * 3), "seed 5 twice: different images");
    gp.seed = 6;
    CHECK(ld_generate(ctx, pipe, &gp, &c, &info) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(a.pixels && c.pixels && memcmp(a.pixels, c.pixels, 64 * 64 * 3) != 0, "seeds 5 and 6: same image");
    ld_image_free(&a);
    ld_image_free(&b);
    ld_image_free(&c);
    /* defaults of a non-Lightning folder: 25 steps, CFG 7.5, size sample_size*8, euler */
    ld_gen_params_init(&gp);
    gp.prompt = "defaults";
    gp.steps = 1;
    CHECK(ld_generate(ctx, pipe, &gp, &a, &info) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(info.cfg_scale == 7.5f && !strcmp(info.sampler, "euler") && info.width == 128 && info.height == 128,
          "defaults: cfg %g sampler %s size %dx%d", info.cfg_scale, info.sampler, info.width, info.height);
    ld_image_free(&a);
    /* cancellation from the progress callback: no image */
    int calls = 0;
    gp.progress = progress_cancel;
    gp.progress_user = &calls;
    gp.width = gp.height = 64;
    ld_status st = ld_generate(ctx, pipe, &gp, &a, &info);
    CHECK(st == LD_ERR_CANCELLED && a.pixels == NULL, "cancel: status %d", st);
    gp.progress = NULL;
    /* parameter errors name the problem */
    gp.width = 100;
    st = ld_generate(ctx, pipe, &gp, &a, &info);
    CHECK(st == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "multiples of 8"), "width 100: %s",
          ld_ctx_error(ctx));
    gp.width = 64;
    gp.sampler = "dpm++";
    st = ld_generate(ctx, pipe, &gp, &a, &info);
    CHECK(st == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "dpm++"), "sampler: %s", ld_ctx_error(ctx));
    gp.sampler = NULL;
    gp.prompt = "bad utf-8 \xff";
    st = ld_generate(ctx, pipe, &gp, &a, &info);
    CHECK(st == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), "prompt"), "bad UTF-8: %s", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
}

/* A copy of a model folder made of symlinks, optionally with another
 * scheduler config (timestep_spacing), a model card (README.md title) or a
 * model_index.json with a _name_or_path. */
static int link_model(const char *src, const char *dst, const char *spacing, const char *card_title,
                      const char *name_or_path) {
    const char *parts[] = {"model_index.json", "tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2",
                           "unet", "vae", "scheduler"};
    char a[4400], b[4400], abs_src[PATH_MAX];
    if (!realpath(src, abs_src)) return 0; /* symlink targets must be absolute */
    src = abs_src;
    mkdir(dst, 0755);
    for (int i = 0; i < 8; i++) {
        snprintf(a, sizeof a, "%s/%s", src, parts[i]);
        snprintf(b, sizeof b, "%s/%s", dst, parts[i]);
        remove(b);
        if (i == 7 && spacing) {
            mkdir(b, 0755);
            snprintf(b, sizeof b, "%s/scheduler/scheduler_config.json", dst);
            FILE *f = fopen(b, "w");
            if (!f) return 0;
            fprintf(f, "{\"_class_name\": \"EulerDiscreteScheduler\", \"num_train_timesteps\": 1000, "
                       "\"beta_start\": 0.00085, \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
                       "\"prediction_type\": \"epsilon\", \"timestep_spacing\": \"%s\", \"steps_offset\": 1}\n",
                    spacing);
            fclose(f);
        } else if (i == 0 && name_or_path) {
            ld_ctx *ctx = ld_ctx_new();
            char *text = NULL;
            size_t n = 0;
            FILE *f = ld_read_file(ctx, a, &text, &n, 1 << 20) == LD_OK ? fopen(b, "w") : NULL;
            ld_ctx_free(ctx);
            char *brace = text ? strchr(text, '{') : NULL;
            if (!f || !brace) {
                free(text);
                if (f) fclose(f);
                return 0;
            }
            fprintf(f, "{\"_name_or_path\": \"%s\", %s", name_or_path, brace + 1);
            fclose(f);
            free(text);
        } else if (symlink(a, b) != 0) {
            return 0;
        }
    }
    snprintf(b, sizeof b, "%s/README.md", dst);
    remove(b);
    if (card_title) {
        FILE *f = fopen(b, "w");
        if (!f) return 0;
        fprintf(f, "---\nlicense: other\n---\n%s\n\nA card that mentions KOALA-700M too.\n", card_title);
        fclose(f);
    }
    return 1;
}

/* KOALA-Lightning defaults come from the model's own files, never the folder
 * name: a scheduler config that says trailing, a model_index.json
 * _name_or_path or a model card title naming Lightning (the stored config
 * "leading", overridden to trailing) run 10 steps at CFG 3.5 with timesteps
 * 999, 899, ..., 99; a plain copy named my-Lightning-copy (issue 16) and a
 * card that mentions Lightning only below its title keep 25 steps at 7.5. */
static void lightning_defaults(const char *model, const char *tmp) {
    static const struct {
        const char *name, *spacing, *card, *name_or_path;
        int lightning;
    } cases[] = {
        {"my-Lightning-copy", NULL, NULL, NULL, 0},
        {"trailing-tiny", "trailing", NULL, NULL, 1},
        {"card-tiny", NULL, "# KOALA-Lightning-700M Model Card", NULL, 1},
        {"index-tiny", NULL, NULL, "etri-vilab/koala-lightning-700m", 1},
        {"other-card-tiny", NULL, "# KOALA-700M Model Card\n\nSee also KOALA-Lightning-700M.", NULL, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ld_ctx *ctx = ld_ctx_new();
        char dir[4300], dump[4300];
        snprintf(dir, sizeof dir, "%s/%s", tmp, cases[k].name);
        snprintf(dump, sizeof dump, "%s/%s.dump.safetensors", tmp, cases[k].name);
        CHECK(link_model(model, dir, cases[k].spacing, cases[k].card, cases[k].name_or_path), "cannot make %s", dir);
        ld_pipeline_options po = {.model_dir = dir, .vae_tiling = -1};
        ld_pipeline *pipe;
        if (ld_pipeline_open(ctx, &po, &pipe) != LD_OK) {
            CHECK(0, "%s", ld_ctx_error(ctx));
            ld_ctx_free(ctx);
            continue;
        }
        ld_gen_params gp;
        ld_gen_params_init(&gp);
        gp.prompt = "lightning";
        gp.width = gp.height = 32;
        gp.dump = dump;
        ld_image img;
        ld_gen_info info;
        ld_safetensors *st = NULL;
        if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK || ld_safetensors_open(ctx, dump, &st) != LD_OK) {
            CHECK(0, "%s: %s", cases[k].name, ld_ctx_error(ctx));
        } else {
            const ld_tensor *ts = ld_safetensors_find(st, "timesteps");
            const int want = cases[k].lightning ? 10 : 25;
            int trailing = ts && ld_tensor_numel(ts) == 10;
            for (int i = 0; trailing && i < 10; i++) trailing = ((const float *)ts->data)[i] == 999.0f - 100.0f * i;
            CHECK(info.steps == want && info.cfg_scale == (cases[k].lightning ? 3.5f : 7.5f) &&
                      trailing == cases[k].lightning,
                  "%s: %d steps, cfg %g, trailing timesteps %s", cases[k].name, info.steps, info.cfg_scale,
                  trailing ? "yes" : "no");
            CHECK(!strcmp(info.timestep_spacing, cases[k].lightning ? "trailing" : "leading"), "%s: spacing %s",
                  cases[k].name, info.timestep_spacing);
            ld_image_free(&img);
        }
        ld_safetensors_close(st);
        ld_pipeline_free(pipe);
        ld_ctx_free(ctx);
    }
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    const char *tmp = test_tmp_dir("koala_pipeline");
    const char *models[] = {"koala-700m-tiny", "koala-1b-tiny"};
    for (int mi = 0; mi < 2; mi++) {
        ld_ctx *ctx = ld_ctx_new();
        char model[4200];
        snprintf(model, sizeof model, "%s/models/%s", td, models[mi]);
        ld_pipeline_options po = {.model_dir = model, .vae_tiling = -1};
        ld_pipeline *pipe;
        if (ld_pipeline_open(ctx, &po, &pipe) != LD_OK) {
            CHECK(0, "%s", ld_ctx_error(ctx));
            ld_ctx_free(ctx);
            continue;
        }
        CHECK(!strcmp(ld_pipeline_family(pipe), "sdxl") && !strcmp(ld_pipeline_model_name(pipe), models[mi]),
              "family %s name %s", ld_pipeline_family(pipe), ld_pipeline_model_name(pipe));
        int ncases = 0;
        for (int j = 0; j < 10; j++) {
            char path[4300], tag[64];
            snprintf(path, sizeof path, "%s/cases/%s/pipeline%d.safetensors", td, models[mi], j);
            FILE *f = fopen(path, "rb");
            if (!f) continue;
            fclose(f);
            snprintf(tag, sizeof tag, "%s.pipeline%d", models[mi], j);
            run_library_case(pipe, path, tmp, tag);
            ncases++;
            if (mi == 0 && j == 1) run_cli_case(model, path, tmp);
        }
        CHECK(ncases >= 1, "%s: no pipeline cases", models[mi]);
        if (mi == 0) behaviours(pipe, tmp);
        if (mi == 0) lightning_defaults(model, tmp);
        ld_pipeline_free(pipe);
        ld_ctx_free(ctx);
    }
    return test_finish();
}
