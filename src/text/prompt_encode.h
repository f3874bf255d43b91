/* Texts to CLIP conditioning, plain (diffusers) or with A1111's prompt
 * syntax, for one tokenizer and text encoder:
 *
 *     const char *texts[2] = {prompt, negative};
 *     ld_prompt_enc e;
 *     LD_TRY(ld_prompt_encode(ctx, tok, te, texts, 2, names, a1111, 0, 1, &e));
 *     ... e.hidden [2, e.L, e.D], e.pooled [2, e.P], e.ids / e.mask [2, e.L] ...
 *     ld_prompt_enc_free(&e);
 *
 * Plain: each text is one 77-token chunk (truncated at 75 tokens) with the
 * tokenizer's attention mask. A1111 (text/prompt_syntax.h): each text is
 * split into chunks of 75 tokens with emphasis weights, every text padded
 * with empty-prompt chunks to the longest, so L = chunks * 77; each chunk is
 * encoded alone (its mask 1 through its first EOS), the hidden states are
 * weighted and rescaled per chunk (ld_prompt_emphasis) and concatenated along
 * the sequence; the pooled output is that of the first chunk. Errors name the
 * text (names[i], e.g. "negative prompt"). */
#ifndef LD_TEXT_PROMPT_ENCODE_H
#define LD_TEXT_PROMPT_ENCODE_H

#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

/* Token ids, weights and attention masks of texts[0..n-1]: *ids, *mult and
 * (when mask is not NULL) *mask get n * chunks * 77 entries (malloc'd),
 * *chunks the chunk count (1 when plain). */
ld_status ld_prompt_tokenize_texts(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *const *texts, int n,
                                   const char *const *names, int a1111, int64_t **ids, float **mult, int64_t **mask,
                                   int *chunks);

typedef struct {
    float *hidden;       /* [n, L, D] */
    float *pooled;       /* [n, P] text_embeds of each text's first chunk; NULL unless asked */
    int64_t *ids, *mask; /* [n, L] */
    int64_t L, D, P;
    int chunks;
} ld_prompt_enc;

/* hidden_index 0: last_hidden_state (after the final layer norm), else
 * hidden_states[hidden_index] (-1, -2, ...). use_mask: pass the attention
 * mask to the encoder (Wuerstchen, Stable Cascade) or not (SDXL). pooled:
 * also the projected text_embeds (projection models only). */
ld_status ld_prompt_encode(ld_ctx *ctx, const ld_clip_tokenizer *tok, const ld_clip_text *te, const char *const *texts,
                           int n, const char *const *names, int a1111, int hidden_index, int use_mask, int pooled,
                           ld_prompt_enc *out);
void ld_prompt_enc_free(ld_prompt_enc *e);

/* Plain syntax cuts a text at 75 tokens: warn (once per run, by the caller)
 * for each text that is longer. Nothing with the A1111 syntax. */
void ld_prompt_warn_truncation(const ld_clip_tokenizer *tok, const char *const *texts, int n,
                               const char *const *names, int a1111);

#endif
