/* The activation estimates that refuse an image size before any work starts
 * (issue 16, point 2) agree with what a forward really takes: for the U-Net of
 * a random tiny KOALA pipeline at several latent sizes (odd ones included),
 * ld_unet2d_activation_estimate is at least the arena peak of a real forward
 * and at most 1% (+64 KB of alignment) above it; the same for the VAE decode
 * (ld_vae_decode_estimate) in one piece and tile by tile. */
#include "models/autoencoder_kl.h"
#include "models/unet2d.h"
#include "test_util.h"

int main(void) {
    const char *model = test_make_tiny_model("memory_estimate");
    if (!model) return test_finish() | 1;
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/unet", model);
    ld_ctx *ctx = ld_ctx_new();
    ld_unet2d *u = NULL;
    if (ld_unet2d_load(ctx, dir, NULL, &u) != LD_OK) {
        CHECK(0, "load: %s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return test_finish();
    }
    const int sizes[][3] = {{2, 32, 32}, {1, 64, 48}, {2, 33, 47}, {2, 96, 96}};
    const int L = 77, D = ld_unet2d_cross_attention_dim(u), P = ld_unet2d_text_embeds_dim(u), C = 4;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int B = sizes[s][0], H = sizes[s][1], W = sizes[s][2];
        /* a fresh model each time: the arena remembers its largest peak */
        ld_unet2d_free(u);
        CHECK(ld_unet2d_load(ctx, dir, NULL, &u) == LD_OK, "reload: %s", ld_ctx_error(ctx));
        const double est = ld_unet2d_activation_estimate(u, B, H, W, L);
        float *x = calloc((size_t)B * C * H * W, sizeof(float)), *out = calloc((size_t)B * C * H * W, sizeof(float));
        float *ctxs = calloc((size_t)B * L * D, sizeof(float)), *te = calloc((size_t)B * P, sizeof(float));
        float t[2] = {500, 500}, ids[12] = {0};
        test_fill(x, (int64_t)B * C * H * W, 1);
        test_fill(ctxs, (int64_t)B * L * D, 2);
        const ld_unet2d_inputs in = {.B = B, .H = H, .W = W, .sample = x, .timesteps = t, .encoder_hidden_states = ctxs,
                                     .L = L, .text_embeds = te, .time_ids = ids};
        CHECK(ld_unet2d_forward(ctx, u, &in, out) == LD_OK, "forward: %s",
              ld_ctx_error(ctx));
        const double peak = (double)ld_unet2d_activation_bytes(u);
        printf("B=%d %dx%d: estimate %.0f bytes, arena peak %.0f (ratio %.4f)\n", B, H, W, est, peak, est / peak);
        CHECK(est >= peak && est <= peak * 1.01 + 65536, "B=%d %dx%d: estimate %.0f vs peak %.0f", B, H, W, est, peak);
        free(x);
        free(out);
        free(ctxs);
        free(te);
    }
    ld_unet2d_free(u);

    snprintf(dir, sizeof dir, "%s/vae", model);
    const int vsizes[][3] = {{32, 40, 0}, {17, 9, 0}, {40, 56, 1}, {64, 64, 1}};
    for (size_t s = 0; s < sizeof vsizes / sizeof vsizes[0]; s++) {
        const int h = vsizes[s][0], w = vsizes[s][1], tiled = vsizes[s][2];
        ld_vae *v = NULL;
        if (ld_vae_load(ctx, dir, NULL, &v) != LD_OK || ld_vae_set_tiling(ctx, v, 24, 8) != LD_OK) {
            CHECK(0, "vae: %s", ld_ctx_error(ctx));
            break;
        }
        const int f = ld_vae_downscale(v), C = ld_vae_latent_channels(v);
        float *z = calloc((size_t)C * h * w, sizeof(float)), *img = calloc((size_t)3 * h * f * w * f, sizeof(float));
        test_fill(z, (int64_t)C * h * w, 3);
        const double est = ld_vae_decode_estimate(v, h, w, tiled);
        CHECK(ld_vae_decode(ctx, v, z, 1, h, w, img, tiled) == LD_OK, "decode: %s", ld_ctx_error(ctx));
        const double peak = (double)ld_vae_activation_bytes(v);
        printf("VAE %dx%d%s: estimate %.0f bytes, arena peak %.0f (ratio %.4f)\n", h, w, tiled ? " tiled" : "", est,
               peak, est / peak);
        CHECK(est >= peak && est <= peak * 1.01 + 65536, "VAE %dx%d: estimate %.0f vs peak %.0f", h, w, est, peak);
        free(z);
        free(img);
        ld_vae_free(v);
    }
    ld_ctx_free(ctx);
    return test_finish();
}
