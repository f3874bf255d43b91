/* Image-to-image and inpainting inputs (see koala_init.h). */
#include "pipeline/koala_init.h"

#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>

ld_status ld_koala_encode_init(ld_ctx *ctx, ld_vae *vae, const ld_image *init, const float *encode_noise,
                               double scaling_factor, int C, int h, int w, float *image_latents) {
    const int H = init->height, W = init->width;
    const size_t plane = (size_t)H * W, lplane = (size_t)h * w;
    float *x = malloc(sizeof(float) * 3 * plane), *moments = malloc(sizeof(float) * 2 * (size_t)C * lplane);
    ld_status st = x && moments ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the init image");
    if (st == LD_OK && !ld_vae_has_encoder(vae))
        st = ld_fail(ctx, LD_ERR_MODEL, "the VAE has no encoder weights: image-to-image needs them");
    if (st == LD_OK) {
        /* image_processor: x / 255, then 2x - 1 (NCHW) */
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++) x[c * plane + p] = 2.0f * ((float)init->pixels[p * 3 + c] / 255.0f) - 1.0f;
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

void ld_koala_mask_latents(const ld_image *mask, int h, int w, float *out) {
    const int H = mask->height, W = mask->width;
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            /* F.interpolate(mode="nearest"): src = floor(dst * in / out) */
            const int sy = (int)floor((double)y * H / h), sx = (int)floor((double)xx * W / w);
            const uint8_t *px = mask->pixels + ((size_t)sy * W + sx) * 3;
            /* PIL convert("L"): (r 19595 + g 38470 + b 7471 + 0x8000) >> 16 */
            const unsigned l = (px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16;
            out[(size_t)y * w + xx] = (float)l / 255.0f < 0.5f ? 0.0f : 1.0f;
        }
}
