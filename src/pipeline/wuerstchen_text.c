/* Wuerstchen v2's CLIP stages (the prior's bigG and the decoder's ViT-H, both
 * last_hidden_state with the padding mask), shared by the prior (wuerstchen.c) and the decoder (wuerstchen_decode.c). */
#include "pipeline/wuerstchen.h"

#include "text/prompt_syntax.h"

#include <stdio.h>
#include <string.h>

const char *ld_wu_variant(const ld_wuerstchen *w) { return w->has_variant ? w->variant : NULL; }

ld_status ld_wu_encode_text(ld_ctx *ctx, ld_run *run, const ld_wuerstchen *w, const ld_clip_tokenizer *tok,
                            const char *text_dir, int with_negative, const char *prefix, ld_prompt_enc *e) {
    const ld_gen_params *p = run->params;
    const int B = with_negative ? 2 : 1;
    const char *texts[2] = {p->prompt, p->negative_prompt ? p->negative_prompt : ""};
    const char *names[2] = {"prompt", "negative prompt"};
    int a1111;
    memset(e, 0, sizeof *e);
    LD_TRY(ld_prompt_syntax_name(ctx, p->prompt_syntax, &a1111));
    ld_clip_text *te;
    LD_TRY(ld_clip_text_load(ctx, text_dir, ld_wu_variant(w), &te));
    /* last_hidden_state with the padding mask; A1111 syntax: chunks along the sequence */
    ld_status st = ld_prompt_encode(ctx, tok, te, texts, B, names, a1111, 0, 1, 0, e);
    ld_clip_text_free(te); /* released after its stage */
    LD_TRY(st);
    const int64_t L = e->L, D = e->D, s_h[3] = {1, L, D};
    char name[96];
    snprintf(name, sizeof name, "%sprompt_embeds", prefix);
    st = ld_run_dump(ctx, run, name, LD_F32, 3, s_h, e->hidden);
    snprintf(name, sizeof name, "%snegative_prompt_embeds", prefix);
    if (st == LD_OK && with_negative) st = ld_run_dump(ctx, run, name, LD_F32, 3, s_h, e->hidden + L * D);
    if (st != LD_OK) ld_prompt_enc_free(e);
    return st;
}
