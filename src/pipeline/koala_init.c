/* Image-to-image and inpainting inputs (see koala_init.h). */
#include "pipeline/koala_init.h"

#include "pipeline/image_prep.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ld_status ld_koala_prepare_images(ld_ctx *ctx, const ld_image *init, const ld_image *mask, float mask_blur, int W,
                                  int H, ld_image *init_out, ld_image *mask_out) {
    init_out->pixels = mask_out->pixels = NULL;
    LD_TRY(ld_image_resize_lanczos(ctx, init, W, H, init_out));
    if (!mask) return LD_OK;
    ld_image blurred = {0};
    ld_status st = LD_OK;
    if (mask_blur > 0.0f) st = ld_image_gaussian_blur(ctx, mask, mask_blur, &blurred);
    if (st == LD_OK) st = ld_image_resize_lanczos(ctx, blurred.pixels ? &blurred : mask, W, H, mask_out);
    ld_image_free(&blurred);
    if (st != LD_OK) ld_image_free(init_out);
    return st;
}

/* The mask processor's value of one RGB8 pixel: PIL convert("L") = (r 19595
 * + g 38470 + b 7471 + 0x8000) >> 16, then / 255 binarised at 0.5. */
static int mask_bit(const uint8_t *px) {
    const unsigned l = (px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16;
    return (float)l / 255.0f < 0.5f ? 0 : 1;
}

static ld_status encode(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const ld_image *mask,
                        const float *encode_noise, double scaling_factor, int C, int h, int w, float *image_latents) {
    const int H = init->height, W = init->width;
    const size_t plane = (size_t)H * W, lplane = (size_t)h * w;
    float *x = malloc(sizeof(float) * 3 * plane), *moments = malloc(sizeof(float) * 2 * (size_t)C * lplane);
    ld_status st = x && moments ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the init image");
    if (st == LD_OK && !ld_vae_has_encoder(vae))
        st = ld_fail(ctx, LD_ERR_MODEL, "the VAE has no encoder weights: image-to-image needs them");
    if (st == LD_OK) {
        /* image_processor: x / 255, then 2x - 1 (NCHW); the masked image is
         * that times (mask < 0.5) */
        for (size_t p = 0; p < plane; p++) {
            const float keep = mask && mask_bit(mask->pixels + p * 3) ? 0.0f : 1.0f;
            for (int c = 0; c < 3; c++)
                x[c * plane + p] = (2.0f * ((float)init->pixels[p * 3 + c] / 255.0f) - 1.0f) * keep;
        }
        st = ld_vae_encode(ctx, vae, x, 1, H, W, moments);
    }
    for (size_t i = 0; st == LD_OK && i < (size_t)C * lplane; i++) {
        float logvar = moments[(size_t)C * lplane + i];
        logvar = logvar < -30.0f ? -30.0f : logvar > 20.0f ? 20.0f : logvar;
        const float std = expf(0.5f * logvar);
        image_latents[i] = (float)scaling_factor * (moments[i] + std * encode_noise[i]);
    }
    free(x);
    free(moments);
    return st;
}

ld_status ld_koala_encode_init(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const float *encode_noise,
                               double scaling_factor, int C, int h, int w, float *image_latents) {
    return encode(ctx, vae, init, NULL, encode_noise, scaling_factor, C, h, w, image_latents);
}

ld_status ld_koala_encode_masked(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const ld_image *mask,
                                 const float *encode_noise, double scaling_factor, int C, int h, int w,
                                 float *masked_latents) {
    return encode(ctx, vae, init, mask, encode_noise, scaling_factor, C, h, w, masked_latents);
}

void ld_koala_mask_latents(const ld_image *mask, int h, int w, float *out) {
    const int H = mask->height, W = mask->width;
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            /* F.interpolate(mode="nearest"): src = floor(dst * in / out) */
            const int sy = (int)floor((double)y * H / h), sx = (int)floor((double)xx * W / w);
            out[(size_t)y * w + xx] = (float)mask_bit(mask->pixels + ((size_t)sy * W + sx) * 3);
        }
}
