/* AUTOMATIC1111's prompt syntax: emphasis weights, BREAK, and prompts of any
 * length in chunks of 75 tokens.
 *
 *     ld_prompt_pieces pp;
 *     LD_TRY(ld_prompt_parse(ctx, "a (red:1.3) [old] car BREAK at night", &pp));
 *     ld_prompt_chunks ch;
 *     LD_TRY(ld_prompt_chunk(ctx, tok, &pp, &ch));     // ch.ids, ch.mult: ch.n x 77
 *     ... encode each chunk of 77 ids to hidden [77, D] ...
 *     ld_prompt_emphasis(hidden, ch.mult, ch.n, D);     // weights, then the mean restored
 *     ld_prompt_chunks_free(&ch); ld_prompt_pieces_free(&pp);
 *
 * Parsing follows A1111's parse_prompt_attention: `(text)` multiplies the
 * weight by 1.1, `[text]` divides it by 1.1, `(text:W)` multiplies it by W,
 * nested brackets multiply, brackets left open apply to the rest of the
 * prompt, a `)`/`]` with nothing open and a `:W)` outside round brackets are
 * plain text, `\(` `\)` `\[` `\]` `\\` are the literal characters, and the
 * word BREAK (between non-word characters) ends a chunk. Consecutive pieces of
 * equal weight are merged; an empty prompt is one empty piece. As in A1111, a
 * BREAK inside brackets (weight other than -1) and two BREAKs in a row (merged
 * into "BREAKBREAK") are text, not breaks. Whitespace and
 * digits are the ASCII ones. A weight that is not a number (`(a:1.2.3)`) is an
 * error naming it (A1111 raises there too).
 *
 * Chunking follows A1111's tokenize_line: each piece is BPE-tokenized on its
 * own, tokens fill chunks of 75 carrying their piece's weight; when a chunk is
 * full and a comma came within its last 20 tokens, the tokens after that
 * comma move to the next chunk; BREAK starts a new chunk; each chunk becomes
 * [BOS, 75 tokens, EOS], the unused places after the first EOS holding the
 * tokenizer's pad id, weight 1 for BOS, EOS and padding. Emphasis is A1111's
 * "Original": the hidden states are multiplied by the token weights and then
 * rescaled so that each chunk's mean is what it was before.
 */
#ifndef LD_TEXT_PROMPT_SYNTAX_H
#define LD_TEXT_PROMPT_SYNTAX_H

#include "text/clip_tokenizer.h"

#include <stddef.h>

#define LD_PROMPT_CHUNK_TOKENS 75 /* tokens of text per chunk (77 with BOS and EOS) */
#define LD_PROMPT_MAX_CHUNKS 64   /* 4800 tokens: longer prompts are refused */

typedef struct {
    char *text;    /* UTF-8, NUL-terminated */
    double weight; /* -1 with is_break */
    int is_break;  /* ends a chunk: text "BREAK" with weight exactly -1 */
} ld_prompt_piece;

typedef struct {
    ld_prompt_piece *p;
    size_t n;
} ld_prompt_pieces;

ld_status ld_prompt_parse(ld_ctx *ctx, const char *prompt, ld_prompt_pieces *out);
void ld_prompt_pieces_free(ld_prompt_pieces *pp);

typedef struct {
    int n;          /* chunks (>= 1) */
    int64_t *ids;   /* [n * 77] */
    float *mult;    /* [n * 77] token weights */
    size_t tokens;  /* text tokens over all chunks (without BOS/EOS/padding) */
} ld_prompt_chunks;

ld_status ld_prompt_chunk(ld_ctx *ctx, const ld_clip_tokenizer *tok, const ld_prompt_pieces *pp,
                          ld_prompt_chunks *out);
/* Chunks for a whole prompt: parse + chunk. */
ld_status ld_prompt_chunk_text(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *prompt, ld_prompt_chunks *out);
/* Extends ch to n chunks with copies of pad (a one-chunk encoding of the empty
 * prompt), so that a condition and its unconditional counterpart line up. */
ld_status ld_prompt_chunks_pad(ld_ctx *ctx, ld_prompt_chunks *ch, int n, const ld_prompt_chunks *pad);
void ld_prompt_chunks_free(ld_prompt_chunks *ch);

/* hidden [n chunks][77][D]: multiplied by mult, then each chunk rescaled to
 * its mean before the multiplication (A1111's "Original" emphasis). */
void ld_prompt_emphasis(float *hidden, const float *mult, int n, int D);

/* ld_gen_params.prompt_syntax: "a1111" (and NULL, the default) gives 1,
 * "plain" 0, anything else an error naming it. */
ld_status ld_prompt_syntax_name(ld_ctx *ctx, const char *name, int *a1111);

#endif
