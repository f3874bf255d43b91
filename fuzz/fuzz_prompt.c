/* libFuzzer target: arbitrary bytes as an A1111-syntax prompt through the
 * parser (text/prompt_syntax.h). Either a clear error, or pieces whose
 * weights are finite and whose texts are NUL-terminated; BREAK pieces have
 * weight -1 times the bracket weights. */
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ld_ctx *ctx;
    if (!ctx) ctx = ld_ctx_new();
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0; /* prompts are C strings: a NUL ends one */
    ld_prompt_pieces pp;
    if (ld_prompt_parse(ctx, s, &pp) == LD_OK) {
        if (pp.n == 0) abort();
        for (size_t i = 0; i < pp.n; i++) {
            if (!pp.p[i].text || strlen(pp.p[i].text) > size) abort();
            if (isnan(pp.p[i].weight)) abort();
        }
        ld_prompt_pieces_free(&pp);
    }
    free(s);
    return 0;
}
