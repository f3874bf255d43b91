/* Texts to CLIP conditioning, plain or A1111 (see prompt_encode.h). */
#include "text/prompt_encode.h"

#include "text/prompt_syntax.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void name_error(ld_ctx *ctx, const char *const *names, int i) {
    if (names) ld_prefix_error(ctx, "%s: ", names[i]);
    else ld_prefix_error(ctx, "text %d: ", i + 1);
}

ld_status ld_prompt_tokenize_texts(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *const *texts, int n,
                                   const char *const *names, int a1111, int64_t **ids, float **mult, int64_t **mask,
                                   int *chunks) {
    ld_prompt_chunks *ch = a1111 ? calloc((size_t)n, sizeof *ch) : NULL, empty = {0};
    ld_status st = LD_OK;
    int C = 1;
    *ids = NULL;
    *mult = NULL;
    if (mask) *mask = NULL;
    if (a1111 && !ch) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (int i = 0; a1111 && st == LD_OK && i < n; i++) {
        st = ld_prompt_chunk_text(ctx, tok, texts[i], &ch[i]);
        if (st != LD_OK) name_error(ctx, names, i);
        if (st == LD_OK && ch[i].n > C) C = ch[i].n;
    }
    if (a1111 && st == LD_OK) st = ld_prompt_chunk_text(ctx, tok, "", &empty);
    for (int i = 0; a1111 && st == LD_OK && i < n; i++) st = ld_prompt_chunks_pad(ctx, &ch[i], C, &empty);
    const size_t per = (size_t)C * LD_CLIP_CONTEXT;
    if (st == LD_OK) {
        *ids = malloc(sizeof(int64_t) * per * (size_t)n);
        *mult = malloc(sizeof(float) * per * (size_t)n);
        if (mask) *mask = malloc(sizeof(int64_t) * per * (size_t)n);
        if (!*ids || !*mult || (mask && !*mask)) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == LD_OK && i < n; i++) {
        if (a1111) {
            memcpy(*ids + i * per, ch[i].ids, sizeof(int64_t) * per);
            memcpy(*mult + i * per, ch[i].mult, sizeof(float) * per);
            for (size_t c = 0; mask && c < (size_t)C; c++) { /* [BOS, text, EOS, pad...]: 1 through the first EOS */
                const int64_t *id = *ids + i * per + c * LD_CLIP_CONTEXT;
                int64_t *m = *mask + i * per + c * LD_CLIP_CONTEXT;
                int on = 1;
                for (int t = 0; t < LD_CLIP_CONTEXT; t++) {
                    m[t] = on;
                    if (t > 0 && id[t] == LD_CLIP_EOS) on = 0;
                }
            }
        } else {
            st = ld_clip_tokenize(ctx, tok, texts[i], *ids + i * per, mask ? *mask + i * per : NULL);
            if (st != LD_OK) name_error(ctx, names, i);
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
        if (mask) {
            free(*mask);
            *mask = NULL;
        }
    }
    *chunks = C;
    return st;
}

ld_status ld_prompt_encode(ld_ctx *ctx, const ld_clip_tokenizer *tok, const ld_clip_text *te, const char *const *texts,
                           int n, const char *const *names, int a1111, int hidden_index, int use_mask, int pooled,
                           ld_prompt_enc *out) {
    memset(out, 0, sizeof *out);
    if (n < 1) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text encoding: no texts");
    const ld_clip_text_config *cf = ld_clip_text_get_config(te);
    if (pooled && cf->projection_dim <= 0)
        return ld_fail(ctx, LD_ERR_MODEL, "the text encoder has no text_projection (pooled text_embeds)");
    float *mult = NULL, *pool_all = NULL;
    ld_status st = ld_prompt_tokenize_texts(ctx, tok, texts, n, names, a1111, &out->ids, &mult, &out->mask,
                                            &out->chunks);
    const int C = out->chunks, rows = n * C;
    out->L = (int64_t)C * LD_CLIP_CONTEXT;
    out->D = cf->hidden_size;
    out->P = pooled ? cf->projection_dim : 0;
    if (st == LD_OK) {
        out->hidden = malloc(sizeof(float) * (size_t)rows * LD_CLIP_CONTEXT * (size_t)out->D);
        if (pooled) {
            out->pooled = malloc(sizeof(float) * (size_t)n * (size_t)out->P);
            pool_all = malloc(sizeof(float) * (size_t)rows * (size_t)out->P);
        }
        if (!out->hidden || (pooled && (!out->pooled || !pool_all)))
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the text embeddings");
    }
    if (st == LD_OK) { /* every chunk a row of its own: [n][C][77] = [n * C][77] */
        ld_clip_text_out o = {.hidden_index = hidden_index, .text_embeds = pool_all};
        if (hidden_index) o.hidden = out->hidden;
        else o.last_hidden = out->hidden;
        st = ld_clip_text_forward(ctx, te, out->ids, use_mask ? out->mask : NULL, rows, LD_CLIP_CONTEXT, &o);
    }
    if (st == LD_OK && a1111) ld_prompt_emphasis(out->hidden, mult, rows, (int)out->D);
    for (int i = 0; st == LD_OK && pooled && i < n; i++)
        memcpy(out->pooled + (size_t)i * out->P, pool_all + (size_t)i * C * out->P, sizeof(float) * (size_t)out->P);
    free(mult);
    free(pool_all);
    if (st != LD_OK) ld_prompt_enc_free(out);
    return st;
}

void ld_prompt_enc_free(ld_prompt_enc *e) {
    free(e->hidden);
    free(e->pooled);
    free(e->ids);
    free(e->mask);
    e->hidden = e->pooled = NULL;
    e->ids = e->mask = NULL;
}

void ld_prompt_warn_truncation(const ld_clip_tokenizer *tok, const char *const *texts, int n,
                               const char *const *names, int a1111) {
    for (int i = 0; !a1111 && i < n; i++)
        ld_clip_warn_truncation(tok, texts[i], names ? names[i] : "prompt",
                                " (--prompt-syntax a1111 reads prompts of any length)");
}
