/* Latent and caption caches of a training run (see train_cache.h). */
#include "train/train_cache.h"

#include "io/model_folder.h"
#include "io/jpeg.h"
#include "models/autoencoder_kl.h"
#include "pipeline/koala_init.h"
#include "pipeline/sdxl_text.h"
#include "sched/rng.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_BATCH 32 /* captions per text-encoder call */

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

ld_status ld_train_crop(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int res, int random_crop, int flip,
                        uint64_t seed, uint8_t *out, int *top, int *left) {
    /* torchvision Resize(res): the shorter side becomes res, the longer int(res * long / short) */
    const int Wr = W <= H ? res : (int)((int64_t)res * W / H), Hr = W <= H ? (int)((int64_t)res * H / W) : res;
    if (Wr < res || Hr < res) return ld_fail(ctx, LD_ERR_INTERNAL, "crop: resized %dx%d is below %d", Wr, Hr, res);
    const size_t in_plane = (size_t)W * H, out_plane = (size_t)Wr * Hr;
    float *x = malloc(sizeof(float) * 3 * in_plane), *y = malloc(sizeof(float) * 3 * out_plane);
    if (!x || !y) {
        free(x);
        free(y);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory resizing a %dx%d image", W, H);
    }
    for (size_t p = 0; p < in_plane; p++)
        for (int c = 0; c < 3; c++) x[c * in_plane + p] = rgb[p * 3 + c];
    ld_resize_bicubic_aa(y, x, 1, 3, H, W, Hr, Wr, 0);
    if (random_crop) {
        const uint64_t r = mix(seed);
        *top = (int)(r % (uint64_t)(Hr - res + 1));
        *left = (int)((r >> 32) % (uint64_t)(Wr - res + 1));
    } else { /* diffusers: int(round((h - res) / 2.0)) */
        *top = (int)lround((Hr - res) / 2.0);
        *left = (int)lround((Wr - res) / 2.0);
    }
    for (int yy = 0; yy < res; yy++)
        for (int xx = 0; xx < res; xx++)
            for (int c = 0; c < 3; c++) {
                const int sx = *left + (flip ? res - 1 - xx : xx);
                float v = roundf(y[c * out_plane + (size_t)(*top + yy) * Wr + sx]);
                out[((size_t)yy * res + xx) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    if (flip) *left = Wr - res - *left; /* the crop of the mirrored image */
    free(x);
    free(y);
    return LD_OK;
}

static ld_status report(ld_ctx *ctx, const ld_train_cache_opts *o, const char *stage, int done, int total) {
    return o->report ? o->report(ctx, o->user, stage, done, total) : LD_OK;
}

static ld_status report_generated(ld_ctx *ctx, void *user, int done, int total) {
    return report(ctx, user, "teacher latents", done, total);
}

/* Latents and time ids of a prompts dataset, from the teacher. */
static ld_status cache_generated(ld_ctx *ctx, const ld_dataset *ds, const ld_train_cache_opts *o, ld_train_cache *c) {
    if (!o->gen) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "a prompts file needs a teacher to make its latents");
    if (o->flip || o->random_crop)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--flip and --random-crop apply to images, not to --prompts");
    const int64_t lat = (int64_t)c->C * c->h * c->w;
    c->views = 1;
    c->latents = malloc(sizeof(float) * (size_t)((int64_t)ds->n * lat));
    c->time_ids = malloc(sizeof(float) * ds->n * 6);
    c->item = malloc(sizeof(int) * ds->n);
    if (!c->latents || !c->time_ids || !c->item)
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the latents of %zu prompts", ds->n);
    LD_TRY(ld_teacher_latents(ctx, o->gen, ds, o->resolution, o->seed, report_generated, (void *)o, c->latents, c->C,
                              c->h, c->w));
    for (size_t i = 0; i < ds->n; i++) {
        float *ids = c->time_ids + i * 6;
        ids[0] = ids[1] = ids[4] = ids[5] = (float)o->resolution;
        ids[2] = ids[3] = 0;
        c->item[c->n++] = (int)i;
    }
    return LD_OK;
}

/* Latents and time ids of every usable image. */
static ld_status cache_images(ld_ctx *ctx, const char *model_dir, const ld_dataset *ds,
                              const ld_train_cache_opts *o, ld_train_cache *c) {
    char vae_dir[4096];
    LD_TRY(ld_component_dir(ctx, model_dir, NULL, "vae", vae_dir, sizeof vae_dir));
    ld_vae *vae = NULL;
    LD_TRY(ld_vae_load(ctx, vae_dir, NULL, &vae));
    const int f = ld_vae_downscale(vae), res = o->resolution;
    ld_status st = LD_OK;
    if (res % f) st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--resolution %d is not a multiple of %d (the VAE's downscale)", res, f);
    c->C = ld_vae_latent_channels(vae);
    c->h = c->w = res / f;
    c->views = o->flip ? 2 : 1;
    if (st == LD_OK && ds->n && !ds->items[0].image) {
        ld_vae_free(vae);
        return cache_generated(ctx, ds, o, c);
    }
    const int64_t lat = (int64_t)c->C * c->h * c->w, min_side = o->min_size > 0 ? o->min_size : res / 4;
    c->latents = malloc(sizeof(float) * (size_t)(ds->n * c->views * lat));
    c->time_ids = malloc(sizeof(float) * ds->n * (size_t)c->views * 6);
    c->item = malloc(sizeof(int) * ds->n);
    uint8_t *crop = malloc((size_t)res * res * 3);
    float *noise = malloc(sizeof(float) * (size_t)lat);
    if (st == LD_OK && (!c->latents || !c->time_ids || !c->item || !crop || !noise))
        st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the latent cache of %zu images", ds->n);
    for (size_t i = 0; st == LD_OK && i < ds->n; i++) {
        const char *path = ds->items[i].image;
        ld_png png = {0};
        ld_status ist = ld_picture_read(ctx, path, &png);
        if (ist == LD_OK && (png.width < min_side || png.height < min_side))
            ist = ld_fail(ctx, LD_ERR_FORMAT, "%s: %dx%d is too small (smallest side accepted: %lld px)", path,
                          png.width, png.height, (long long)min_side);
        for (int v = 0; ist == LD_OK && v < c->views; v++) {
            int top, left;
            const uint64_t seed = mix(o->seed ^ mix(i));
            ist = ld_train_crop(ctx, png.rgb, png.width, png.height, res, o->random_crop, v, seed, crop, &top, &left);
            ld_rng rng;
            ld_rng_init(&rng, mix(seed + 1));
            ld_rng_randn(&rng, noise, lat);
            ld_image img = {.width = res, .height = res, .channels = 3, .pixels = crop};
            float *dst = c->latents + ((size_t)c->n * c->views + v) * lat;
            if (ist == LD_OK)
                ist = ld_koala_encode_init(ctx, vae, &img, noise, ld_vae_scaling_factor(vae), c->C, c->h, c->w, dst);
            float *ids = c->time_ids + ((size_t)c->n * c->views + v) * 6;
            ids[0] = (float)png.height, ids[1] = (float)png.width, ids[2] = (float)top, ids[3] = (float)left;
            ids[4] = ids[5] = (float)res;
        }
        ld_png_free(&png);
        if (ist == LD_OK) {
            c->item[c->n++] = (int)i;
        } else if (ist == LD_ERR_NOMEM || ist == LD_ERR_CANCELLED || !o->skip_bad) {
            st = ist;
        } else {
            ld_log_warn("skipping: %s", ld_ctx_error(ctx));
        }
        if (st == LD_OK) st = report(ctx, o, "latents", (int)i + 1, (int)ds->n);
    }
    if (st == LD_OK && c->n == 0) st = ld_fail(ctx, LD_ERR_FORMAT, "no usable image in the dataset");
    free(crop);
    free(noise);
    ld_vae_free(vae);
    return st;
}

/* Embeddings of the usable items' captions, then of "". */
static ld_status cache_texts(ld_ctx *ctx, const char *model_dir, const ld_dataset *ds, const ld_train_cache_opts *o,
                             ld_train_cache *c) {
    char dirs[4][4096];
    const char *names[4] = {"tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2"};
    for (int i = 0; i < 4; i++) LD_TRY(ld_component_dir(ctx, model_dir, NULL, names[i], dirs[i], sizeof dirs[i]));
    ld_sdxl_text te = {.tok = {dirs[0], dirs[1]}, .te = {dirs[2], dirs[3]}};
    const int total = c->n + 1;
    ld_status st = LD_OK;
    for (int i0 = 0; st == LD_OK && i0 < total; i0 += TEXT_BATCH) {
        const int m = total - i0 < TEXT_BATCH ? total - i0 : TEXT_BATCH;
        const char *texts[TEXT_BATCH];
        for (int k = 0; k < m; k++) texts[k] = i0 + k < c->n ? ds->items[c->item[i0 + k]].caption : "";
        ld_sdxl_cond cond;
        st = ld_sdxl_encode(ctx, &te, texts, m, &cond, NULL);
        if (st == LD_OK && !c->embeds) {
            c->L = cond.L, c->D = cond.D, c->P = cond.P;
            c->embeds = malloc(sizeof(float) * (size_t)(total * c->L * c->D));
            c->pooled = malloc(sizeof(float) * (size_t)(total * c->P));
            if (!c->embeds || !c->pooled) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the caption cache");
        }
        if (st == LD_OK) {
            memcpy(c->embeds + (size_t)i0 * c->L * c->D, cond.embeds, sizeof(float) * (size_t)(m * c->L * c->D));
            memcpy(c->pooled + (size_t)i0 * c->P, cond.pooled, sizeof(float) * (size_t)(m * c->P));
            st = report(ctx, o, "captions", i0 + m, total);
        }
        ld_sdxl_cond_free(&cond);
    }
    return st;
}

ld_status ld_train_cache_build(ld_ctx *ctx, const char *model_dir, const ld_dataset *ds,
                               const ld_train_cache_opts *o, ld_train_cache *out) {
    memset(out, 0, sizeof *out);
    if (o->resolution < 8 || o->resolution > 8192)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--resolution %d is outside 8..8192", o->resolution);
    ld_status st = cache_images(ctx, model_dir, ds, o, out);
    if (st == LD_OK) st = cache_texts(ctx, model_dir, ds, o, out);
    if (st != LD_OK) ld_train_cache_free(out);
    return st;
}

void ld_train_cache_free(ld_train_cache *c) {
    free(c->latents);
    free(c->time_ids);
    free(c->embeds);
    free(c->pooled);
    free(c->item);
    memset(c, 0, sizeof *c);
}
