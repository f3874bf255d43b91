/* ld_vae_decode: the batch loop and tiled decoding (see autoencoder_kl.h).
 *
 * Tiled decode cuts the latent into the fewest equal tiles of at most `tile`
 * latent pixels a side that overlap by at least `overlap`, spread evenly over
 * the latent, decodes each tile alone, and blends the decoded tiles with
 * weights that ramp linearly from ~0 to 1 across the overlap on every side
 * that has a neighbour: out = sum(w_t * tile_t) / sum(w_t), with w_t a
 * product of a row weight and a column weight. Weights are
 * positive everywhere, so every pixel is defined, and they fade a tile out
 * towards its inner edges, so there are no seams. Activation memory is that of
 * one tile, whatever the image size. GroupNorm statistics and the mid-block
 * attention see only the tile, so results differ slightly from an untiled
 * decode (as with diffusers' tiled_decode). */
#include "models/autoencoder_kl_internal.h"

#include <stdlib.h>
#include <string.h>

/* Tiles along an axis of length n: the fewest tiles of at most tmax that
 * overlap by at least `overlap`, all of one size *t (as small as that allows),
 * spread evenly from 0 to n - *t. Returns the count (1 when n <= tmax). */
static int tile_layout(int n, int tmax, int overlap, int *t, int *starts) {
    if (n <= tmax) {
        *t = n;
        starts[0] = 0;
        return 1;
    }
    int k = (n - overlap + (tmax - overlap) - 1) / (tmax - overlap);
    *t = (n + (k - 1) * overlap + k - 1) / k;
    for (int i = 0; i < k; i++) starts[i] = (int)((int64_t)i * (n - *t) / (k - 1));
    return k;
}

/* Blend weight of pixel i (of len) in a tile: a ramp over `ramp` pixels on each
 * side that has a neighbour (lo / hi). */
static float ramp_weight(int i, int len, int ramp, int lo, int hi) {
    float w = 1.0f;
    if (ramp <= 0) return w;
    if (lo) {
        float r = ((float)i + 0.5f) / (float)ramp;
        if (r < w) w = r;
    }
    if (hi) {
        float r = ((float)(len - i) - 0.5f) / (float)ramp;
        if (r < w) w = r;
    }
    return w;
}

/* Fills w[0..len) with the blend weights of a tile (see ramp_weight). */
static void axis_weights(float *w, int len, int ramp, int lo, int hi) {
    for (int i = 0; i < len; i++) w[i] = ramp_weight(i, len, ramp, lo, hi);
}

static ld_status decode_tiled(ld_ctx *ctx, ld_vae *v, const float *z, int h, int w, float *image) {
    const int Cz = v->cfg.latent_channels, Co = v->cfg.out_channels, f = ld_vae_downscale(v);
    const int T = v->tile, O = v->overlap;
    int ys[8192], xs[8192]; /* h, w <= 8192 */
    int th, tw;
    const int ny = tile_layout(h, T, O, &th, ys), nx = tile_layout(w, T, O, &tw, xs);
    const int64_t H = (int64_t)h * f, W = (int64_t)w * f, tH = (int64_t)th * f, tW = (int64_t)tw * f;
    ld_arena *a = &v->arena;
    size_t mark = ld_arena_mark(a);
    /* The tiles form a grid and a tile's weight is wy(y) * wx(x), so the sum of
     * weights at a pixel is sum_y(Y) * sum_x(X): two 1-D arrays suffice. */
    float *zt, *tile, *wy, *wx, *sum_y, *sum_x;
    LD_ARENA_F32(zt, ctx, a, (int64_t)Cz * th * tw);
    LD_ARENA_F32(tile, ctx, a, (int64_t)Co * tH * tW);
    LD_ARENA_F32(wy, ctx, a, tH);
    LD_ARENA_F32(wx, ctx, a, tW);
    LD_ARENA_F32(sum_y, ctx, a, H);
    LD_ARENA_F32(sum_x, ctx, a, W);
    memset(image, 0, sizeof(float) * (size_t)(Co * H * W));
    memset(sum_y, 0, sizeof(float) * (size_t)H);
    memset(sum_x, 0, sizeof(float) * (size_t)W);
    for (int ty = 0; ty < ny; ty++) {
        axis_weights(wy, (int)tH, O * f, ys[ty] > 0, ys[ty] + th < h);
        for (int64_t y = 0; y < tH; y++) sum_y[(int64_t)ys[ty] * f + y] += wy[y];
    }
    for (int tx = 0; tx < nx; tx++) {
        axis_weights(wx, (int)tW, O * f, xs[tx] > 0, xs[tx] + tw < w);
        for (int64_t x = 0; x < tW; x++) sum_x[(int64_t)xs[tx] * f + x] += wx[x];
    }
    for (int ty = 0; ty < ny; ty++) {
        axis_weights(wy, (int)tH, O * f, ys[ty] > 0, ys[ty] + th < h);
        for (int tx = 0; tx < nx; tx++) {
            axis_weights(wx, (int)tW, O * f, xs[tx] > 0, xs[tx] + tw < w);
            for (int c = 0; c < Cz; c++)
                for (int y = 0; y < th; y++)
                    memcpy(zt + ((int64_t)c * th + y) * tw, z + ((int64_t)c * h + ys[ty] + y) * w + xs[tx],
                           sizeof(float) * tw);
            LD_TRY(ld_vae_decode_one(ctx, v, zt, th, tw, tile));
            LD_TRY(ld_check_cancel(ctx, "VAE"));
            const int64_t y0 = (int64_t)ys[ty] * f, x0 = (int64_t)xs[tx] * f;
            for (int c = 0; c < Co; c++)
                for (int64_t y = 0; y < tH; y++) {
                    float *dst = image + ((int64_t)c * H + y0 + y) * W + x0;
                    const float *src = tile + ((int64_t)c * tH + y) * tW;
                    const float wyy = wy[y] / sum_y[y0 + y];
                    for (int64_t x = 0; x < tW; x++) dst[x] += wyy * (wx[x] / sum_x[x0 + x]) * src[x];
                }
        }
    }
    ld_arena_reset(a, mark);
    return LD_OK;
}

double ld_vae_decode_estimate(const ld_vae *v, int h, int w, int tiling) {
    if (!tiling || (h <= v->tile && w <= v->tile)) return sizeof(float) * ld_vae_decode_one_floats(v, h, w);
    int ys[8192], xs[8192], th, tw;
    tile_layout(h, v->tile, v->overlap, &th, ys);
    tile_layout(w, v->tile, v->overlap, &tw, xs);
    const int f = ld_vae_downscale(v);
    const double tH = (double)th * f, tW = (double)tw * f;
    /* decode_tiled's buffers, then one tile's decode */
    const double own = (double)v->cfg.latent_channels * th * tw + (double)v->cfg.out_channels * tH * tW + tH + tW +
                       (double)h * f + (double)w * f;
    return sizeof(float) * (own + ld_vae_decode_one_floats(v, th, tw));
}

ld_status ld_vae_decode(ld_ctx *ctx, ld_vae *v, const float *latents, int B, int h, int w, float *image, int tiling) {
    if (ld_weights_is_recorder(v->ws))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae decode: the model was built for recording only");
    if (B < 1 || h < 1 || w < 1 || B > 4096 || h > 8192 || w > 8192)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae decode: bad sizes B=%d h=%d w=%d", B, h, w);
    if (!latents || !image) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae decode: latents and image are required");
    const int f = ld_vae_downscale(v);
    const int64_t zn = (int64_t)v->cfg.latent_channels * h * w;
    const int64_t in = (int64_t)v->cfg.out_channels * h * f * w * f;
    const int tiled = tiling && (h > v->tile || w > v->tile);
    ld_status st = LD_OK;
    const size_t mark = ld_arena_mark(&v->arena);
    /* one block of the estimate (>= the peak) for the first decode at a size, as in ld_unet2d_forward */
    if (mark == 0) ld_arena_reserve(NULL, &v->arena, (size_t)ld_vae_decode_estimate(v, h, w, tiling));
    for (int b = 0; b < B && st == LD_OK; b++) {
        if (tiled) st = decode_tiled(ctx, v, latents + b * zn, h, w, image + b * in);
        else st = ld_vae_decode_one(ctx, v, latents + b * zn, h, w, image + b * in);
    }
    ld_arena_reset(&v->arena, mark); /* also after a failure (a cancel) half-way through */
    if (st == LD_OK) st = ld_arena_reserve(ctx, &v->arena, v->arena.peak);
    return st;
}
