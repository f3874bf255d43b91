/* A1111 prompt syntax for the Wuerstchen and Stable Cascade CLIP encoders
 * (ld_prompt_encode through ld_generate on the tiny prior/decoder folders;
 * the prompt_embeds are read back from --dump):
 * - a prompt without syntax gives exactly (bitwise) the plain diffusers
 *   embeddings, so the reference pipeline cases hold under either syntax;
 * - "a (koala:1.3) eating [sausage]" equals a naive computation written here:
 *   the text encoder run on the plain ids of "a koala eating sausage" with its
 *   padding mask, the koala row times 1.3, the sausage row divided by 1.1,
 *   the whole rescaled to the mean it had (A1111's "Original" emphasis);
 * - a prompt of more than 75 tokens becomes two chunks (154 positions) whose
 *   first 77 rows equal the plain (truncating) encoding bitwise, the negative
 *   padded to the same length; Stable Cascade's pooled embedding is the first
 *   chunk's; the prior and the Wuerstchen decoder run on it;
 * - the infotext field prompt_syntax says which syntax ran; a bad name fails. */
#include "io/safetensors.h"
#include "test_util.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

#include "leandiff.h"

static ld_ctx *ctx;

typedef struct {
    const char *name, *prior, *decoder;
    int hidden_index; /* 0: last_hidden_state (Wuerstchen), -1: hidden_states[-1] (Cascade) */
    int pooled;
} family;

/* One generation (1 prior step, 1 decoder step, prior CFG: the negative is
 * encoded) dumping to `dump`; returns the opened dump or NULL. */
static ld_safetensors *gen(ld_pipeline *pipe, const char *prompt, const char *syntax, const char *dump,
                           ld_gen_info *info) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = prompt;
    gp.negative_prompt = "blurry";
    gp.prompt_syntax = syntax;
    gp.width = gp.height = 128;
    gp.prior_steps = 1;
    gp.steps = 1;
    gp.prior_cfg_scale = 4.0f;
    gp.cfg_scale = 0.0f;
    gp.dump = dump;
    ld_image img;
    if (ld_generate(ctx, pipe, &gp, &img, info) != LD_OK) {
        CHECK(0, "%s (%s): %s", prompt, syntax, ld_ctx_error(ctx));
        return NULL;
    }
    CHECK(img.width == 128 && img.height == 128, "image size");
    ld_image_free(&img);
    ld_safetensors *st = NULL;
    CHECK(ld_safetensors_open(ctx, dump, &st) == LD_OK, "%s", ld_ctx_error(ctx));
    return st;
}

static const ld_tensor *get(const ld_safetensors *f, const char *k) {
    const ld_tensor *t = f ? ld_safetensors_find(f, k) : NULL;
    CHECK(t && t->dtype == LD_F32, "dump tensor %s", k);
    return t && t->dtype == LD_F32 ? t : NULL;
}

/* rows [0, rows) of a [1, L, D] tensor equal those of b bitwise */
static int same_rows(const ld_tensor *a, const ld_tensor *b, int64_t rows) {
    return a && b && a->shape[2] == b->shape[2] && a->shape[1] >= rows && b->shape[1] >= rows &&
           !memcmp(a->data, b->data, sizeof(float) * (size_t)(rows * b->shape[2]));
}

/* The naive weighted encoding of "a koala eating sausage" (see the top). */
static float *naive_weighted(const family *f, int64_t *D) {
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/tokenizer", f->prior);
    ld_clip_tokenizer *tok = NULL;
    ld_clip_text *te = NULL;
    if (ld_clip_tokenizer_load(ctx, dir, &tok) != LD_OK) return NULL;
    snprintf(dir, sizeof dir, "%s/text_encoder", f->prior);
    if (ld_clip_text_load(ctx, dir, NULL, &te) != LD_OK) {
        ld_clip_tokenizer_free(tok);
        return NULL;
    }
    const char *words[] = {"a", "koala", "eating", "sausage"};
    for (int i = 0; i < 4; i++) { /* each word one token, so the weights sit at rows 1..4 */
        size_t n = 0;
        ld_clip_bpe(ctx, tok, words[i], strlen(words[i]), NULL, 0, &n);
        CHECK(n == 1, "'%s' is one token (%zu)", words[i], n);
    }
    int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
    *D = ld_clip_text_get_config(te)->hidden_size;
    float *h = malloc(sizeof(float) * LD_CLIP_CONTEXT * (size_t)*D);
    ld_clip_text_out o = {.hidden_index = f->hidden_index};
    if (f->hidden_index) o.hidden = h;
    else o.last_hidden = h;
    CHECK(ld_clip_tokenize(ctx, tok, "a koala eating sausage", ids, mask) == LD_OK &&
              ld_clip_text_forward(ctx, te, ids, mask, 1, LD_CLIP_CONTEXT, &o) == LD_OK,
          "naive encoding: %s", ld_ctx_error(ctx));
    double before = 0, after = 0;
    for (int64_t i = 0; i < LD_CLIP_CONTEXT * *D; i++) before += h[i];
    for (int64_t d = 0; d < *D; d++) {
        h[2 * *D + d] *= 1.3f;
        h[4 * *D + d] *= (float)(1 / 1.1);
    }
    for (int64_t i = 0; i < LD_CLIP_CONTEXT * *D; i++) after += h[i];
    for (int64_t i = 0; i < LD_CLIP_CONTEXT * *D; i++) h[i] *= (float)(before / after);
    ld_clip_text_free(te);
    ld_clip_tokenizer_free(tok);
    return h;
}

static void run_family(const family *f, const char *tmp) {
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = f->prior;
    opt.decoder_dir = f->decoder;
    ld_pipeline *pipe = NULL;
    if (ld_pipeline_open(ctx, &opt, &pipe) != LD_OK) {
        CHECK(0, "%s: %s", f->name, ld_ctx_error(ctx));
        return;
    }
    char d[6][4400];
    for (int i = 0; i < 6; i++) snprintf(d[i], sizeof d[i], "%s/%s-%d.safetensors", tmp, f->name, i);
    char longp[2048] = "";
    for (int i = 0; i < 90; i++) strcat(longp, i % 3 == 0 ? "koala " : i % 3 == 1 ? "eating " : "sausage ");
    ld_gen_info info[6];
    ld_safetensors *r[6];
    r[0] = gen(pipe, "a koala eating a sausage", "plain", d[0], &info[0]);
    r[1] = gen(pipe, "a koala eating a sausage", "a1111", d[1], &info[1]);
    r[2] = gen(pipe, "a (koala:1.3) eating [sausage]", "a1111", d[2], &info[2]);
    r[3] = gen(pipe, longp, "plain", d[3], &info[3]);
    r[4] = gen(pipe, longp, "a1111", d[4], &info[4]);
    r[5] = NULL;
    const ld_tensor *p0 = get(r[0], "prior.prompt_embeds"), *p1 = get(r[1], "prior.prompt_embeds");
    const ld_tensor *n0 = get(r[0], "prior.negative_prompt_embeds"), *n1 = get(r[1], "prior.negative_prompt_embeds");
    CHECK(p0 && p1 && p1->shape[1] == 77 && same_rows(p0, p1, 77) && same_rows(n0, n1, 77),
          "%s: a prompt without syntax encodes as plain diffusers does", f->name);
    CHECK(!strcmp(info[0].prompt_syntax, "plain") && !strcmp(info[1].prompt_syntax, "a1111"), "%s: info syntax",
          f->name);
    int64_t D = 0;
    float *naive = naive_weighted(f, &D);
    const ld_tensor *p2 = get(r[2], "prior.prompt_embeds");
    if (naive && p2 && p2->shape[1] == 77 && p2->shape[2] == D) {
        const int ok = test_close("weighted prompt_embeds vs naive", p2->data, naive, 77 * D, 1e-5);
        printf("%s %s: (koala:1.3) ... [sausage] against the naive weighting\n", ok ? "ok  " : "FAIL", f->name);
    } else {
        CHECK(0, "%s: weighted prompt_embeds", f->name);
    }
    free(naive);
    const ld_tensor *p3 = get(r[3], "prior.prompt_embeds"), *p4 = get(r[4], "prior.prompt_embeds");
    const ld_tensor *n4 = get(r[4], "prior.negative_prompt_embeds");
    const int two = p3 && p4 && n4 && p3->shape[1] == 77 && p4->shape[1] == 154 && n4->shape[1] == 154;
    CHECK(two && same_rows(p4, p3, 77), "%s: a long prompt is two chunks, the first the plain encoding", f->name);
    printf("%s %s: 90-word prompt: %lld positions (plain %lld), first chunk equal to plain\n", two ? "ok  " : "FAIL",
           f->name, p4 ? (long long)p4->shape[1] : 0LL, p3 ? (long long)p3->shape[1] : 0LL);
    if (f->pooled) {
        const ld_tensor *q3 = get(r[3], "prior.prompt_embeds_pooled"), *q4 = get(r[4], "prior.prompt_embeds_pooled");
        CHECK(q3 && q4 && ld_tensor_nbytes(q3) == ld_tensor_nbytes(q4) && !memcmp(q3->data, q4->data, ld_tensor_nbytes(q3)),
              "%s: the pooled embedding is the first chunk's", f->name);
    } else {
        const ld_tensor *q4 = get(r[4], "decoder.prompt_embeds");
        CHECK(q4 && q4->shape[1] == 154, "%s: the decoder's text is chunked too", f->name);
    }
    for (int i = 0; i < 5; i++) ld_safetensors_close(r[i]);
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "x";
    gp.prompt_syntax = "fancy";
    ld_image img;
    CHECK(ld_generate(ctx, pipe, &gp, &img, NULL) != LD_OK && strstr(ld_ctx_error(ctx), "fancy"),
          "%s: a bad syntax name is refused: %s", f->name, ld_ctx_error(ctx));
    ld_pipeline_free(pipe);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ctx = ld_ctx_new();
    const char *tmp = test_tmp_dir("prompt_families");
    static char dirs[4][4300];
    snprintf(dirs[0], sizeof dirs[0], "%s/models/wuerstchen-prior-tiny", td);
    snprintf(dirs[1], sizeof dirs[1], "%s/models/wuerstchen-tiny", td);
    snprintf(dirs[2], sizeof dirs[2], "%s/models/stable-cascade-prior-tiny", td);
    snprintf(dirs[3], sizeof dirs[3], "%s/models/stable-cascade-tiny", td);
    const family fams[] = {{"wuerstchen", dirs[0], dirs[1], 0, 0}, {"stable-cascade", dirs[2], dirs[3], -1, 1}};
    for (int i = 0; i < 2; i++) run_family(&fams[i], tmp);
    ld_ctx_free(ctx);
    return test_finish();
}
