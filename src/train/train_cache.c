/* Latent and caption caches of a training run (see train_cache.h). */
#include "train/train_cache.h"

#include "base/mix.h"
#include "io/model_folder.h"
#include "io/picture.h"
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

/* Resizes rgb (W x H) to Wr x Hr and writes its tw x th crop at (top, left), mirrored with flip. */
static ld_status resize_crop(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int Wr, int Hr, int tw, int th, int top,
                             int left, int flip, uint8_t *out) {
    if (Wr < tw || Hr < th) return ld_fail(ctx, LD_ERR_INTERNAL, "crop: resized %dx%d is below %dx%d", Wr, Hr, tw, th);
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
    for (int yy = 0; yy < th; yy++)
        for (int xx = 0; xx < tw; xx++)
            for (int c = 0; c < 3; c++) {
                const int sx = left + (flip ? tw - 1 - xx : xx);
                float v = roundf(y[c * out_plane + (size_t)(top + yy) * Wr + sx]);
                out[((size_t)yy * tw + xx) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(x);
    free(y);
    return LD_OK;
}

static void random_offsets(uint64_t seed, int Wr, int Hr, int tw, int th, int *top, int *left) {
    const uint64_t r = ld_mix64(seed);
    *top = (int)(r % (uint64_t)(Hr - th + 1));
    *left = (int)((r >> 32) % (uint64_t)(Wr - tw + 1));
}

ld_status ld_train_crop(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int res, int random_crop, int flip,
                        uint64_t seed, uint8_t *out, int *top, int *left) {
    /* torchvision Resize(res): the shorter side becomes res, the longer int(res * long / short) */
    const int Wr = W <= H ? res : (int)((int64_t)res * W / H), Hr = W <= H ? (int)((int64_t)res * H / W) : res;
    if (random_crop) {
        random_offsets(seed, Wr, Hr, res, res, top, left);
    } else { /* diffusers: int(round((h - res) / 2.0)) */
        *top = (int)lround((Hr - res) / 2.0);
        *left = (int)lround((Wr - res) / 2.0);
    }
    LD_TRY(resize_crop(ctx, rgb, W, H, Wr, Hr, res, res, *top, *left, flip, out));
    if (flip) *left = Wr - res - *left; /* the crop of the mirrored image */
    return LD_OK;
}

ld_status ld_train_crop_to(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int Wr, int Hr, int tw, int th,
                           int random_crop, int flip, uint64_t seed, uint8_t *out, int *top, int *left) {
    if (random_crop) {
        random_offsets(seed, Wr, Hr, tw, th, top, left);
    } else { /* kohya: (resized - reso) // 2 */
        *top = (Hr - th) / 2;
        *left = (Wr - tw) / 2;
    }
    LD_TRY(resize_crop(ctx, rgb, W, H, Wr, Hr, tw, th, *top, *left, flip, out));
    if (flip) *left = Wr - tw - *left;
    return LD_OK;
}

static int cmp_wh(const void *a, const void *b) {
    const int *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

int ld_train_buckets(int res, int min, int max, int step, int (*wh)[2], int cap) {
    if (step < 1 || min < step || max < min) return 0;
    int buf[512][2], n = 0;
    const int64_t area = (int64_t)(res / step) * (res / step); /* in step x step cells */
    const int side = (int)sqrt((double)area) * step;
    buf[n][0] = buf[n][1] = side, n++;
    for (int w = min; w <= max && n + 2 <= 512; w += step) {
        const int64_t h64 = (area / (w / step)) * step;
        const int h = h64 < max ? (int)h64 : max;
        buf[n][0] = w, buf[n][1] = h, n++;
        buf[n][0] = h, buf[n][1] = w, n++;
    }
    qsort(buf, (size_t)n, sizeof buf[0], cmp_wh);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && buf[i][0] == buf[m - 1][0] && buf[i][1] == buf[m - 1][1]) continue;
        buf[m][0] = buf[i][0], buf[m][1] = buf[i][1], m++;
    }
    for (int i = 0; i < m && i < cap; i++) wh[i][0] = buf[i][0], wh[i][1] = buf[i][1];
    return m;
}

int ld_train_bucket_of(int W, int H, const int (*wh)[2], int n, int *Wr, int *Hr) {
    const double ar = (double)W / H;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (fabs((double)wh[i][0] / wh[i][1] - ar) < fabs((double)wh[best][0] / wh[best][1] - ar)) best = i;
    const double bar = (double)wh[best][0] / wh[best][1];
    const double scale = ar > bar ? (double)wh[best][1] / H : (double)wh[best][0] / W;
    *Wr = (int)(W * scale + 0.5);
    *Hr = (int)(H * scale + 0.5);
    if (*Wr < wh[best][0]) *Wr = wh[best][0]; /* float rounding must not leave the crop short */
    if (*Hr < wh[best][1]) *Hr = wh[best][1];
    return best;
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
    c->nbuckets = 1;
    c->latents = malloc(sizeof(float) * (size_t)((int64_t)ds->n * lat));
    c->time_ids = malloc(sizeof(float) * ds->n * 6);
    c->item = malloc(sizeof(int) * ds->n);
    c->item_h = malloc(sizeof(int) * ds->n);
    c->item_w = malloc(sizeof(int) * ds->n);
    c->item_off = malloc(sizeof(int64_t) * ds->n);
    if (!c->latents || !c->time_ids || !c->item || !c->item_h || !c->item_w || !c->item_off)
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the latents of %zu prompts", ds->n);
    if (o->bucket) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--bucket applies to images, not to --prompts");
    LD_TRY(ld_teacher_latents(ctx, o->gen, ds, o->resolution, o->seed, report_generated, (void *)o, c->latents, c->C,
                              c->h, c->w));
    for (size_t i = 0; i < ds->n; i++) {
        float *ids = c->time_ids + i * 6;
        ids[0] = ids[1] = ids[4] = ids[5] = (float)o->resolution;
        ids[2] = ids[3] = 0;
        c->item_h[c->n] = c->h, c->item_w[c->n] = c->w, c->item_off[c->n] = (int64_t)i * lat;
        c->item[c->n++] = (int)i;
    }
    return LD_OK;
}

/* Room for one more item of `per` floats per view in the latent cache. */
static ld_status grow_latents(ld_ctx *ctx, ld_train_cache *c, size_t *cap, int64_t need) {
    if ((size_t)need <= *cap) return LD_OK;
    size_t n = *cap ? *cap : 1 << 16;
    while (n < (size_t)need) n *= 2;
    float *p = realloc(c->latents, sizeof(float) * n);
    if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the latent cache");
    c->latents = p;
    *cap = n;
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
    int buckets[256][2] = {{res, res}}, nb = 1;
    if (st == LD_OK && o->bucket) {
        if (o->bucket_step < 1 || o->bucket_step % f || o->bucket_min < o->bucket_step || o->bucket_max < o->bucket_min ||
            o->bucket_min > res || o->bucket_max < res)
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                         "buckets: --bucket-step %d must be a multiple of %d, and --bucket-min %d <= --resolution %d <= "
                         "--bucket-max %d, each at least the step",
                         o->bucket_step, f, o->bucket_min, res, o->bucket_max);
        else if ((nb = ld_train_buckets(res, o->bucket_min, o->bucket_max, o->bucket_step, buckets, 256)) > 256)
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "buckets: %d sizes (at most 256): raise --bucket-step", nb);
    }
    const int64_t min_side = o->min_size > 0 ? o->min_size : res / 4;
    c->time_ids = malloc(sizeof(float) * ds->n * (size_t)c->views * 6);
    c->item = malloc(sizeof(int) * ds->n);
    c->item_h = malloc(sizeof(int) * ds->n);
    c->item_w = malloc(sizeof(int) * ds->n);
    c->item_off = malloc(sizeof(int64_t) * ds->n);
    int used[256] = {0};
    size_t cap = 0;
    int64_t filled = 0;
    uint8_t *crop = NULL;
    float *noise = NULL;
    if (st == LD_OK && (!c->time_ids || !c->item || !c->item_h || !c->item_w || !c->item_off))
        st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the latent cache of %zu images", ds->n);
    c->h = c->w = 0;
    for (size_t i = 0; st == LD_OK && i < ds->n; i++) {
        const char *path = ds->items[i].image;
        ld_png png = {0};
        ld_status ist = ld_picture_read(ctx, path, &png);
        if (ist == LD_OK && (png.width < min_side || png.height < min_side))
            ist = ld_fail(ctx, LD_ERR_FORMAT, "%s: %dx%d is too small (smallest side accepted: %lld px)", path,
                          png.width, png.height, (long long)min_side);
        int b = 0, Wr = 0, Hr = 0;
        if (ist == LD_OK && o->bucket) b = ld_train_bucket_of(png.width, png.height, buckets, nb, &Wr, &Hr);
        const int tw = buckets[b][0], th = buckets[b][1], h = th / f, w = tw / f;
        const int64_t lat = (int64_t)c->C * h * w;
        if (ist == LD_OK) ist = grow_latents(ctx, c, &cap, filled + c->views * lat);
        uint8_t *cr = ist == LD_OK ? realloc(crop, (size_t)tw * th * 3) : NULL;
        float *nz = cr ? realloc(noise, sizeof(float) * (size_t)lat) : NULL;
        if (cr) crop = cr;
        if (nz) noise = nz;
        if (ist == LD_OK && (!cr || !nz)) ist = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for %s", path);
        for (int v = 0; ist == LD_OK && v < c->views; v++) {
            int top, left;
            const uint64_t seed = ld_mix64(o->seed ^ ld_mix64(i));
            ist = o->bucket ? ld_train_crop_to(ctx, png.rgb, png.width, png.height, Wr, Hr, tw, th, o->random_crop, v,
                                               seed, crop, &top, &left)
                            : ld_train_crop(ctx, png.rgb, png.width, png.height, res, o->random_crop, v, seed, crop,
                                            &top, &left);
            ld_rng rng;
            ld_rng_init(&rng, ld_mix64(seed + 1));
            ld_rng_randn(&rng, noise, lat);
            ld_image img = {.width = tw, .height = th, .channels = 3, .pixels = crop};
            float *dst = c->latents + filled + v * lat;
            if (ist == LD_OK)
                ist = ld_koala_encode_init(ctx, vae, &img, noise, ld_vae_scaling_factor(vae), c->C, h, w, dst);
            float *ids = c->time_ids + ((size_t)c->n * c->views + v) * 6;
            ids[0] = (float)png.height, ids[1] = (float)png.width, ids[2] = (float)top, ids[3] = (float)left;
            ids[4] = (float)th, ids[5] = (float)tw;
        }
        ld_png_free(&png);
        if (ist == LD_OK) {
            c->item_h[c->n] = h, c->item_w[c->n] = w, c->item_off[c->n] = filled;
            if (h * w > c->h * c->w) c->h = h, c->w = w;
            filled += c->views * lat;
            c->nbuckets += !used[b]++;
            c->item[c->n++] = (int)i;
        } else if (ist == LD_ERR_NOMEM || ist == LD_ERR_CANCELLED || !o->skip_bad) {
            st = ist;
        } else {
            ld_log_warn("skipping: %s", ld_ctx_error(ctx));
        }
        if (st == LD_OK) st = report(ctx, o, "latents", (int)i + 1, (int)ds->n);
    }
    if (st == LD_OK && c->n == 0) st = ld_fail(ctx, LD_ERR_FORMAT, "no usable image in the dataset");
    if (st == LD_OK && o->bucket)
        for (int b = 0; b < nb; b++)
            if (used[b]) ld_log_info("bucket %dx%d: %d images", buckets[b][0], buckets[b][1], used[b]);
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
    free(c->item_h);
    free(c->item_w);
    free(c->item_off);
    memset(c, 0, sizeof *c);
}
