/* Pictures for the places that take photographs (training datasets): PNG,
 * JPEG (io/jpeg.h) or WebP, told apart by their first bytes and decoded to
 * RGB8 (io/png.h's ld_png, without text chunks), the picture Pillow's
 * Image.open(f).convert("RGB") gives a Python training script.
 *
 *     ld_png pic;
 *     LD_TRY(ld_picture_read(ctx, "cat.webp", &pic));
 *     ... pic.rgb, pic.width, pic.height ...
 *     ld_png_free(&pic);
 *
 * WebP (libwebp): lossy or lossless, alpha dropped as convert("RGB") drops
 * it; an animated WebP is refused (one picture a file). Anything else, a
 * malformed or truncated file, or one larger than 16384 x 16384 pixels, is
 * an error naming it.
 */
#ifndef LD_IO_PICTURE_H
#define LD_IO_PICTURE_H

#include "io/png.h"

ld_status ld_picture_read(ld_ctx *ctx, const char *path, ld_png *out);
/* The same from bytes in memory (where names them in messages). */
ld_status ld_picture_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out);
ld_status ld_webp_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out);

#endif
