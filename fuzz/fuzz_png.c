/* libFuzzer target: arbitrary bytes as an uploaded image (the server's
 * img2img init image and mask), first as raw PNG bytes through ld_png_decode,
 * then as base64 text through ld_base64_decode and the same decoder. Either a
 * clear error or an RGB8 image of the size the header says. */
#include "io/base64.h"
#include "io/png.h"

#include <stdint.h>
#include <stdlib.h>

static void decode(ld_ctx *ctx, const unsigned char *d, size_t n) {
    ld_png png;
    if (ld_png_decode(ctx, "fuzz", d, n, 1, &png) == LD_OK) {
        if (png.width <= 0 || png.height <= 0 || !png.rgb) abort();
        volatile uint8_t last = png.rgb[(size_t)png.width * (size_t)png.height * 3 - 1];
        (void)last;
        ld_png_free(&png);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ld_ctx *ctx;
    if (!ctx) ctx = ld_ctx_new();
    decode(ctx, data, size);
    unsigned char *b;
    size_t n;
    if (ld_base64_decode((const char *)data, size, &b, &n)) {
        decode(ctx, b, n);
        free(b);
    }
    return 0;
}
