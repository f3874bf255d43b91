/* PNG writer/reader: pixel and text round trip (ASCII tEXt and UTF-8 iTXt),
 * the raw tEXt "parameters" chunk as A1111 readers expect it, in-memory
 * encoding equal to the file, and clear errors for bad input. */
#include "io/base64.h"
#include "io/png.h"
#include "test_util.h"

#include <unistd.h>

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Finds a chunk of the given type whose data starts with `prefix`. */
static int has_chunk(const uint8_t *b, size_t n, const char *type, const char *prefix, size_t plen) {
    size_t p = 8;
    while (p + 12 <= n) {
        uint32_t len = (uint32_t)b[p] << 24 | (uint32_t)b[p + 1] << 16 | (uint32_t)b[p + 2] << 8 | b[p + 3];
        if (!memcmp(b + p + 4, type, 4) && len >= plen && !memcmp(b + p + 8, prefix, plen)) return 1;
        p += 12 + (size_t)len;
    }
    return 0;
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    const char *dir = test_tmp_dir("png");
    char path[4200], path2[4200];
    snprintf(path, sizeof path, "%s/rt.png", dir);
    snprintf(path2, sizeof path2, "%s/utf8.png", dir);
    remove(path);
    remove(path2);

    int w = 37, h = 23;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    uint64_t seed = 9;
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)((test_rand(&seed) + 1.0f) * 127.9f);
    const char *params = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42";
    const char *text[] = {"parameters", params, "Software", "leandiff", NULL};
    CHECK(ld_png_write(ctx, path, rgb, w, h, text) == LD_OK, "%s", ld_ctx_error(ctx));

    ld_png png;
    CHECK(ld_png_read(ctx, path, 1, &png) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(png.width == w && png.height == h, "size %dx%d", png.width, png.height);
    CHECK(png.rgb && !memcmp(png.rgb, rgb, (size_t)w * h * 3), "pixels differ after the round trip");
    const char *got = ld_png_text(&png, "parameters");
    CHECK(got && !strcmp(got, params), "parameters text: %s", got ? got : "(missing)");
    CHECK(ld_png_text(&png, "Software") && !strcmp(ld_png_text(&png, "Software"), "leandiff"), "second text");
    CHECK(!ld_png_text(&png, "Comment"), "absent key found");
    ld_png_free(&png);

    /* raw file: a tEXt chunk "parameters\0<text>" (what A1111 and PIL read) */
    size_t n;
    uint8_t *bytes = read_all(path, &n);
    CHECK(bytes && n > 8 && !memcmp(bytes, "\x89PNG\r\n\x1a\n", 8), "PNG signature");
    char prefix[256];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "parameters%c%s", 0, "a cat\nNeg");
    CHECK(bytes && has_chunk(bytes, n, "tEXt", prefix, plen), "no tEXt parameters chunk");

    /* in-memory encoding gives the same bytes */
    uint8_t *mem;
    size_t mlen;
    CHECK(ld_png_encode(ctx, rgb, w, h, text, &mem, &mlen) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(mlen == n && bytes && !memcmp(mem, bytes, n), "encode() differs from write()");
    free(mem);

    /* UTF-8 text goes to iTXt and comes back unchanged; text-only read */
    const char *utf = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac, koala \xf0\x9f\x90\xa8";
    const char *text2[] = {"parameters", utf, NULL};
    CHECK(ld_png_write(ctx, path2, rgb, w, h, text2) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_png_read(ctx, path2, 0, &png) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(png.rgb == NULL && png.width == w, "text-only read");
    got = ld_png_text(&png, "parameters");
    CHECK(got && !strcmp(got, utf), "UTF-8 text: %s", got ? got : "(missing)");
    ld_png_free(&png);
    free(bytes);
    bytes = read_all(path2, &n);
    CHECK(bytes && has_chunk(bytes, n, "iTXt", "parameters", 11), "no iTXt chunk for UTF-8 text");

    /* errors: not a PNG, truncated PNG, missing file, unwritable path, bad sizes */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/not.png", dir);
    FILE *f = fopen(bad, "wb");
    fputs("GIF89a this is not a png", f);
    fclose(f);
    CHECK(ld_png_read(ctx, bad, 0, &png) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "not a PNG"), "non-PNG: %s",
          ld_ctx_error(ctx));
    f = fopen(bad, "wb");
    fwrite(bytes, 1, n / 2, f);
    fclose(f);
    CHECK(ld_png_read(ctx, bad, 1, &png) == LD_ERR_FORMAT, "truncated PNG: %s", ld_ctx_error(ctx));
    printf("truncated: %s\n", ld_ctx_error(ctx));
    CHECK(ld_png_read(ctx, "/nonexistent/x.png", 0, &png) == LD_ERR_IO, "missing file");
    CHECK(ld_png_write(ctx, "/nonexistent-dir/sub/x.png", rgb, w, h, text) != LD_OK, "unwritable path accepted");
    CHECK(access("/nonexistent-dir/sub/x.png", F_OK) != 0, "file appeared");
    snprintf(bad, sizeof bad, "%s/zero.png", dir);
    remove(bad);
    CHECK(ld_png_write(ctx, bad, rgb, 0, h, NULL) == LD_ERR_INVALID_ARGUMENT && access(bad, F_OK) != 0,
          "zero width accepted or file left behind");
    const char *badkey[] = {"", "x", NULL};
    CHECK(ld_png_write(ctx, bad, rgb, w, h, badkey) == LD_ERR_INVALID_ARGUMENT && access(bad, F_OK) != 0,
          "empty key accepted");
    /* no temp files left in the directory */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    CHECK(system(cmd) != 0, "temporary file left in %s", dir);

    free(bytes);
    free(rgb);
    /* a chunk whose length field claims 1.8 GB in a 110-byte file (found by
     * fuzz_png: libpng allocated and cleared it, seconds per call): refused
     * from the chunk list before libpng runs */
    {
        static const unsigned char huge[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                             0, 0, 0, 0x60, 0, 0, 0, 0x40, 8, 2, 0, 0, 0, 0x6a, 0x56, 0xe5, 0x59,
                                             0x6e, 0, 0, 0xa2, 't', 'E', 'X', 't', 1, 2, 3, 4, 5, 6, 7, 8};
        ld_png png;
        ld_status st = ld_png_decode(ctx, "huge", huge, sizeof huge, 1, &png);
        CHECK(st == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "tEXt") && strstr(ld_ctx_error(ctx), "claims"),
              "a chunk longer than the file: %s", ld_ctx_error(ctx));
        if (st == LD_OK) ld_png_free(&png);
        /* the same bytes as base64 round trip */
        char *b64 = ld_base64_encode(huge, sizeof huge);
        unsigned char *back = NULL;
        size_t n = 0;
        CHECK(b64 && ld_base64_decode(b64, strlen(b64), &back, &n) && n == sizeof huge && !memcmp(back, huge, n),
              "base64 round trip");
        free(back);
        back = NULL;
        CHECK(!ld_base64_decode("QUJD=x", 6, &back, &n) || (free(back), 0), "data after padding refused");
        CHECK(!ld_base64_decode("Q", 1, &back, &n) || (free(back), 0), "a lone character refused");
        free(b64);
    }
    ld_ctx_free(ctx);
    return test_finish();
}
