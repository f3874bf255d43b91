/* CLIP text cleaning and Unicode helpers shared by the tokenizer (internal).
 *
 *     uint32_t *cps; size_t n;
 *     LD_TRY(ld_clip_clean(ctx, text, len, &cps, &n));   // free(cps)
 *
 * Cleaning, in the order the reference applies it: strict UTF-8 decode
 * (invalid -> LD_ERR_INVALID_ARGUMENT naming the byte offset), Python's
 * html.unescape twice, NFC, strip, whitespace runs -> one space, strip,
 * Python str.lower() (full mapping for U+0130, final sigma).
 */
#ifndef LD_TEXT_CLIP_CLEAN_H
#define LD_TEXT_CLIP_CLEAN_H

#include "base/status.h"
#include <stddef.h>
#include <stdint.h>

/* Cleans len bytes of UTF-8 into a malloc'd code point array (*n may be 0;
 * *out is then still a valid pointer to free). */
ld_status ld_clip_clean(ld_ctx *ctx, const char *text, size_t len, uint32_t **out, size_t *n);
/* The same, re-encoded as NUL-terminated UTF-8 (for tests and tools). */
ld_status ld_clip_clean_utf8(ld_ctx *ctx, const char *text, size_t len, char **out, size_t *n);

/* Strict UTF-8 decoding (no overlongs, surrogates or > U+10FFFF). */
ld_status ld_utf8_decode(ld_ctx *ctx, const char *text, size_t len, uint32_t **out, size_t *n);
/* Appends the UTF-8 encoding of c (<= U+10FFFF) to buf; returns the byte count (1..4). */
int ld_utf8_encode(uint32_t c, unsigned char buf[4]);

/* Unicode classes as the `regex` module sees them. */
int ld_uni_is_letter(uint32_t c);     /* \p{L} */
int ld_uni_is_number(uint32_t c);     /* \p{N} */
int ld_uni_is_whitespace(uint32_t c); /* \s: the White_Space property */

#endif
