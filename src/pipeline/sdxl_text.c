/* The SDXL family's text conditioning (see sdxl_text.h). */
#include "pipeline/sdxl_text.h"
#include "base/clock.h"

#include "text/clip_text.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_encode.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the texts' names in errors: generation passes [negative,] prompt */
static const char *text_name(int i, int n) { return i == n - 1 ? "prompt" : "negative prompt"; }

ld_status ld_sdxl_encode(ld_ctx *ctx, const ld_sdxl_text *tx, const char *const *texts, int n, ld_sdxl_cond *out,
                         int64_t *ids_out[2]) {
    memset(out, 0, sizeof *out);
    if (n < 1) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text encoding: no texts");
    const char *names[2] = {text_name(0, n), text_name(1, n)};
    ld_prompt_enc enc[2];
    memset(enc, 0, sizeof enc);
    ld_status st = LD_OK;
    double t0 = ld_now_seconds();
    for (int e = 0; e < 2 && st == LD_OK; e++) {
        ld_clip_tokenizer *tok = NULL;
        ld_clip_text *te = NULL;
        st = ld_clip_tokenizer_load(ctx, tx->tok[e], &tok);
        if (st == LD_OK) st = ld_clip_text_load_lora(ctx, tx->te[e], tx->variant, e, tx->loras, tx->nloras, &te);
        /* hidden_states[-2] of every chunk, no attention mask; text_encoder_2 also gives the pooled text_embeds */
        if (st == LD_OK && e == 1 && ld_clip_text_get_config(te)->projection_dim <= 0)
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: text_encoder_2 has no text_projection (pooled text_embeds)", tx->te[e]);
        if (st == LD_OK && e == 0) ld_prompt_warn_truncation(tok, texts, n, n <= 2 ? names : NULL, tx->a1111);
        if (st == LD_OK)
            st = ld_prompt_encode(ctx, tok, te, texts, n, n <= 2 ? names : NULL, tx->a1111, -2, 0, e == 1, &enc[e]);
        ld_clip_tokenizer_free(tok);
        ld_clip_text_free(te);
        if (st == LD_OK && e == 1 && enc[1].chunks != enc[0].chunks)
            st = ld_fail(ctx, LD_ERR_MODEL, "%s and %s split the prompt into %d and %d chunks", tx->tok[0], tx->tok[1],
                         enc[0].chunks, enc[1].chunks);
        for (int i = 0; st == LD_OK && ids_out && ids_out[e] && i < n; i++)
            memcpy(ids_out[e] + (size_t)i * LD_CLIP_CONTEXT, enc[e].ids + (size_t)i * enc[e].L,
                   sizeof(int64_t) * LD_CLIP_CONTEXT);
        if (st == LD_OK && tx->report) st = tx->report(ctx, tx->user, e, t0);
    }
    if (st == LD_OK) { /* prompt_embeds = concat of the two encoders' features */
        const int64_t D0 = enc[0].D, D1 = enc[1].D;
        out->D = D0 + D1;
        out->L = enc[0].L;
        out->P = enc[1].P;
        out->embeds = malloc(sizeof(float) * (size_t)n * (size_t)out->L * (size_t)out->D);
        if (!out->embeds) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        for (int64_t row = 0; st == LD_OK && row < (int64_t)n * out->L; row++) {
            memcpy(out->embeds + row * out->D, enc[0].hidden + row * D0, sizeof(float) * (size_t)D0);
            memcpy(out->embeds + row * out->D + D0, enc[1].hidden + row * D1, sizeof(float) * (size_t)D1);
        }
        out->pooled = enc[1].pooled;
        enc[1].pooled = NULL;
    }
    ld_prompt_enc_free(&enc[0]);
    ld_prompt_enc_free(&enc[1]);
    if (st != LD_OK) ld_sdxl_cond_free(out);
    return st;
}

void ld_sdxl_cond_free(ld_sdxl_cond *c) {
    free(c->embeds);
    free(c->pooled);
    c->embeds = c->pooled = NULL;
}

