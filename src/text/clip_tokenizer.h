/* CLIP byte-level BPE tokenizer (the slow CLIPTokenizer / OpenAI simple_tokenizer).
 *
 *     ld_clip_tokenizer *tok;
 *     LD_TRY(ld_clip_tokenizer_load(ctx, "model/tokenizer_2", &tok));
 *     int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
 *     LD_TRY(ld_clip_tokenize(ctx, tok, "a photo of a koala", ids, mask));
 *     ld_clip_tokenizer_free(tok);
 *
 * The folder holds vocab.json, merges.txt and optionally special_tokens_map.json
 * / tokenizer_config.json (for the pad token: SDXL's tokenizer_2 pads with "!"
 * = 0, the others with <|endoftext|> = 49407).
 *
 * Text is cleaned as CLIP does (HTML entities unescaped twice, NFC, whitespace
 * runs collapsed to one space, stripped, lower-cased), split with CLIP's
 * pre-tokenizer regex (Unicode letter/number classes from utf8proc), mapped
 * through GPT-2's bytes_to_unicode, and merged lowest rank first. Unknown
 * symbols become <|endoftext|>. `<|startoftext|>` / `<|endoftext|>` inside the
 * text are their special ids.
 *
 * Invalid UTF-8 fails with LD_ERR_INVALID_ARGUMENT naming the byte offset of
 * the first bad byte. NUL bytes (in the *_n variants) are ordinary characters.
 * A tokenizer is read-only after loading: one may be shared across threads.
 */
#ifndef LD_TEXT_CLIP_TOKENIZER_H
#define LD_TEXT_CLIP_TOKENIZER_H

#include "base/status.h"
#include <stddef.h>
#include <stdint.h>

#define LD_CLIP_CONTEXT 77   /* model_max_length of every CLIP tokenizer we load */
#define LD_CLIP_BOS 49406    /* <|startoftext|> */
#define LD_CLIP_EOS 49407    /* <|endoftext|> */

typedef struct ld_clip_tokenizer ld_clip_tokenizer;

ld_status ld_clip_tokenizer_load(ld_ctx *ctx, const char *tokenizer_dir, ld_clip_tokenizer **out);
void ld_clip_tokenizer_free(ld_clip_tokenizer *tok);

/* The padding id (0 for "!", 49407 for <|endoftext|>). */
int64_t ld_clip_tokenizer_pad_id(const ld_clip_tokenizer *tok);
/* Number of entries in vocab.json. */
int64_t ld_clip_tokenizer_vocab_size(const ld_clip_tokenizer *tok);

/* The pipeline encoding: ids = [BOS, first 75 BPE ids, EOS, pad...] (77
 * entries); mask[i] = 1 up to and including that EOS, 0 after (mask may be
 * NULL). text is NUL-terminated. */
ld_status ld_clip_tokenize(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *text, int64_t ids[LD_CLIP_CONTEXT],
                           int64_t mask[LD_CLIP_CONTEXT]);
/* Same for len bytes of text (which may contain NUL bytes). */
ld_status ld_clip_tokenize_n(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *text, size_t len,
                             int64_t ids[LD_CLIP_CONTEXT], int64_t mask[LD_CLIP_CONTEXT]);

/* Logs a warning when text holds more than the 75 tokens one 77-id encoding
 * keeps ("prompt: 93 tokens; the text encoder reads only the first 75, the
 * rest is ignored"): `what` names the text, `hint` ("" for none) follows. */
void ld_clip_warn_truncation(const ld_clip_tokenizer *tok, const char *text, const char *what, const char *hint);

/* The raw BPE ids of the cleaned text, no BOS/EOS, no truncation. Writes at
 * most cap ids to ids (may be NULL when cap is 0) and the full count to *n, so
 * a caller can size a buffer with a first call. */
ld_status ld_clip_bpe(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *text, size_t len, int64_t *ids,
                      size_t cap, size_t *n);

#endif
