/* A1111 prompt syntax through the KOALA pipeline (tiny koala-700m model of the
 * testdata), checked against plain (diffusers) encodings of the same texts:
 *   - a 100-word prompt gives two chunks: prompt_embeds [1, 154, D] whose
 *     first 77 rows equal the plain encoding of its first 75 words and whose
 *     last 77 equal the plain encoding of the other 25, bit for bit;
 *   - a weighted word multiplies its row of each encoder's hidden states, and
 *     each encoder's chunk is rescaled to its unweighted mean (computed here
 *     plainly in double from the plain encoding);
 *   - plain mode truncates at 75 tokens ([1, 77, D]) and ignores brackets;
 *   - the pooled embedding is the first chunk's;
 *   - the infotext records the syntax; a bad syntax name is refused. */
#include "io/json.h"
#include "io/safetensors.h"
#include "leandiff.h"
#include "test_koala_tiny.h"

typedef struct {
    ld_safetensors *st;
    const float *embeds, *pooled;
    int64_t L, D;
} dump_t;

static int run(ld_ctx *ctx, ld_pipeline *pipe, const char *prompt, const char *syntax, const char *path, dump_t *d) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = prompt;
    gp.prompt_syntax = syntax;
    gp.steps = 1;
    gp.cfg_scale = 1.0f; /* no CFG: only the prompt is encoded */
    gp.width = gp.height = 64;
    gp.dump = path;
    remove(path);
    ld_image img;
    ld_gen_info info;
    memset(d, 0, sizeof *d);
    if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK) {
        CHECK(0, "%s (%s): %s", prompt, syntax, ld_ctx_error(ctx));
        return 0;
    }
    CHECK(!strcmp(info.prompt_syntax, syntax), "gen info syntax %s", info.prompt_syntax);
    ld_image_free(&img);
    if (ld_safetensors_open(ctx, path, &d->st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return 0;
    }
    const ld_tensor *e = ld_safetensors_find(d->st, "prompt_embeds"), *p = ld_safetensors_find(d->st, "pooled_prompt_embeds");
    CHECK(e && p && e->ndim == 3, "dump has prompt_embeds and pooled_prompt_embeds");
    if (!e || !p || e->ndim != 3) return 0;
    d->embeds = e->data;
    d->pooled = p->data;
    d->L = e->shape[1];
    d->D = e->shape[2];
    return 1;
}

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char model[4200], path[4300];
    snprintf(model, sizeof model, "%s/models/koala-700m-tiny", td);
    const char *tmp = test_tmp_dir("prompt_pipeline");
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *pipe = test_open_tiny_koala(ctx, td);
    if (!pipe) return test_finish();
    /* the width of text_encoder's part of the features */
    snprintf(path, sizeof path, "%s/text_encoder/config.json", model);
    json_t *cfg = NULL;
    int64_t D1 = 0;
    CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK && ld_json_int_req(ctx, path, cfg, "hidden_size", &D1) == LD_OK,
          "text_encoder hidden_size");
    json_decref(cfg);

    char words100[1024] = "", words75[1024] = "", words25[512] = "";
    const char *w[] = {"koala", "tree", "leaf", "sky", "river"};
    for (int i = 0; i < 100; i++) {
        char *dst = i < 75 ? words75 : words25;
        strcat(dst, w[i % 5]);
        strcat(dst, " ");
        strcat(words100, w[i % 5]);
        strcat(words100, " ");
    }
    dump_t a, p75, p25, plain100;
    char pa[4300], pb[4300], pc[4300], pd[4300];
    snprintf(pa, sizeof pa, "%s/a1111_100.safetensors", tmp);
    snprintf(pb, sizeof pb, "%s/plain_75.safetensors", tmp);
    snprintf(pc, sizeof pc, "%s/plain_25.safetensors", tmp);
    snprintf(pd, sizeof pd, "%s/plain_100.safetensors", tmp);
    if (run(ctx, pipe, words100, "a1111", pa, &a) && run(ctx, pipe, words75, "plain", pb, &p75) &&
        run(ctx, pipe, words25, "plain", pc, &p25) && run(ctx, pipe, words100, "plain", pd, &plain100)) {
        const size_t chunk = (size_t)77 * (size_t)a.D;
        int ok = a.L == 154 && p75.L == 77 && plain100.L == 77 && same(a.embeds, p75.embeds, chunk) &&
                 same(a.embeds + chunk, p25.embeds, chunk) &&
                 same(plain100.embeds, p75.embeds, chunk);
        CHECK(ok, "100 words: a1111 L %lld, plain L %lld", (long long)a.L, (long long)plain100.L);
        printf("%s 100 words: a1111 gives 2 chunks equal to the plain encodings of words 1-75 and 76-100; plain "
               "truncates at 75\n",
               ok ? "ok  " : "FAIL");
        const ld_tensor *pa_t = ld_safetensors_find(a.st, "pooled_prompt_embeds");
        CHECK(pa_t && same(a.pooled, p75.pooled, (size_t)ld_tensor_numel(pa_t)), "pooled from the first chunk");
    }
    ld_safetensors_close(a.st);
    ld_safetensors_close(p75.st);
    ld_safetensors_close(p25.st);
    ld_safetensors_close(plain100.st);

    /* "a (koala:1.5) in a tree": tokens BOS a koala in a tree EOS -> koala is row 2 */
    dump_t wt, pl, br;
    snprintf(pa, sizeof pa, "%s/weighted.safetensors", tmp);
    snprintf(pb, sizeof pb, "%s/unweighted.safetensors", tmp);
    snprintf(pc, sizeof pc, "%s/brackets_plain.safetensors", tmp);
    if (run(ctx, pipe, "a (koala:1.5) in a tree", "a1111", pa, &wt) && run(ctx, pipe, "a koala in a tree", "plain", pb, &pl) &&
        run(ctx, pipe, "a (koala:1.5) in a tree", "plain", pc, &br)) {
        const int64_t L = 77, D = pl.D, D2 = D - D1;
        float *ref = malloc(sizeof(float) * (size_t)(L * D));
        for (int part = 0; part < 2; part++) {
            const int64_t off = part ? D1 : 0, width = part ? D2 : D1;
            double before = 0, after = 0;
            for (int64_t t = 0; t < L; t++)
                for (int64_t d = 0; d < width; d++) {
                    double v = pl.embeds[t * D + off + d];
                    before += v;
                    after += v * (t == 2 ? 1.5 : 1.0);
                }
            for (int64_t t = 0; t < L; t++)
                for (int64_t d = 0; d < width; d++)
                    ref[t * D + off + d] = (float)(pl.embeds[t * D + off + d] * (t == 2 ? 1.5 : 1.0) * (before / after));
        }
        test_close("(koala:1.5): weighted rows, each encoder's mean restored", wt.embeds, ref, L * D, 1e-5);
        CHECK(!same(br.embeds, pl.embeds, (size_t)(L * D)), "plain mode encodes the brackets as text");
        free(ref);
    }
    ld_safetensors_close(wt.st);
    ld_safetensors_close(pl.st);
    ld_safetensors_close(br.st);

    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "x";
    gp.prompt_syntax = "compel";
    gp.steps = 1;
    gp.width = gp.height = 64;
    ld_image img;
    ld_gen_info info;
    CHECK(ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK && strstr(ld_ctx_error(ctx), "compel"),
          "unknown syntax refused: %s", ld_ctx_error(ctx));
    ld_pipeline_free(pipe);
    ld_ctx_free(ctx);
    return test_finish();
}
