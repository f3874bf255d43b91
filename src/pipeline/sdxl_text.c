/* The SDXL family's text conditioning (see sdxl_text.h). */
#include "pipeline/sdxl_text.h"

#include "text/clip_text.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_encode.h"
#include "text/prompt_syntax.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the texts' names in errors: generation passes [negative,] prompt */
static const char *text_name(int i, int n) { return i == n - 1 ? "prompt" : "negative prompt"; }

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
        const char *names[2] = {text_name(0, n), text_name(1, n)};
        if (st == LD_OK) st = ld_prompt_tokenize_texts(ctx, tok, texts, n, n <= 2 ? names : NULL, a1111, &ids, &mult,
                                                       NULL, &c);
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

