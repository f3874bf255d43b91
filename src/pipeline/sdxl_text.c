/* The SDXL family's text conditioning (see sdxl_text.h). */
#include "pipeline/sdxl_text.h"

#include "text/clip_text.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_syntax.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Token ids of texts[0..n-1] for one tokenizer: plain (diffusers: one chunk,
 * truncated at 75 tokens, weight 1; warn: say so when it cuts) or A1111 syntax (chunks of 75 with
 * weights, every text padded with empty-prompt chunks to the longest). Fills
 * *ids / *mult with n * chunks * 77 entries and *chunks. */
static ld_status tokenize_texts(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *const *texts, int n, int a1111,
                                int warn, int64_t **ids, float **mult, int *chunks) {
    ld_prompt_chunks *ch = a1111 ? calloc((size_t)n, sizeof *ch) : NULL, empty = {0};
    ld_status st = LD_OK;
    int C = 1;
    *ids = NULL;
    *mult = NULL;
    if (a1111 && !ch) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (int i = 0; a1111 && st == LD_OK && i < n; i++) {
        st = ld_prompt_chunk_text(ctx, tok, texts[i], &ch[i]);
        if (st != LD_OK) ld_prefix_error(ctx, "%s: ", i == n - 1 ? "prompt" : "negative prompt");
        if (st == LD_OK && ch[i].n > C) C = ch[i].n;
    }
    if (a1111 && st == LD_OK) st = ld_prompt_chunk_text(ctx, tok, "", &empty);
    for (int i = 0; a1111 && st == LD_OK && i < n; i++) st = ld_prompt_chunks_pad(ctx, &ch[i], C, &empty);
    const size_t per = (size_t)C * LD_CLIP_CONTEXT;
    if (st == LD_OK) {
        *ids = malloc(sizeof(int64_t) * per * (size_t)n);
        *mult = malloc(sizeof(float) * per * (size_t)n);
        if (!*ids || !*mult) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == LD_OK && i < n; i++) {
        if (a1111) {
            memcpy(*ids + i * per, ch[i].ids, sizeof(int64_t) * per);
            memcpy(*mult + i * per, ch[i].mult, sizeof(float) * per);
        } else {
            if (warn)
                ld_clip_warn_truncation(tok, texts[i], i == n - 1 ? "prompt" : "negative prompt",
                                        " (--prompt-syntax a1111 reads prompts of any length)");
            st = ld_clip_tokenize(ctx, tok, texts[i], *ids + i * per, NULL);
            if (st != LD_OK) ld_prefix_error(ctx, "%s: ", i == n - 1 ? "prompt" : "negative prompt");
            for (size_t k = 0; k < per; k++) (*mult)[i * per + k] = 1;
        }
    }
    for (int i = 0; a1111 && i < n; i++) ld_prompt_chunks_free(&ch[i]);
    free(ch);
    ld_prompt_chunks_free(&empty);
    if (st != LD_OK) {
        free(*ids);
        free(*mult);
        *ids = NULL;
        *mult = NULL;
    }
    *chunks = C;
    return st;
}

ld_status ld_sdxl_encode(ld_ctx *ctx, const ld_sdxl_text *tx, const char *const *texts, int n, ld_sdxl_cond *out,
                         int64_t *ids_out[2]) {
    memset(out, 0, sizeof *out);
    if (n < 1) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text encoding: no texts");
    const char *variant = tx->variant;
    const char *const *tok_dirs = tx->tok, *const *te_dirs = tx->te;
    const int a1111 = tx->a1111;
    float **embeds = &out->embeds, **pooled = &out->pooled;
    float *hidden[2] = {NULL, NULL}, *pool_all = NULL;
    int64_t dims[2] = {0, 0}, *ids = NULL;
    float *mult = NULL;
    int C = 0;
    ld_status st = LD_OK;
    *embeds = NULL;
    *pooled = NULL;
    double t0 = now_seconds();
    for (int e = 0; e < 2 && st == LD_OK; e++) {
        ld_clip_tokenizer *tok = NULL;
        ld_clip_text *te = NULL;
        int c = 0;
        free(ids);
        free(mult);
        ids = NULL;
        mult = NULL;
        st = ld_clip_tokenizer_load(ctx, tok_dirs[e], &tok);
        if (st == LD_OK) st = tokenize_texts(ctx, tok, texts, n, a1111, e == 0, &ids, &mult, &c);
        ld_clip_tokenizer_free(tok);
        if (st == LD_OK && e == 1 && c != C)
            st = ld_fail(ctx, LD_ERR_MODEL, "%s and %s split the prompt into %d and %d chunks", tok_dirs[0],
                         tok_dirs[1], C, c);
        C = c;
        const int rows = n * C;
        for (int i = 0; st == LD_OK && ids_out && ids_out[e] && i < n; i++)
            memcpy(ids_out[e] + (size_t)i * LD_CLIP_CONTEXT, ids + (size_t)i * C * LD_CLIP_CONTEXT,
                   sizeof(int64_t) * LD_CLIP_CONTEXT);
        if (st == LD_OK) st = ld_clip_text_load_lora(ctx, te_dirs[e], variant, e, tx->loras, tx->nloras, &te);
        if (st == LD_OK) {
            const ld_clip_text_config *cf = ld_clip_text_get_config(te);
            dims[e] = cf->hidden_size;
            if (e == 1 && cf->projection_dim <= 0)
                st = ld_fail(ctx, LD_ERR_MODEL, "%s: text_encoder_2 has no text_projection (pooled text_embeds)",
                             te_dirs[e]);
            if (st == LD_OK && e == 1) {
                out->P = cf->projection_dim;
                *pooled = malloc(sizeof(float) * (size_t)(n * out->P));
                pool_all = malloc(sizeof(float) * (size_t)rows * (size_t)out->P);
            }
            hidden[e] = malloc(sizeof(float) * (size_t)rows * LD_CLIP_CONTEXT * (size_t)dims[e]);
            if (st == LD_OK && (!hidden[e] || (e == 1 && (!*pooled || !pool_all))))
                st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            if (st == LD_OK) {
                ld_clip_text_out o = {.hidden_index = -2, .hidden = hidden[e], .text_embeds = e == 1 ? pool_all : NULL};
                st = ld_clip_text_forward(ctx, te, ids, NULL, rows, LD_CLIP_CONTEXT, &o);
            }
            if (st == LD_OK && a1111) ld_prompt_emphasis(hidden[e], mult, rows, (int)dims[e]);
            for (int i = 0; st == LD_OK && e == 1 && i < n; i++)
                memcpy(*pooled + (size_t)i * out->P, pool_all + (size_t)i * C * out->P, sizeof(float) * out->P);
        }
        ld_clip_text_free(te);
        if (st == LD_OK && tx->report) st = tx->report(ctx, tx->user, e, t0);
    }
    if (st == LD_OK) {
        out->D = dims[0] + dims[1];
        out->L = (int64_t)C * LD_CLIP_CONTEXT;
        *embeds = malloc(sizeof(float) * (size_t)n * (size_t)out->L * (size_t)out->D);
        if (!*embeds) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        for (int64_t row = 0; st == LD_OK && row < (int64_t)n * out->L; row++) {
            memcpy(*embeds + row * out->D, hidden[0] + row * dims[0], sizeof(float) * (size_t)dims[0]);
            memcpy(*embeds + row * out->D + dims[0], hidden[1] + row * dims[1], sizeof(float) * (size_t)dims[1]);
        }
    }
    free(hidden[0]);
    free(hidden[1]);
    free(pool_all);
    free(ids);
    free(mult);
    if (st != LD_OK) ld_sdxl_cond_free(out);
    return st;
}

void ld_sdxl_cond_free(ld_sdxl_cond *c) {
    free(c->embeds);
    free(c->pooled);
    c->embeds = c->pooled = NULL;
}

