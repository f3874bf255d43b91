/* What a training run reads every step, computed once before it: each
 * image's latents and SDXL micro-conditioning, each caption's text
 * embeddings (the text encoders and the VAE are frozen, so they are run
 * once and freed before the U-Net is loaded), as diffusers'
 * train_text_to_image_sdxl.py and kohya's cache_latents do:
 *
 *   image  -> resized so its shorter side is `resolution` (antialiased
 *             bicubic), cropped to resolution x resolution (centre, or a
 *             seeded random crop), [-1, 1];
 *   latent =  (mean + std * noise) * scaling_factor  (one sample of the
 *             VAE's latent distribution, seeded per image);
 *   time_ids = (original_h, original_w, crop_top, crop_left, res, res);
 *   with flip: the mirrored image is cached too (its crop mirrored), and a
 *   step picks one of the two at random (kohya's flip_aug);
 *   captions -> prompt_embeds [L, 2048], pooled [1280]; the empty caption
 *   is cached last for caption dropout.
 *
 * A prompts dataset (ld_dataset_open_prompts) has no images: its latents
 * are the teacher's (teacher_latents.h), time_ids (res, res, 0, 0, res, res).
 *
 * An image that cannot be decoded or is smaller than min_size on a side is
 * reported by file and skipped (or is an error without skip_bad).
 */
#ifndef LD_TRAIN_TRAIN_CACHE_H
#define LD_TRAIN_TRAIN_CACHE_H

#include "train/dataset.h"
#include "train/teacher_latents.h"

#include <stdint.h>

typedef struct {
    int resolution;  /* output side in pixels, a multiple of the VAE's downscale */
    int random_crop; /* else centre crop */
    int flip;        /* cache mirrored views too */
    int skip_bad;
    int min_size;    /* smallest accepted side (0: resolution / 4) */
    /* aspect-ratio buckets (kohya's --enable_bucket): each image is resized and cropped to the bucket of
     * the closest aspect ratio among ld_train_buckets(resolution, bucket_min, bucket_max, bucket_step)
     * instead of a resolution x resolution square */
    int bucket, bucket_min, bucket_max, bucket_step;
    uint64_t seed;
    const ld_teacher_gen *gen; /* a prompts dataset (items without images): the teacher makes the latents */
    /* progress: called after each image and each text encoder; an error stops */
    ld_status (*report)(ld_ctx *ctx, void *user, const char *stage, int done, int total);
    void *user;
} ld_train_cache_opts;

typedef struct {
    int n, views;       /* usable items; latents per item (2 with flip) */
    int C, h, w;        /* latent channels; the largest latent size (every item's without buckets) */
    int *item_h, *item_w; /* [n]: each item's latent size (its bucket / 8) */
    int64_t *item_off;  /* [n]: offset of each item's first view in latents (views follow) */
    int nbuckets;       /* distinct item sizes (1 without buckets) */
    int64_t L, D, P;    /* text: tokens, width, pooled width */
    float *latents;     /* per item, per view [C, item_h, item_w] */
    float *time_ids;    /* [n, views, 6] */
    float *embeds;      /* [n + 1, L, D]: captions, then "" */
    float *pooled;      /* [n + 1, P] */
    int *item;          /* [n]: index in the dataset of each usable item */
} ld_train_cache;

/* model_dir: a StableDiffusionXLPipeline folder (vae/, tokenizer(_2)/, text_encoder(_2)/). */
ld_status ld_train_cache_build(ld_ctx *ctx, const char *model_dir, const ld_dataset *ds,
                               const ld_train_cache_opts *o, ld_train_cache *out);
void ld_train_cache_free(ld_train_cache *c);

/* The resize-and-crop of one RGB8 image (exposed for tests): writes the
 * res x res crop and the crop's top-left corner in the resized image. */
ld_status ld_train_crop(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int res, int random_crop, int flip,
                        uint64_t seed, uint8_t *out, int *top, int *left);

/* kohya's make_bucket_resolutions(max_reso=(res, res), min, max, step):
 * the square of the same area, then for every width w = min, min+step, ...,
 * max the sizes (w, h) and (h, w) with h = min(max, (area / w) * step) in
 * steps; distinct, sorted by (width, height). Returns the count (at most
 * cap written to wh as {width, height}). */
int ld_train_buckets(int res, int min, int max, int step, int (*wh)[2], int cap);
/* kohya's select_bucket: the bucket whose aspect ratio is closest to W/H
 * (the first on ties), and the size the image is resized to before the
 * crop (it covers the bucket: scaled by the bucket's height when the image
 * is wider, else by its width, rounded). Returns the bucket's index. */
int ld_train_bucket_of(int W, int H, const int (*wh)[2], int n, int *Wr, int *Hr);
/* A resize to Wr x Hr (antialiased bicubic), then the tw x th crop (centred
 * as kohya's (Wr - tw) / 2, or seeded random), mirrored with flip. */
ld_status ld_train_crop_to(ld_ctx *ctx, const uint8_t *rgb, int W, int H, int Wr, int Hr, int tw, int th,
                           int random_crop, int flip, uint64_t seed, uint8_t *out, int *top, int *left);

#endif
