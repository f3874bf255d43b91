/* JPEG pictures (libjpeg-turbo), decoded to the same RGB8 picture as PNG
 * (io/png.h's ld_png, without text chunks), and one reader for both by the
 * file's first bytes, for the places that take photographs: training
 * datasets.
 *
 *     ld_png pic;
 *     LD_TRY(ld_picture_read(ctx, "cat.jpg", &pic));   // PNG or JPEG
 *     ... pic.rgb, pic.width, pic.height ...
 *     ld_png_free(&pic);
 *
 * Greyscale and YCbCr JPEGs become RGB; CMYK ones and anything malformed,
 * truncated or larger than 16384 x 16384 pixels are errors naming the file.
 */
#ifndef LD_IO_JPEG_H
#define LD_IO_JPEG_H

#include "io/png.h"

ld_status ld_jpeg_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out);
/* A PNG or JPEG file, told apart by its signature. */
ld_status ld_picture_read(ld_ctx *ctx, const char *path, ld_png *out);

#endif
