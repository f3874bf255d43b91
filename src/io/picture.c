/* PNG, JPEG or WebP pictures by their signature, and WebP decoding
 * (see picture.h). */
#include "io/picture.h"

#include "io/fileio.h"
#include "io/jpeg.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

#define MAX_SIDE 16384
#define MAX_FILE ((size_t)1 << 30)

ld_status ld_webp_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out) {
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(data, len, &f) != VP8_STATUS_OK)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: not a readable WebP", where);
    if (f.has_animation) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: an animated WebP (one picture a file)", where);
    if (f.width < 1 || f.height < 1 || f.width > MAX_SIDE || f.height > MAX_SIDE)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %dx%d is not a size leandiff decodes (at most 16384 x 16384)", where,
                       f.width, f.height);
    const size_t row = (size_t)f.width * 3, n = row * (size_t)f.height;
    uint8_t *rgb = malloc(n);
    if (!rgb) return ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot hold the decoded picture", where);
    if (!WebPDecodeRGBInto(data, len, rgb, n, (int)row)) { /* truncated or corrupt data */
        free(rgb);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: a truncated or corrupt WebP", where);
    }
    out->width = f.width;
    out->height = f.height;
    out->rgb = rgb;
    return LD_OK;
}

ld_status ld_picture_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out) {
    memset(out, 0, sizeof *out);
    const unsigned char *b = data;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return ld_jpeg_decode(ctx, where, data, len, out);
    if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return ld_png_decode(ctx, where, data, len, 1, out);
    if (len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return ld_webp_decode(ctx, where, data, len, out);
    return ld_fail(ctx, LD_ERR_FORMAT, "%s: not a PNG, JPEG or WebP picture", where);
}

ld_status ld_picture_read(ld_ctx *ctx, const char *path, ld_png *out) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    LD_TRY(ld_read_file(ctx, path, &data, &len, MAX_FILE));
    ld_status st = ld_picture_decode(ctx, path, data, len, out);
    free(data);
    return st;
}
