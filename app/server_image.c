/* Images of `leandiff serve` (see server_image.h), on src/io/png.h and
 * src/pipeline/infotext.h like `leandiff generate`.
 */
#include "server_image.h"
#include "io/png.h"
#include "pipeline/infotext.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int server_png_encode(ld_ctx *ctx, const ld_image *img, const char *infotext, unsigned char **png, size_t *len) {
    const char *text[] = {"parameters", infotext, NULL};
    *png = NULL;
    *len = 0;
    if (img->channels != 3) {
        ld_fail(ctx, LD_ERR_INTERNAL, "the pipeline returned %d channels, expected 3", img->channels);
        return 0;
    }
    return ld_png_encode(ctx, img->pixels, img->width, img->height, infotext ? text : NULL, png, len) == LD_OK;
}

char *server_infotext(ld_ctx *ctx, const gen_request *req, const ld_gen_info *info) {
    char *text = NULL;
    if (ld_infotext_format(ctx, info, req->prompt, req->negative_prompt, &text) != LD_OK) return NULL;
    return text;
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

int server_save_png(const char *outputs, const char *job_id, double created, int index, const unsigned char *png,
                    size_t len, char *file, size_t filen) {
    time_t t = (time_t)created;
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    /* Only the clock, the job id (hex) and the index: nothing the client wrote. */
    snprintf(file, filen, "leandiff-%s-%.12s-%d.png", stamp, job_id, index);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", outputs, file) >= sizeof path) {
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
