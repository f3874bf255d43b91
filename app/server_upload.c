/* Uploaded pictures of `leandiff serve` (see server_upload.h): header sizes
 * first, then libpng's simplified reader (PNG, keeping alpha) or io/jpeg.h. */
#include "server_upload.h"

#include "io/jpeg.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errn, const char *fmt, const char *what, const char *more) {
    snprintf(err, errn, fmt, what, more);
    return 0;
}

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long be32(const uint8_t *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

int upload_size(const char *what, const uint8_t *d, size_t len, int *w, int *h, char *err, size_t errn) {
    *w = *h = 0;
    if (len >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) {
        if (len < 24 || memcmp(d + 12, "IHDR", 4)) return fail(err, errn, "%s: broken PNG (no IHDR header)%s", what, "");
        unsigned long pw = be32(d + 16), ph = be32(d + 20);
        if (!pw || !ph || pw > 0x7fffffff || ph > 0x7fffffff)
            return fail(err, errn, "%s: broken PNG (width or height 0 or too large)%s", what, "");
        *w = (int)pw, *h = (int)ph;
        return 1;
    }
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
        /* walk the markers up to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC) */
        size_t i = 2;
        while (i + 4 <= len) {
            if (d[i] != 0xff) return fail(err, errn, "%s: broken JPEG (bad marker)%s", what, "");
            uint8_t m = d[i + 1];
            if (m == 0xff) { /* fill byte */
                i++;
                continue;
            }
            if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* markers without a length */
                i += 2;
                continue;
            }
            if (m == 0xd9 || m == 0xda) break; /* end of image, start of scan: no frame before */
            unsigned seg = be16(d + i + 2);
            if (seg < 2 || i + 2 + seg > len) break;
            if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
                if (seg < 7) break;
                *h = (int)be16(d + i + 5), *w = (int)be16(d + i + 7);
                if (!*w || !*h) return fail(err, errn, "%s: broken JPEG (width or height 0)%s", what, "");
                return 1;
            }
            i += 2 + seg;
        }
        return fail(err, errn, "%s: broken JPEG (no frame header)%s", what, "");
    }
    return fail(err, errn, "%s: not a PNG or JPEG picture (the formats accepted)%s", what, "");
}

static int decode_png(const char *what, const void *data, size_t len, upload_image *out, char *err, size_t errn) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, data, len))
        return fail(err, errn, "%s: broken PNG (%s)", what, img.message);
    const int has_alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    img.format = PNG_FORMAT_RGBA;
    const size_t n = (size_t)img.width * img.height;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba) {
        png_image_free(&img);
        return fail(err, errn, "%s: out of memory%s", what, "");
    }
    if (!png_image_finish_read(&img, NULL, rgba, 0, NULL)) {
        free(rgba);
        return fail(err, errn, "%s: broken PNG (%s)", what, img.message);
    }
    int transparent = 0;
    for (size_t i = 0; has_alpha && i < n && !transparent; i++) transparent = rgba[4 * i + 3] != 255;
    out->rgb = malloc(n * 3);
    out->alpha = transparent ? malloc(n) : NULL;
    if (!out->rgb || (transparent && !out->alpha)) {
        free(rgba);
        upload_image_free(out);
        return fail(err, errn, "%s: out of memory%s", what, "");
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(out->rgb + 3 * i, rgba + 4 * i, 3);
        if (out->alpha) out->alpha[i] = rgba[4 * i + 3];
    }
    free(rgba);
    out->width = (int)img.width, out->height = (int)img.height;
    return 1;
}

int upload_decode(const char *what, const void *data, size_t len, upload_image *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    int w, h;
    if (!upload_size(what, data, len, &w, &h, err, errn)) return 0;
    if (w > UPLOAD_MAX_SIDE || h > UPLOAD_MAX_SIDE || (unsigned long long)w * h > UPLOAD_MAX_PIXELS) {
        snprintf(err, errn, "%s is %dx%d pixels, more than this server decodes (sides up to %d, %u pixels in all)",
                 what, w, h, UPLOAD_MAX_SIDE, UPLOAD_MAX_PIXELS);
        return 0;
    }
    if (((const uint8_t *)data)[0] == 0x89) return decode_png(what, data, len, out, err, errn);
    ld_ctx *ctx = ld_ctx_new();
    if (!ctx) return fail(err, errn, "%s: out of memory%s", what, "");
    ld_png pic;
    if (ld_jpeg_decode(ctx, what, data, len, &pic) != LD_OK) {
        snprintf(err, errn, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 0;
    }
    ld_ctx_free(ctx);
    if (pic.width != w || pic.height != h) { /* a second frame header disagreeing with the first */
        snprintf(err, errn, "%s: broken JPEG (frame %dx%d, decoded %dx%d)", what, w, h, pic.width, pic.height);
        ld_png_free(&pic);
        return 0;
    }
    out->rgb = pic.rgb;
    out->width = pic.width, out->height = pic.height;
    pic.rgb = NULL;
    ld_png_free(&pic);
    return 1;
}

void upload_image_free(upload_image *im) {
    free(im->rgb);
    free(im->alpha);
    im->rgb = im->alpha = NULL;
}

uint8_t *upload_mask_rgb(const upload_image *im, int transparent_repaints) {
    const size_t n = (size_t)im->width * im->height;
    uint8_t *m = malloc(n * 3);
    if (!m) return NULL;
    if (!im->alpha) {
        memcpy(m, im->rgb, n * 3);
        return m;
    }
    for (size_t i = 0; i < n; i++) {
        const int repaint = transparent_repaints ? im->alpha[i] == 0 : im->alpha[i] > 127;
        memset(m + 3 * i, repaint ? 255 : 0, 3);
    }
    return m;
}
