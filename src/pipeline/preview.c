/* Previews (see preview.h). */
#include "pipeline/preview.h"

#include <math.h>
#include <stdlib.h>

/* ComfyUI latent_formats.SDXL.latent_rgb_factors: rows are latent channels, columns R, G, B. */
static const float sdxl_rgb[4][3] = {
    {0.3920f, 0.4054f, 0.4549f},
    {-0.2634f, -0.0196f, 0.0653f},
    {0.0568f, 0.1687f, -0.0755f},
    {-0.3112f, -0.2359f, -0.2076f},
};

void ld_image_chw_to_u8(const float *chw, int H, int W, uint8_t *hwc) {
    size_t plane = (size_t)H * W;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = chw[c * plane + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; /* NaN stays NaN: treated as 0 below */
            float s = nearbyintf(v * 255.0f);
            hwc[p * 3 + c] = (uint8_t)(s >= 0.0f ? s : 0.0f);
        }
}

ld_status ld_preview_render(ld_ctx *ctx, const ld_vae_tiny *taesd, const float *x0, int C, int h, int w, ld_image *img) {
    img->pixels = NULL;
    if (taesd) {
        if (C != taesd->latent_channels)
            return ld_fail(ctx, LD_ERR_MODEL, "TAESD decodes %lld latent channels, the model makes %d",
                           (long long)taesd->latent_channels, C);
        const int H = (int)(h * taesd->scale), W = (int)(w * taesd->scale);
        float *chw = NULL;
        LD_TRY(ld_malloc(ctx, (void **)&chw, sizeof(float) * 3 * (size_t)H * (size_t)W, "preview image"));
        ld_status st = ld_vae_tiny_decode(ctx, taesd, chw, x0, 1, h, w);
        if (st == LD_OK) st = ld_malloc(ctx, (void **)&img->pixels, (size_t)H * (size_t)W * 3, "preview pixels");
        if (st == LD_OK) ld_image_chw_to_u8(chw, H, W, img->pixels);
        free(chw);
        img->width = W;
        img->height = H;
        img->channels = 3;
        return st;
    }
    if (C != 4) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "the linear preview needs 4 latent channels, not %d", C);
    LD_TRY(ld_malloc(ctx, (void **)&img->pixels, (size_t)h * (size_t)w * 3, "preview pixels"));
    const size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = 0;
            for (int l = 0; l < 4; l++) v += x0[l * plane + p] * sdxl_rgb[l][c];
            v = v / 2.0f + 0.5f;
            v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN -> 0 */
            img->pixels[p * 3 + c] = (uint8_t)nearbyintf(v * 255.0f);
        }
    img->width = w;
    img->height = h;
    img->channels = 3;
    return LD_OK;
}
