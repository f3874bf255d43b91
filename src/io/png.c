/* PNG writing and reading with libpng (see png.h). libpng reports errors by
 * longjmp; the error callback stores the message first, and every object
 * that must survive the jump is volatile or owned by a struct. */
#include "io/png.h"

#include "io/fileio.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LD_PNG_MAX_SIDE 65535
#define LD_PNG_MAX_CHUNK (16u << 20)      /* largest ancillary chunk read (text) */
#define LD_PNG_MAX_PIXELS (1ull << 28)    /* 16384 x 16384: the largest picture decoded */

typedef struct {
    char msg[256];
} png_err;

static void on_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    ld_log_debug("libpng: %s", msg);
}

/* ---- writing ---- */

typedef struct {
    FILE *f;          /* file sink, or */
    uint8_t *buf;     /* memory sink */
    size_t len, cap;
    int failed;
} sink;

static void sink_write(png_structp png, png_bytep data, size_t n) {
    sink *s = png_get_io_ptr(png);
    if (s->failed) return;
    if (s->f) {
        if (fwrite(data, 1, n, s->f) != n) s->failed = 1;
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + n) cap *= 2;
        uint8_t *p = realloc(s->buf, cap);
        if (!p) {
            s->failed = 1;
            return;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void sink_flush(png_structp png) { (void)png; }

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

static ld_status encode(ld_ctx *ctx, sink *out, const uint8_t *rgb, int w, int h, const char *const *text) {
    if (!rgb || w <= 0 || h <= 0 || w > LD_PNG_MAX_SIDE || h > LD_PNG_MAX_SIDE)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "cannot write a %dx%d PNG", w, h);
    int ntext = 0;
    if (text)
        while (text[2 * ntext]) {
            if (!text[2 * ntext + 1]) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "PNG text key without value");
            size_t kl = strlen(text[2 * ntext]);
            if (kl < 1 || kl > 79)
                return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "PNG text key '%s' must have 1..79 characters",
                               text[2 * ntext]);
            ntext++;
        }
    png_err err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_text *volatile chunks = ntext ? calloc((size_t)ntext, sizeof(png_text)) : NULL;
    if (!png || !info || (ntext && !chunks)) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory creating a PNG writer");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        return ld_fail(ctx, LD_ERR_IO, "PNG encoding failed: %s", err.msg);
    }
    png_set_write_fn(png, out, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < ntext; i++) {
        chunks[i].key = (png_charp)text[2 * i];
        chunks[i].text = (png_charp)text[2 * i + 1];
        chunks[i].compression = is_ascii(text[2 * i + 1]) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        if (chunks[i].compression == PNG_TEXT_COMPRESSION_NONE) chunks[i].text_length = strlen(text[2 * i + 1]);
        else chunks[i].itxt_length = strlen(text[2 * i + 1]);
    }
    if (ntext) png_set_text(png, info, chunks, ntext);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(chunks);
    if (out->failed) return ld_fail(ctx, out->f ? LD_ERR_IO : LD_ERR_NOMEM, "writing the PNG data failed");
    return LD_OK;
}

ld_status ld_png_encode(ld_ctx *ctx, const uint8_t *rgb, int width, int height, const char *const *text,
                        uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    sink s = {0};
    ld_status st = encode(ctx, &s, rgb, width, height, text);
    if (st != LD_OK) {
        free(s.buf);
        return st;
    }
    *out = s.buf;
    *len = s.len;
    return LD_OK;
}

ld_status ld_png_write(ld_ctx *ctx, const char *path, const uint8_t *rgb, int width, int height,
                       const char *const *text) {
    ld_atomic_file af;
    LD_TRY(ld_atomic_open(ctx, &af, path));
    sink s = {.f = af.f};
    ld_status st = encode(ctx, &s, rgb, width, height, text);
    if (st != LD_OK) {
        ld_atomic_abort(&af);
        return ld_prefix_error(ctx, "%s: ", path);
    }
    return ld_atomic_commit(ctx, &af);
}

/* ---- reading ---- */

const char *ld_png_text(const ld_png *png, const char *key) {
    for (int i = 0; i < png->ntext; i++)
        if (!strcmp(png->keys[i], key)) return png->values[i];
    return NULL;
}

void ld_png_free(ld_png *png) {
    if (!png) return;
    free(png->rgb);
    for (int i = 0; i < png->ntext; i++) {
        free(png->keys[i]);
        free(png->values[i]);
    }
    free(png->keys);
    free(png->values);
    memset(png, 0, sizeof *png);
}

static char *latin1_to_utf8(const char *s, size_t n) {
    char *o = malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) *p++ = (char)c;
        else {
            *p++ = (char)(0xc0 | (c >> 6));
            *p++ = (char)(0x80 | (c & 0x3f));
        }
    }
    *p = 0;
    return o;
}

/* Appends the text chunks libpng has collected so far (skipping ones we have). */
static int collect_text(png_structp png, png_infop info, ld_png *out) {
    png_textp t;
    int n = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < n; i++) {
        if (ld_png_text(out, t[i].key)) continue;
        char **k = realloc(out->keys, sizeof(char *) * (size_t)(out->ntext + 1));
        if (!k) return 0;
        out->keys = k;
        char **v = realloc(out->values, sizeof(char *) * (size_t)(out->ntext + 1));
        if (!v) return 0;
        out->values = v;
        int latin1 = t[i].compression == PNG_TEXT_COMPRESSION_NONE || t[i].compression == PNG_TEXT_COMPRESSION_zTXt;
        size_t len = latin1 ? t[i].text_length : t[i].itxt_length;
        char *key = latin1_to_utf8(t[i].key, strlen(t[i].key));
        char *val = latin1 ? latin1_to_utf8(t[i].text ? t[i].text : "", t[i].text ? len : 0) : NULL;
        if (!latin1) {
            val = malloc(len + 1);
            if (val) {
                if (len) memcpy(val, t[i].text, len);
                val[len] = 0;
            }
        }
        if (!key || !val) {
            free(key);
            free(val);
            return 0;
        }
        out->keys[out->ntext] = key;
        out->values[out->ntext] = val;
        out->ntext++;
    }
    return 1;
}

/* Reading from memory: the source libpng pulls bytes from. */
typedef struct {
    const unsigned char *p;
    size_t left;
} source;

static void source_read(png_structp png, png_bytep data, size_t n) {
    source *s = png_get_io_ptr(png);
    if (n > s->left) png_error(png, "the file ends early (truncated)");
    memcpy(data, s->p, n);
    s->p += n;
    s->left -= n;
}

ld_status ld_png_decode(ld_ctx *ctx, const char *where, const void *data, size_t len, int want_pixels, ld_png *out) {
    memset(out, 0, sizeof *out);
    if (len < 8 || png_sig_cmp(data, 0, 8)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: not a PNG file", where);
    /* Every chunk must fit in what is there before libpng sees it: a length
     * field claiming gigabytes would otherwise make it allocate and clear them. */
    const unsigned char *b = data;
    for (size_t pos = 8; pos < len;) {
        if (len - pos < 12) return ld_fail(ctx, LD_ERR_FORMAT, "%s: broken PNG: a chunk header is cut off (truncated)", where);
        const size_t n = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 | (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (n > len - pos - 12) {
            char type[5] = "????";
            for (int i = 0; i < 4; i++)
                if ((b[pos + 4 + i] | 0x20) >= 'a' && (b[pos + 4 + i] | 0x20) <= 'z') type[i] = (char)b[pos + 4 + i];
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: broken PNG: chunk '%s' at byte %zu claims %zu bytes, %zu are left "
                           "(truncated)", where, type, pos, n, len - pos - 12);
        }
        if (!memcmp(b + pos + 4, "IEND", 4)) break;
        pos += 12 + n;
    }
    source src = {(const unsigned char *)data + 8, len - 8};
    png_err err = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_infop end = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile row = NULL;
    if (!png || !info || !end) {
        png_destroy_read_struct(&png, &info, &end);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory creating a PNG reader");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, &end);
        free(row);
        ld_png_free(out);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: broken PNG: %s", where, err.msg);
    }
    png_set_read_fn(png, &src, source_read);
    png_set_sig_bytes(png, 8);
    /* a chunk claiming gigabytes must not make libpng allocate (and clear) them
     * before it finds the data missing: text chunks are small */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)LD_PNG_MAX_CHUNK);
    png_set_chunk_cache_max(png, 1000);
    png_set_user_limits(png, LD_PNG_MAX_SIDE, LD_PNG_MAX_SIDE);
    png_read_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    if ((unsigned long long)w * (unsigned long long)h > LD_PNG_MAX_PIXELS) png_error(png, "the picture is too large");
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    /* everything to 8-bit RGB */
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_strip_alpha(png); /* drops tRNS-expanded alpha too */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * 3) png_error(png, "unexpected row size after conversion to RGB");
    out->width = w;
    out->height = h;
    if (want_pixels) {
        out->rgb = malloc((size_t)w * (size_t)h * 3);
        if (!out->rgb) png_error(png, "out of memory for the pixels");
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < h; y++) png_read_row(png, out->rgb + (size_t)y * rowbytes, NULL);
    } else {
        row = malloc(rowbytes);
        if (!row) png_error(png, "out of memory");
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < h; y++) png_read_row(png, row, NULL);
    }
    png_read_end(png, end);
    if (!collect_text(png, info, out) || !collect_text(png, end, out)) png_error(png, "out of memory for text");
    png_destroy_read_struct(&png, &info, &end);
    free(row);
    return LD_OK;
}

ld_status ld_png_read(ld_ctx *ctx, const char *path, int want_pixels, ld_png *out) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    LD_TRY(ld_read_file(ctx, path, &data, &len, (size_t)1 << 30));
    ld_status st = ld_png_decode(ctx, path, data, len, want_pixels, out);
    free(data);
    return st;
}
