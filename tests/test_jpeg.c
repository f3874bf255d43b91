/* JPEG pictures for training datasets (io/jpeg.h): a picture compressed here
 * with libjpeg at quality 95 decodes within JPEG's error of the original, a
 * greyscale one becomes three equal channels, ld_picture_read tells PNG and
 * JPEG apart, and truncated, empty or foreign bytes are errors naming the
 * file. */
#include "test_util.h"

#include "io/fileio.h"
#include "io/jpeg.h"
#include "io/picture.h"

#include <stddef.h>
#include <jpeglib.h>

static unsigned char *compress(const uint8_t *px, int w, int h, int comps, unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *buf = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, len);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h, c.input_components = comps;
    c.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return buf;
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    const char *dir = test_tmp_dir("jpeg");
    char path[4400];
    enum { W = 37, H = 23 };
    uint8_t px[W * H * 3], grey[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            px[(y * W + x) * 3] = (uint8_t)(x * 6), px[(y * W + x) * 3 + 1] = (uint8_t)(y * 10);
            px[(y * W + x) * 3 + 2] = (uint8_t)(128 + (x - y) * 2);
            grey[y * W + x] = (uint8_t)(x * 3 + y * 4);
        }
    unsigned long len = 0;
    unsigned char *jpg = compress(px, W, H, 3, &len);
    snprintf(path, sizeof path, "%.4000s/colour.jpg", dir);
    CHECK(ld_write_file(ctx, path, jpg, len) == LD_OK, "write jpg");
    ld_png pic;
    CHECK(ld_picture_read(ctx, path, &pic) == LD_OK, "decode: %s", ld_ctx_error(ctx));
    CHECK(pic.width == W && pic.height == H && pic.rgb, "size %dx%d", pic.width, pic.height);
    double err = 0;
    for (int i = 0; pic.rgb && i < W * H * 3; i++) err += fabs((double)pic.rgb[i] - px[i]);
    CHECK(err / (W * H * 3) < 4, "mean error %.2f levels at quality 95", err / (W * H * 3));
    ld_png_free(&pic);

    /* truncated: an error naming the file, nothing returned */
    snprintf(path, sizeof path, "%.4000s/truncated.jpg", dir);
    ld_write_file(ctx, path, jpg, len / 2);
    CHECK(ld_picture_read(ctx, path, &pic) != LD_OK && strstr(ld_ctx_error(ctx), "truncated.jpg") && !pic.rgb,
          "truncated JPEG: %s", ld_ctx_error(ctx));
    CHECK(ld_jpeg_decode(ctx, "empty", jpg, 0, &pic) != LD_OK, "empty input refused");
    CHECK(ld_jpeg_decode(ctx, "cut", jpg, len - 40, &pic) != LD_OK && strstr(ld_ctx_error(ctx), "truncated"),
          "a JPEG cut inside its picture data: %s", ld_ctx_error(ctx));
    free(jpg);

    jpg = compress(grey, W, H, 1, &len);
    CHECK(ld_jpeg_decode(ctx, "grey", jpg, len, &pic) == LD_OK, "greyscale: %s", ld_ctx_error(ctx));
    int equal = pic.rgb != NULL;
    for (int i = 0; equal && i < W * H; i++)
        equal = pic.rgb[3 * i] == pic.rgb[3 * i + 1] && pic.rgb[3 * i] == pic.rgb[3 * i + 2];
    CHECK(equal, "greyscale becomes three equal channels");
    ld_png_free(&pic);
    free(jpg);

    snprintf(path, sizeof path, "%.4000s/pic.png", dir);
    CHECK(ld_png_write(ctx, path, px, W, H, NULL) == LD_OK, "write png");
    CHECK(ld_picture_read(ctx, path, &pic) == LD_OK && pic.width == W && !memcmp(pic.rgb, px, sizeof px),
          "a PNG through the same reader");
    ld_png_free(&pic);
    snprintf(path, sizeof path, "%.4000s/text.jpg", dir);
    ld_write_file(ctx, path, "not a picture", 13);
    CHECK(ld_picture_read(ctx, path, &pic) != LD_OK && strstr(ld_ctx_error(ctx), "not a PNG, JPEG or WebP"),
          "other bytes: %s", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
    return test_finish();
}
