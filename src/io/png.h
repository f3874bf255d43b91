/* PNG files through libpng: RGB8 images with text chunks (the A1111
 * "parameters" infotext), written atomically, and read back.
 *
 *     const char *text[] = {"parameters", infotext, NULL};
 *     LD_TRY(ld_png_write(ctx, "out.png", rgb, w, h, text));   // temp file + rename
 *     uint8_t *buf; size_t len;
 *     LD_TRY(ld_png_encode(ctx, rgb, w, h, text, &buf, &len)); // in memory (server); free(buf)
 *
 *     ld_png png;
 *     LD_TRY(ld_png_read(ctx, "out.png", 1, &png));           // 1: decode pixels to RGB8 too
 *     const char *params = ld_png_text(&png, "parameters");   // NULL if absent
 *     ld_png_free(&png);
 *
 * Text values are UTF-8: pure ASCII goes into a tEXt chunk (as A1111/PIL
 * write it), anything else into an uncompressed iTXt chunk. Reading returns
 * tEXt (Latin-1, converted to UTF-8), zTXt and iTXt values as UTF-8.
 */
#ifndef LD_IO_PNG_H
#define LD_IO_PNG_H

#include "base/status.h"
#include <stddef.h>
#include <stdint.h>

/* text: NULL-terminated key, value, key, value, ... list, or NULL. */
ld_status ld_png_write(ld_ctx *ctx, const char *path, const uint8_t *rgb, int width, int height,
                       const char *const *text);
ld_status ld_png_encode(ld_ctx *ctx, const uint8_t *rgb, int width, int height, const char *const *text,
                        uint8_t **out, size_t *len);

typedef struct {
    int width, height;
    uint8_t *rgb;      /* width*height*3, or NULL when pixels were not requested */
    int ntext;
    char **keys, **values;
} ld_png;

ld_status ld_png_read(ld_ctx *ctx, const char *path, int want_pixels, ld_png *out);
/* The same from len bytes in memory; where names them in messages. */
ld_status ld_png_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, int want_pixels, ld_png *out);
const char *ld_png_text(const ld_png *png, const char *key);
void ld_png_free(ld_png *png);

#endif
