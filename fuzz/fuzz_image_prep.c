/* libFuzzer target: the init-image and mask preparation of image-to-image
 * (what ld_koala_prepare_images chains: PIL GaussianBlur of the mask, then
 * the LANCZOS resize of image and mask) on arbitrary pictures. Bytes 0-4 give the output width and height (1..320), the blur
 * radius (0..63.75) and the channel count (1..4); the rest is decoded as a PNG
 * when it is one (the CLI's and server's path), else used as raw pixels of a
 * small image. Either an error or images of the asked size, a constant
 * picture staying constant. */
#include "io/png.h"
#include "pipeline/image_prep.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(ld_ctx *ctx, const ld_image *im, int W, int H, float blur) {
    ld_image a, b, soft;
    if (ld_image_gaussian_blur(ctx, im, blur, &soft) != LD_OK) abort(); /* every radius here is valid */
    const ld_status sa = ld_image_resize_lanczos(ctx, im, W, H, &a), sb = ld_image_resize_lanczos(ctx, &soft, W, H, &b);
    free(soft.pixels);
    if (sa != LD_OK || sb != LD_OK) abort();
    if (!a.pixels || !b.pixels || a.width != W || a.height != H || b.width != W || b.height != H) abort();
    int flat = 1;
    const size_t n = (size_t)im->width * im->height * im->channels;
    for (size_t i = 1; i < n && flat; i++) flat = im->pixels[i] == im->pixels[0];
    for (size_t i = 0; flat && i < (size_t)W * H * im->channels; i++)
        if (a.pixels[i] != im->pixels[0] || b.pixels[i] != im->pixels[0]) abort();
    free(a.pixels);
    free(b.pixels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ld_ctx *ctx;
    if (!ctx) ctx = ld_ctx_new();
    if (size < 6) return 0;
    const int W = 1 + (data[0] | (data[1] & 1) << 8) % 320, H = 1 + (data[2] | (data[3] & 1) << 8) % 320;
    const float blur = (float)(data[4] & 255) / 4.0f;
    const int C = 1 + (data[1] >> 1) % 4;
    data += 5, size -= 5;
    ld_png png;
    if (ld_png_decode(ctx, "fuzz", data, size, 1, &png) == LD_OK) {
        ld_image im = {png.width, png.height, 3, png.rgb};
        if ((size_t)png.width * png.height <= 1u << 20) check(ctx, &im, W, H, blur);
        ld_png_free(&png);
        return 0;
    }
    /* raw pixels: width from the first byte, as many rows as the bytes fill */
    const int w = 1 + data[0] % 64, h = (int)((size - 1) / ((size_t)w * C));
    if (h < 1) return 0;
    ld_image im = {w, h, C, (uint8_t *)data + 1};
    check(ctx, &im, W, H, blur);
    return 0;
}
