/* JPEG decoding (see jpeg.h). libjpeg reports
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

/* CMYK pixels to RGB as Pillow's convert("RGB") does (its cmyk2rgb on the
 * "CMYK;I" raw mode of Adobe files, whose inks are stored inverted), in
 * place: n pixels of 4 bytes become n of 3. */
static void cmyk_to_rgb(uint8_t *px, size_t n, int adobe_inverted) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *in = px + 4 * i;
        int c[4];
        for (int k = 0; k < 4; k++) c[k] = adobe_inverted ? 255 - in[k] : in[k];
        const int nk = 255 - c[3];
        uint8_t *out = px + 3 * i; /* behind the input: pixel i's output ends before pixel i + 1's input */
        for (int k = 0; k < 3; k++) {
            const int t = c[k] * nk + 128, v = nk - (((t >> 8) + t) >> 8);
            out[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

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
    const int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if ((unsigned long long)cinfo.image_width * cinfo.image_height > MAX_PIXELS || !cinfo.image_width ||
        !cinfo.image_height) {
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %ux%u is not a size leandiff decodes (at most 16384 x 16384)", where,
                       cinfo.image_width, cinfo.image_height);
    }
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const int comps = cmyk ? 4 : 3;
    const size_t row = (size_t)cinfo.output_width * (size_t)comps;
    /* CMYK rows are converted in place: the buffer holds 4 bytes a pixel, the picture keeps the first 3 */
    if (cinfo.output_components != comps || !(rgb = malloc(row * cinfo.output_height))) {
        jpeg_destroy_decompress(&cinfo);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot hold the decoded picture", where);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW r = rgb + row * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &r, 1);
    }
    if (cmyk) cmyk_to_rgb(rgb, (size_t)cinfo.output_width * cinfo.output_height, cinfo.saw_Adobe_marker);
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
