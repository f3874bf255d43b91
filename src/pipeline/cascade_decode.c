/* Stable Cascade Stage B (decoder U-Net, DDPM Wuerstchen, optional CFG) and
 * Stage A (Paella VQ decode of scale_factor * latents, clamp, uint8), the
 * decoder on the denoising loop of denoise.h: spec
 * wuerstchen.md §8.5. Called by cascade.c with the prior's image embeddings
 * and pooled text embeddings (the combined pipeline's hand-over, so the
 * decoder's own text encoder never runs). */
#include "pipeline/cascade.h"
#include "pipeline/denoise.h"

#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ld_sc_unet *decoder;
    int64_t hB, wB, hC, wC;
    const float *effnet; /* [B, Ce, hC, wC]: [emb; zeros] with CFG */
    const float *pooled; /* [B, 1, P]: [cond; negative] with CFG */
} decoder_call;

/* Batch entries [first, first + B) on the model's lane. */
static ld_status decoder_run(ld_ctx *ctx, const decoder_call *dc, int lane, int first, const float *in, int B,
                             float t, float *out) {
    const ld_sc_config *c = &dc->decoder->cfg;
    const float r[2] = {t, t};
    ld_sc_inputs si = {.B = B,
                       .H = dc->hB,
                       .W = dc->wB,
                       .sample = in,
                       .r = r,
                       .clip_text_pooled = dc->pooled + first * c->clip_pooled_in,
                       .pooled_len = 1,
                       .effnet = dc->effnet ? dc->effnet + first * c->effnet_in * dc->hC * dc->wC : NULL,
                       .eh = dc->hC,
                       .ew = dc->wC};
    return ld_sc_unet_forward_lane(ctx, dc->decoder, lane, &si, out);
}

static ld_status decoder_model(ld_ctx *ctx, void *user, const float *in, int B, float t, float *out) {
    return decoder_run(ctx, user, 0, 0, in, B, t, out);
}

static ld_status decoder_half(ld_ctx *ctx, void *user, int half, const float *in, float t, float *out) {
    return decoder_run(ctx, user, half, half, in, 1, t, out);
}

static ld_status decoder_stage(ld_ctx *ctx, const ld_cascade *c, ld_run *run, const decoder_call *call, int steps,
                               float cfg, float *x) {
    const ld_sc_config *dc = &c->decoder_cfg;
    const int64_t C = dc->in_channels, shape[4] = {1, C, call->hB, call->wB};
    ld_sc_unet *decoder = NULL;
    ld_scheduler *s = NULL;
    ld_run_denoiser_loading(run);
    ld_status st = ld_cascade_load_decoder(ctx, c, &decoder);
    ld_run_denoiser_loaded(run);
    if (st == LD_OK)
        st = ld_ddpmw_stage_scheduler(ctx, run, c->decoder_sched_cfg, "decoder scheduler", steps, "decoder.", &s);
    if (st == LD_OK) st = ld_run_noise(ctx, run, "decoder.latents0", 4, shape, x);
    decoder_call dcall = *call;
    dcall.decoder = decoder;
    ld_denoise d = {.stage = "decoder", .prefix = "decoder.", .ndim = 4, .shape = {1, C, call->hB, call->wB},
                    .n_in = C * call->hB * call->wB, .guided = cfg > 1.0f, .guidance = LD_GUIDE_LERP, .scale = cfg,
                    .model = decoder_model, .model_half = decoder_half, .user = &dcall};
    if (st == LD_OK) st = ld_denoise_run(ctx, run, s, x, &d);
    ld_sc_unet_free(decoder); /* released after its stage */
    ld_scheduler_free(s);
    return st;
}

/* Stage A: img = clamp(vqgan.decode(scale_factor * x), 0, 1), then
 * uint8 round(img * 255) (round half to even, as torch.round). */
static ld_status vqgan_decode(ld_ctx *ctx, const ld_cascade *c, ld_run *run, float *x, int64_t hB, int64_t wB,
                              ld_image *out) {
    ld_paella_vq *vq;
    ld_weights *ws;
    ld_run_stage_start(run);
    LD_TRY(ld_cascade_load_vqgan(ctx, c, &vq, &ws));
    int64_t f = ld_paella_vq_factor(vq), H = hB * f, W = wB * f, np = 3 * H * W;
    ld_scale(x, vq->latent_channels * hB * wB, vq->scale_factor);
    float *img = NULL;
    ld_status st = ld_malloc(ctx, (void **)&img, (size_t)np * sizeof(float), "image");
    if (st == LD_OK) st = ld_paella_vq_decode(ctx, vq, img, x, 1, hB, wB);
    ld_paella_vq_free(vq); /* released after its stage */
    ld_weights_free(ws);
    int64_t s_img[4] = {1, 3, H, W}, s_u8[4] = {1, H, W, 3};
    if (st == LD_OK) {
        for (int64_t i = 0; i < np; i++) img[i] = fminf(fmaxf(img[i], 0.0f), 1.0f);
        st = ld_run_check_finite(ctx, img, 3 * H * W, "vqgan", 0, 0);
    }
    if (st == LD_OK) st = ld_run_dump(ctx, run, "image", LD_F32, 4, s_img, img);
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&out->pixels, (size_t)np, "image");
    if (st == LD_OK) {
        out->width = (int)W;
        out->height = (int)H;
        out->channels = 3;
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < H * W; p++)
                out->pixels[p * 3 + ch] = (uint8_t)nearbyintf(img[ch * H * W + p] * 255.0f);
        st = ld_run_dump(ctx, run, "image_u8", LD_U8, 4, s_u8, out->pixels);
    }
    free(img);
    return st == LD_OK ? ld_run_progress(ctx, run, "vqgan", 1, 1) : st;
}

ld_status ld_cascade_decode(ld_ctx *ctx, const ld_cascade *c, ld_run *run, const float *emb, int64_t hC,
                            int64_t wC, const float *pooled, const float *neg_pooled, int steps, float cfg,
                            ld_image *out) {
    const ld_sc_config *dc = &c->decoder_cfg;
    /* diffusers: int(hC * latent_dim_scale), in double */
    const int64_t hB = (int64_t)((double)hC * c->latent_dim_scale), wB = (int64_t)((double)wC * c->latent_dim_scale);
    const int64_t P = dc->clip_pooled_in, ne = dc->effnet_in * hC * wC;
    float *x = NULL, *effnet = NULL, *pool = NULL;
    ld_status st = ld_malloc(ctx, (void **)&x, (size_t)(dc->in_channels * hB * wB) * sizeof(float), "decoder latents");
    if (st == LD_OK) st = ld_calloc(ctx, (void **)&effnet, (size_t)(2 * ne), sizeof(float), "effnet");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&pool, (size_t)(2 * P) * sizeof(float), "pooled embeddings");
    if (st == LD_OK) {
        memcpy(effnet, emb, (size_t)ne * sizeof(float)); /* the second half stays zero */
        memcpy(pool, pooled, (size_t)P * sizeof(float));
        if (cfg > 1.0f) memcpy(pool + P, neg_pooled, (size_t)P * sizeof(float));
        const decoder_call call = {NULL, hB, wB, hC, wC, effnet, pool};
        st = decoder_stage(ctx, c, run, &call, steps, cfg, x);
    }
    if (st == LD_OK) st = vqgan_decode(ctx, c, run, x, hB, wB, out);
    free(x);
    free(effnet);
    free(pool);
    return st;
}
