/* Stable Cascade Stage B (decoder U-Net, DDPM Wuerstchen, optional CFG) and
 * Stage A (Paella VQ decode of scale_factor * latents, clamp, uint8): spec
 * wuerstchen.md §8.5. Called by cascade.c with the prior's image embeddings
 * and pooled text embeddings (the combined pipeline's hand-over, so the
 * decoder's own text encoder never runs). */
#include "pipeline/cascade.h"

#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *x, *xin, *eps, *effnet, *pooled, *img;
} decode_bufs;

static ld_status alloc_bufs(ld_ctx *ctx, decode_bufs *b, int64_t n, int64_t ne, int64_t P) {
    LD_TRY(ld_malloc(ctx, (void **)&b->x, (size_t)n * sizeof(float), "decoder latents"));
    LD_TRY(ld_malloc(ctx, (void **)&b->xin, (size_t)(2 * n) * sizeof(float), "decoder input"));
    LD_TRY(ld_malloc(ctx, (void **)&b->eps, (size_t)(2 * n) * sizeof(float), "decoder output"));
    LD_TRY(ld_calloc(ctx, (void **)&b->effnet, (size_t)(2 * ne), sizeof(float), "effnet"));
    LD_TRY(ld_malloc(ctx, (void **)&b->pooled, (size_t)(2 * P) * sizeof(float), "pooled embeddings"));
    return LD_OK;
}

static ld_status decoder_loop(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, int64_t hC, int64_t wC, int64_t hB,
                              int64_t wB, int steps, float cfg, decode_bufs *b) {
    const ld_sc_config *dc = &c->decoder_cfg;
    int use_cfg = cfg > 1.0f, nb = use_cfg ? 2 : 1;
    int64_t C = dc->in_channels, n = C * hB * wB, shape[4] = {1, C, hB, wB};
    ld_sc_unet *decoder;
    ld_ddpmw s;
    LD_TRY(ld_ddpmw_init(ctx, &s, "decoder scheduler", c->decoder_sched_cfg));
    ld_status st = ld_cascade_load_decoder(ctx, c, &decoder);
    if (st != LD_OK) {
        ld_ddpmw_free(&s);
        return st;
    }
    st = ld_ddpmw_set_timesteps(ctx, &s, steps);
    if (st == LD_OK) {
        int64_t ts[1] = {s.n_points};
        st = ld_cascade_dump(ctx, run, "decoder.timesteps", LD_F32, 1, ts, s.timesteps);
    }
    if (st == LD_OK) st = ld_cascade_noise(ctx, run, "decoder.latents0", 4, shape, b->x);
    run->t0 = ld_cascade_now();
    for (int i = 0; st == LD_OK && i < s.n_steps; i++) {
        float tt = s.timesteps[i], r[2] = {tt, tt};
        for (int k = 0; k < nb; k++) memcpy(b->xin + k * n, b->x, (size_t)n * sizeof(float));
        /* effnet = [emb; zeros] and pooled = [cond; negative] with CFG */
        ld_sc_inputs in = {.B = nb,
                           .H = hB,
                           .W = wB,
                           .sample = b->xin,
                           .r = r,
                           .clip_text_pooled = b->pooled,
                           .pooled_len = 1,
                           .effnet = b->effnet,
                           .eh = hC,
                           .ew = wC};
        st = ld_sc_unet_forward(ctx, decoder, &in, b->eps);
        if (st != LD_OK) break;
        if (use_cfg) ld_cascade_cfg(b->eps, b->eps, b->eps + n, cfg, n);
        char name[64];
        snprintf(name, sizeof name, "decoder.step%d.noise", i);
        st = ld_cascade_noise(ctx, run, name, 4, shape, b->xin);
        if (st != LD_OK) break;
        ld_ddpmw_step(&s, b->x, b->eps, tt, b->x, b->xin, n);
        if ((st = ld_pipeline_check_finite(ctx, b->x, n, "decoder", i + 1, s.n_steps)) != LD_OK) break;
        snprintf(name, sizeof name, "decoder.step%d.latents", i);
        st = ld_cascade_dump(ctx, run, name, LD_F32, 4, shape, b->x);
        if (st == LD_OK) st = ld_cascade_progress(ctx, run, "decoder", i + 1, s.n_steps);
    }
    ld_sc_unet_free(decoder);
    ld_ddpmw_free(&s);
    return st;
}

/* Stage A: img = clamp(vqgan.decode(scale_factor * x), 0, 1), then
 * uint8 round(img * 255) (round half to even, as torch.round). */
static ld_status vqgan_decode(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, decode_bufs *b, int64_t hB,
                              int64_t wB, ld_image *out) {
    ld_paella_vq *vq;
    ld_weights *ws;
    run->t0 = ld_cascade_now();
    LD_TRY(ld_cascade_load_vqgan(ctx, c, &vq, &ws));
    int64_t f = ld_paella_vq_factor(vq), H = hB * f, W = wB * f, np = 3 * H * W;
    ld_scale(b->x, vq->latent_channels * hB * wB, vq->scale_factor);
    ld_status st = ld_malloc(ctx, (void **)&b->img, (size_t)np * sizeof(float), "image");
    if (st == LD_OK) st = ld_paella_vq_decode(ctx, vq, b->img, b->x, 1, hB, wB);
    ld_paella_vq_free(vq);
    ld_weights_free(ws);
    LD_TRY(st);
    for (int64_t i = 0; i < np; i++) b->img[i] = fminf(fmaxf(b->img[i], 0.0f), 1.0f);
    int64_t s_img[4] = {1, 3, H, W}, s_u8[4] = {1, H, W, 3};
    LD_TRY(ld_pipeline_check_finite(ctx, b->img, 3 * H * W, "vqgan", 0, 0));
    LD_TRY(ld_cascade_dump(ctx, run, "image", LD_F32, 4, s_img, b->img));
    LD_TRY(ld_malloc(ctx, (void **)&out->pixels, (size_t)np, "image"));
    out->width = (int)W;
    out->height = (int)H;
    out->channels = 3;
    for (int64_t ch = 0; ch < 3; ch++)
        for (int64_t p = 0; p < H * W; p++)
            out->pixels[p * 3 + ch] = (uint8_t)nearbyintf(b->img[ch * H * W + p] * 255.0f);
    LD_TRY(ld_cascade_dump(ctx, run, "image_u8", LD_U8, 4, s_u8, out->pixels));
    return ld_cascade_progress(ctx, run, "vqgan", 1, 1);
}

ld_status ld_cascade_decode(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, const float *emb, int64_t hC,
                            int64_t wC, const float *pooled, const float *neg_pooled, int steps, float cfg,
                            ld_image *out) {
    const ld_sc_config *dc = &c->decoder_cfg;
    /* diffusers: int(hC * latent_dim_scale), in double */
    int64_t hB = (int64_t)((double)hC * c->latent_dim_scale), wB = (int64_t)((double)wC * c->latent_dim_scale);
    int64_t P = dc->clip_pooled_in, ne = dc->effnet_in * hC * wC;
    decode_bufs b = {0};
    ld_status st = alloc_bufs(ctx, &b, dc->in_channels * hB * wB, ne, P);
    if (st == LD_OK) {
        memcpy(b.effnet, emb, (size_t)ne * sizeof(float)); /* the second half stays zero */
        memcpy(b.pooled, pooled, (size_t)P * sizeof(float));
        if (cfg > 1.0f) memcpy(b.pooled + P, neg_pooled, (size_t)P * sizeof(float));
        st = decoder_loop(ctx, c, run, hC, wC, hB, wB, steps, cfg, &b);
    }
    if (st == LD_OK) st = vqgan_decode(ctx, c, run, &b, hB, wB, out);
    free(b.x);
    free(b.xin);
    free(b.eps);
    free(b.effnet);
    free(b.pooled);
    free(b.img);
    return st;
}
