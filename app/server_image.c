/* Images of `leandiff serve`: PNG bytes with the A1111 "parameters" text,
 * the infotext itself, base64 for the JSON answers, and saving into
 * --outputs under a name the server makes (no client-controlled paths).
 *
 * TEMPORARY: the PNG writer and infotext formatter belong to branch
 * koala-pipeline (src/io/png.h, src/pipeline/infotext.h); until it lands the
 * two functions below stand in, and switching is a change here only.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    unsigned char *data;
    size_t len, cap;
    int failed;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->failed) return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + n) cap *= 2;
        unsigned char *d = realloc(m->data, cap);
        if (!d) {
            m->failed = 1;
            return;
        }
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

int server_png_encode(const ld_image *img, const char *infotext, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = NULL;
    if (!info) goto fail;
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (infotext) {
        png_text t = {0};
        t.compression = PNG_TEXT_COMPRESSION_NONE;
        t.key = "parameters";
        t.text = (char *)infotext;
        png_set_text(png, info, &t, 1);
    }
    rows = malloc((size_t)img->height * sizeof *rows);
    if (!rows) goto fail;
    for (int y = 0; y < img->height; y++) rows[y] = img->pixels + (size_t)y * img->width * img->channels;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (m.failed) {
        free(m.data);
        return 0;
    }
    *out = m.data;
    *len = m.len;
    return 1;
fail:
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(m.data);
    return 0;
}

/* A1111 quotes a value holding ',', ':' or a newline as a JSON string. */
static void put_value(char *buf, size_t n, size_t *pos, const char *key, const char *v) {
    int q = strpbrk(v, ",:\n") != NULL;
    if (*pos >= n) return;
    *pos += (size_t)snprintf(buf + *pos, n - *pos, "%s%s: ", *pos && buf[*pos - 1] != '\n' ? ", " : "", key);
    if (!q) {
        if (*pos < n) *pos += (size_t)snprintf(buf + *pos, n - *pos, "%s", v);
        return;
    }
    json_t *s = json_string(v);
    char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (d && *pos < n) *pos += (size_t)snprintf(buf + *pos, n - *pos, "%s", d);
    free(d);
    json_decref(s);
}

char *server_infotext(const gen_request *req, const ld_gen_info *in) {
    size_t n = strlen(req->prompt) + (req->negative_prompt ? strlen(req->negative_prompt) : 0) + 1024;
    char *buf = malloc(n);
    if (!buf) return NULL;
    size_t pos = (size_t)snprintf(buf, n, "%s\n", req->prompt);
    if (req->negative_prompt && *req->negative_prompt)
        pos += (size_t)snprintf(buf + pos, n - pos, "Negative prompt: %s\n", req->negative_prompt);
    char v[160];
    snprintf(v, sizeof v, "%d", in->steps);
    put_value(buf, n, &pos, "Steps", v);
    put_value(buf, n, &pos, "Sampler", sampler_display_name(in->sampler));
    snprintf(v, sizeof v, "%g", in->cfg_scale);
    put_value(buf, n, &pos, "CFG scale", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)in->seed);
    put_value(buf, n, &pos, "Seed", v);
    snprintf(v, sizeof v, "%dx%d", in->width, in->height);
    put_value(buf, n, &pos, "Size", v);
    put_value(buf, n, &pos, "Model", in->model);
    snprintf(v, sizeof v, "leandiff %s", ld_version());
    put_value(buf, n, &pos, "Version", v);
    return buf;
}

char *base64_encode(const unsigned char *d, size_t len) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 4 * ((len + 2) / 3);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

int server_save_png(const server *s, const job *j, int index, const unsigned char *png, size_t len, char *file,
                    size_t filen) {
    time_t t = (time_t)j->created;
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    /* Only the clock, the job id (hex) and the index: nothing the client wrote. */
    snprintf(file, filen, "leandiff-%s-%.12s-%d.png", stamp, j->id, index);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", s->cfg.outputs, file) >= sizeof path) {
        fprintf(stderr, "leandiff serve: --outputs path too long\n");
        file[0] = 0;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "leandiff serve: cannot create %s: %s\n", path, strerror(errno));
        file[0] = 0;
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, png + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (close(fd) != 0 || done < len) {
        fprintf(stderr, "leandiff serve: cannot write %s: %s\n", path, strerror(errno));
        unlink(path);
        file[0] = 0;
        return 0;
    }
    return 1;
}
