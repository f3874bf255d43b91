/* libFuzzer target: arbitrary bytes as a dataset picture (io/picture.h):
 * PNG, JPEG or WebP by the first bytes, each decoder reached by a seed of
 * its kind. */
#include "io/picture.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ld_ctx *ctx = ld_ctx_new();
    ld_png pic;
    if (ld_picture_decode(ctx, "fuzz", data, size, &pic) == LD_OK) ld_png_free(&pic);
    ld_ctx_free(ctx);
    return 0;
}
