/* Images of `leandiff serve` (see server_image.h), on src/io/png.h and
 * src/pipeline/infotext.h like `leandiff generate`.
 */
#include "server_image.h"
#include "io/fileio.h"
#include "io/png.h"
#include "pipeline/infotext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    ld_ctx *ctx = ld_ctx_new();
    ld_atomic_file af;
    /* Never over an existing file (io/fileio.h), and never half-written. */
    ld_status st = ld_path_join(ctx, path, sizeof path, outputs, file);
    if (st == LD_OK) st = ld_atomic_open_new(ctx, &af, path);
    if (st == LD_OK && fwrite(png, 1, len, af.f) != len) {
        ld_atomic_abort(&af);
        st = ld_fail(ctx, LD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (st == LD_OK) st = ld_atomic_commit(ctx, &af);
    if (st != LD_OK) {
        fprintf(stderr, "leandiff serve: --outputs: %s\n", ld_ctx_error(ctx));
        file[0] = 0;
    }
    ld_ctx_free(ctx);
    return st == LD_OK;
}
