/* JPEG decoding and the PNG-or-JPEG reader (see jpeg.h). libjpeg reports
 * errors through a callback that must not return: it longjmps back here, so
 * a broken file is an error, never an exit. Its warnings (data cut short,
 * corrupt entropy data) mean a partly grey picture: refused too. */
#include "io/jpeg.h"

#include "io/fileio.h"

#include <stddef.h>
#include <jpeglib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIXELS (1ull << 28) /* as png.c: 16384 x 16384 */
#define MAX_FILE ((size_t)1 << 30)

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo) { (void)cinfo; } /* warnings are counted (num_warnings) and refused below */

ld_status ld_jpeg_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, ld_png *out) {
    memset(out, 0, sizeof *out);
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_error;
    err.base.output_message = on_message;
    uint8_t *volatile rgb = NULL;
    if (setjmp(err.jump)) {
        free(rgb);
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: not a readable JPEG (%s)", where, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: a CMYK JPEG; convert it to RGB", where);
    }
    if ((unsigned long long)cinfo.image_width * cinfo.image_height > MAX_PIXELS || !cinfo.image_width ||
        !cinfo.image_height) {
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %ux%u is not a size leandiff decodes (at most 16384 x 16384)", where,
                       cinfo.image_width, cinfo.image_height);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const size_t row = (size_t)cinfo.output_width * 3;
    if (cinfo.output_components != 3 || !(rgb = malloc(row * cinfo.output_height))) {
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot hold the decoded picture", where);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW r = rgb + row * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (err.base.num_warnings > 0) { /* data cut short or corrupt: libjpeg filled the gap with grey */
        char msg[JMSG_LENGTH_MAX];
        err.base.format_message((j_common_ptr)&cinfo, msg);
        free(rgb);
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: a truncated or corrupt JPEG (%s)", where, msg);
    }
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    out->rgb = rgb;
    jpeg_destroy_decompress(&cinfo);
    return LD_OK;
}

ld_status ld_picture_read(ld_ctx *ctx, const char *path, ld_png *out) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    LD_TRY(ld_read_file(ctx, path, &data, &len, MAX_FILE));
    const unsigned char *b = (const unsigned char *)data;
    ld_status st;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) st = ld_jpeg_decode(ctx, path, data, len, out);
    else if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) st = ld_png_decode(ctx, path, data, len, 1, out);
    else st = ld_fail(ctx, LD_ERR_FORMAT, "%s: neither a PNG nor a JPEG picture", path);
    free(data);
    return st;
}
