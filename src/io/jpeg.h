/* JPEG pictures (libjpeg-turbo), decoded to the same RGB8 picture as PNG
 * (io/png.h's ld_png, without text chunks); io/picture.h reads any of the
 * formats by the file's first bytes.
 *
 * Greyscale, YCbCr and CMYK/YCCK JPEGs become RGB (CMYK as Pillow's
 * convert("RGB"), Adobe's inverted inks included); anything malformed,
 * truncated or larger than 16384 x 16384 pixels is an error naming the file.
 */
#ifndef LD_IO_JPEG_H
#define LD_IO_JPEG_H

#include "io/png.h"

ld_status ld_jpeg_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out);

#endif
