/* libFuzzer target: arbitrary bytes as a prompt through the CLIP tokenizer
 * (cleaning, pre-tokenizer, BPE) and the raw BPE path. Invalid UTF-8 must give
 * LD_ERR_INVALID_ARGUMENT; everything else must give 77 ids that start with
 * BOS, hold EOS, and stay inside the vocabulary. The vocabulary comes from
 * $LEANDIFF_TOKENIZER_DIR, else $LEANDIFF_TESTDATA/tokenizer, else
 * ../shared/testdata/tokenizer. Build line: docs/text.md. */
#include "text/clip_tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static ld_clip_tokenizer *tok;
static ld_ctx *ctx;

static void load_once(void) {
    if (tok) return;
    ctx = ld_ctx_new();
    char dir[4096];
    const char *env = getenv("LEANDIFF_TOKENIZER_DIR");
    const char *td = getenv("LEANDIFF_TESTDATA");
    if (env)
        snprintf(dir, sizeof dir, "%s", env);
    else if (td)
        snprintf(dir, sizeof dir, "%s/tokenizer", td);
    else
        snprintf(dir, sizeof dir, "../shared/testdata/tokenizer");
    if (ld_clip_tokenizer_load(ctx, dir, &tok) != LD_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (set LEANDIFF_TOKENIZER_DIR)\n", ld_ctx_error(ctx));
        abort(); /* the harness cannot run without a vocabulary */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
    ld_status st = ld_clip_tokenize_n(ctx, tok, (const char *)data, size, ids, mask);
    if (st == LD_OK) {
        int eos = 0;
        for (int i = 0; i < LD_CLIP_CONTEXT; i++) {
            if (ids[i] < 0 || ids[i] >= ld_clip_tokenizer_vocab_size(tok)) abort();
            eos |= ids[i] == LD_CLIP_EOS;
        }
        if (ids[0] != LD_CLIP_BOS || !eos || mask[0] != 1) abort();
        int64_t bpe[16];
        size_t n;
        if (ld_clip_bpe(ctx, tok, (const char *)data, size, bpe, 16, &n) != LD_OK) abort();
    } else if (st != LD_ERR_INVALID_ARGUMENT) {
        abort();
    }
    return 0;
}
