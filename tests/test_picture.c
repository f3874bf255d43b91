/* Pictures of training datasets (io/picture.h) against Pillow, the library
 * a Python training script opens them with (tests/data/pictures,
 * make_pictures.py): an Adobe CMYK JPEG gives Pillow's convert("RGB")
 * exactly, a lossless WebP the source pixels, a lossy WebP with alpha
 * Pillow's RGB; an animated, a truncated and a foreign file are errors
 * naming the file. */
#include "test_util.h"

#include "io/fileio.h"
#include "io/picture.h"

static char g_dir[4200];

/* The picture at name equals the PNG at ref, pixel for pixel. */
static void same_as(ld_ctx *ctx, const char *name, const char *ref) {
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/%s", g_dir, name);
    snprintf(b, sizeof b, "%s/%s", g_dir, ref);
    ld_png pic, want;
    CHECK(ld_picture_read(ctx, a, &pic) == LD_OK, "%s: %s", name, ld_ctx_error(ctx));
    CHECK(ld_png_read(ctx, b, 1, &want) == LD_OK, "%s: %s", ref, ld_ctx_error(ctx));
    size_t diff = 0, n = (size_t)want.width * want.height * 3;
    if (pic.rgb && want.rgb && pic.width == want.width && pic.height == want.height)
        for (size_t i = 0; i < n; i++) diff += pic.rgb[i] != want.rgb[i];
    else
        diff = n + 1;
    CHECK(diff == 0, "%s: %zu of %zu values differ from Pillow's %s", name, diff, n, ref);
    printf("%s %s = Pillow's %s (%dx%d)\n", diff ? "FAIL" : "ok  ", name, ref, want.width, want.height);
    ld_png_free(&pic);
    ld_png_free(&want);
}

int main(void) {
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    snprintf(g_dir, sizeof g_dir, "%s/tests/data/pictures", src ? src : "..");
    ld_ctx *ctx = ld_ctx_new();
    same_as(ctx, "cmyk.jpg", "cmyk_rgb.png");
    same_as(ctx, "lossless.webp", "source.png");
    same_as(ctx, "lossy.webp", "lossy_rgb.png");

    char path[4400];
    ld_png pic;
    snprintf(path, sizeof path, "%s/anim.webp", g_dir);
    CHECK(ld_picture_read(ctx, path, &pic) != LD_OK && strstr(ld_ctx_error(ctx), "anim.webp") &&
              strstr(ld_ctx_error(ctx), "animated") && !pic.rgb,
          "an animated WebP is refused: %s", ld_ctx_error(ctx));
    char *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/lossy.webp", g_dir);
    CHECK(ld_read_file(ctx, path, &data, &len, 1 << 20) == LD_OK, "read lossy.webp");
    for (size_t cut = 12; data && cut < len; cut += len / 7) {
        CHECK(ld_picture_decode(ctx, "cut.webp", data, cut, &pic) != LD_OK && strstr(ld_ctx_error(ctx), "cut.webp") &&
                  !pic.rgb,
              "a WebP cut at %zu of %zu bytes: %s", cut, len, ld_ctx_error(ctx));
    }
    if (data && len > 40) {
        memset(data + 30, 0xa5, len - 30); /* a WebP header over garbage */
        if (ld_picture_decode(ctx, "junk.webp", data, len, &pic) == LD_OK) ld_png_free(&pic);
        else CHECK(strstr(ld_ctx_error(ctx), "junk.webp"), "garbage after a WebP header: %s", ld_ctx_error(ctx));
    }
    free(data);
    CHECK(ld_picture_decode(ctx, "text.bmp", "BM not a picture", 16, &pic) != LD_OK &&
              strstr(ld_ctx_error(ctx), "not a PNG, JPEG or WebP picture") && strstr(ld_ctx_error(ctx), "text.bmp"),
          "other bytes: %s", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
    return test_finish();
}
