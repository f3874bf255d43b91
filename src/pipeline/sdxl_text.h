/* The SDXL family's text conditioning, shared by generation (koala.c) and
 * training (the caption cache of `leandiff train`):
 *
 *   prompt_embeds = concat(text_encoder(ids1).hidden_states[-2],
 *                          text_encoder_2(ids2).hidden_states[-2])   [n, L, 768+1280]
 *   pooled        = text_encoder_2(ids2).text_embeds                 [n, 1280]
 *
 * Plain text is one 77-token chunk (diffusers: truncated at 75 tokens); with
 * A1111 syntax each text is split into chunks of 75 with weights, all padded
 * to the longest with empty-prompt chunks, L = chunks * 77, and the pooled
 * output is that of the first chunk. Each encoder is loaded, run over all
 * texts and freed in turn.
 *
 *     ld_sdxl_text te = {.tok = {tok1, tok2}, .te = {te1, te2}};
 *     ld_sdxl_cond c;
 *     LD_TRY(ld_sdxl_encode(ctx, &te, texts, n, &c, NULL));
 *     ... c.embeds [n, c.L, c.D], c.pooled [n, c.P] ...
 *     ld_sdxl_cond_free(&c);
 */
#ifndef LD_PIPELINE_SDXL_TEXT_H
#define LD_PIPELINE_SDXL_TEXT_H

#include "base/status.h"
#include "leandiff.h"

#include <stdint.h>

typedef struct {
    const char *tok[2], *te[2]; /* tokenizer, tokenizer_2, text_encoder, text_encoder_2 folders */
    const char *variant;        /* weights variant ("fp16") or NULL */
    int a1111;                  /* A1111 prompt syntax (emphasis, long prompts) */
    const ld_lora_ref *loras;   /* LoRA files merged into both encoders (their text encoder keys) */
    int nloras;
    /* called after encoder e (0, 1) has run; an error stops (cancel) */
    ld_status (*report)(ld_ctx *ctx, void *user, int e, double since);
    void *user;
} ld_sdxl_text;

typedef struct {
    float *embeds, *pooled; /* [n, L, D], [n, P] */
    int64_t L, D, P;
} ld_sdxl_cond;

/* ids_out[e] (each may be NULL) receives each text's first 77 ids of tokenizer e. */
ld_status ld_sdxl_encode(ld_ctx *ctx, const ld_sdxl_text *te, const char *const *texts, int n, ld_sdxl_cond *out,
                         int64_t *ids_out[2]);
void ld_sdxl_cond_free(ld_sdxl_cond *c);

#endif
