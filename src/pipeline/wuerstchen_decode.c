/* Wuerstchen v2 Stage B and Stage A: encode the prompt with CLIP ViT-H (with
 * the padding mask), run WuerstchenDiffNeXt on [image embeddings; zeros] with
 * DDPMWuerstchen and CFG, decode scale_factor * latents with the Paella VQGAN,
 * clamp to [0, 1] and round to 8 bits. See wuerstchen.h, spec section 8.2. */
#include "pipeline/wuerstchen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ld_status run_decoder(ld_ctx *ctx, ld_wuerstchen *w, ld_wu_run *run, const float *emb, int64_t hC, int64_t wC,
                             int steps, float cfg, int64_t hB, int64_t wB, float *x) {
    const ld_gen_params *p = run->params;
    int do_cfg = cfg > 1.0f;
    float *text = NULL, *eff = NULL, *xin = NULL, *eps = NULL, *noise = NULL;
    int64_t D, T;
    ld_wu_stage_start(run);
    LD_TRY(ld_wu_need_decoder_text(ctx, w));
    LD_TRY(ld_wu_encode_text(ctx, run, w->decoder_tok, w->decoder_text, p->prompt, p->negative_prompt, do_cfg,
                             "decoder", &text, &D, &T));
    ld_clip_text_free(w->decoder_text); /* released after its stage */
    w->decoder_text = NULL;
    int64_t B = do_cfg ? 2 : 1, Ce = w->decoder->effnet_embd, ne = Ce * hC * wC;
    ld_ddpmw s = w->decoder_sched;
    int64_t C = w->decoder->c_in, n = C * hB * wB, shape[4] = {1, C, hB, wB};
    ld_status st = ld_ddpmw_set_timesteps(ctx, &s, steps);
    int64_t s_t[1] = {s.n_points};
    if (st == LD_OK) st = ld_wu_dump(ctx, run, "decoder.timesteps", LD_F32, 1, s_t, s.timesteps);
    /* effnet = [emb; zeros] with CFG */
    if (st == LD_OK) st = ld_calloc(ctx, (void **)&eff, (size_t)(B * ne), sizeof(float), "effnet");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&xin, (size_t)(B * n) * sizeof(float), "decoder input");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&eps, (size_t)(B * n) * sizeof(float), "decoder output");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&noise, (size_t)n * sizeof(float), "decoder noise");
    if (st == LD_OK) {
        memcpy(eff, emb, (size_t)ne * sizeof(float));
        st = ld_wu_noise(ctx, run, "decoder.latents0", 4, shape, x);
    }
    ld_wu_stage_start(run);
    for (int i = 0; st == LD_OK && i < s.n_steps; i++) {
        float t = s.timesteps[i], r[2] = {t, t};
        for (int64_t b = 0; b < B; b++) memcpy(xin + b * n, x, (size_t)n * sizeof(float));
        st = ld_wuerstchen_diffnext_forward(ctx, w->decoder, eps, xin, B, hB, wB, r, eff, hC, wC, text, T);
        if (st != LD_OK) break;
        if (do_cfg) ld_wu_lerp(eps, eps + n, eps, cfg, n);
        char name[64];
        snprintf(name, sizeof name, "decoder.step%d.noise", i);
        if ((st = ld_wu_noise(ctx, run, name, 4, shape, noise)) != LD_OK) break;
        ld_ddpmw_step(&s, x, eps, t, x, noise, n);
        if ((st = ld_pipeline_check_finite(ctx, x, n, "decoder", i + 1, s.n_steps)) != LD_OK) break;
        snprintf(name, sizeof name, "decoder.step%d.latents", i);
        if ((st = ld_wu_dump(ctx, run, name, LD_F32, 4, shape, x)) != LD_OK) break;
        st = ld_wu_progress(ctx, run, "decoder", i + 1, s.n_steps);
    }
    free(text);
    free(eff);
    free(xin);
    free(eps);
    free(noise);
    return st;
}

/* img = clamp(vqgan.decode(scale_factor * x), 0, 1); u8 = round(img * 255), HWC. */
static ld_status run_vqgan(ld_ctx *ctx, ld_wuerstchen *w, ld_wu_run *run, float *x, int64_t hB, int64_t wB,
                           ld_image *out) {
    LD_TRY(ld_wu_need_vqgan(ctx, w));
    const ld_paella_vq *vq = w->vqgan;
    int64_t f = ld_paella_vq_factor(vq), H = hB * f, W = wB * f, C = vq->out_channels, HW = H * W;
    if (C != 3)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "the VQGAN makes %lld channels; only RGB (3) images are supported",
                       (long long)C);
    ld_wu_stage_start(run);
    for (int64_t i = 0; i < vq->latent_channels * hB * wB; i++) x[i] *= vq->scale_factor;
    float *img;
    LD_TRY(ld_malloc(ctx, (void **)&img, (size_t)(C * HW) * sizeof(float), "image"));
    ld_status st = ld_paella_vq_decode(ctx, vq, img, x, 1, hB, wB);
    if (st == LD_OK) st = ld_pipeline_check_finite(ctx, img, C * HW, "vqgan", 0, 0);
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&out->pixels, (size_t)(C * HW), "image pixels");
    if (st == LD_OK) {
        for (int64_t i = 0; i < C * HW; i++) img[i] = img[i] < 0.0f ? 0.0f : img[i] > 1.0f ? 1.0f : img[i];
        /* numpy's round: half to even, like rintf in the default rounding mode */
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < HW; i++) out->pixels[i * C + c] = (uint8_t)rintf(img[c * HW + i] * 255.0f);
        out->width = (int)W;
        out->height = (int)H;
        out->channels = (int)C;
        int64_t s_img[4] = {1, C, H, W}, s_u8[4] = {1, H, W, C};
        st = ld_wu_dump(ctx, run, "image", LD_F32, 4, s_img, img);
        if (st == LD_OK) st = ld_wu_dump(ctx, run, "image_u8", LD_U8, 4, s_u8, out->pixels);
        if (st == LD_OK) st = ld_wu_progress(ctx, run, "vqgan", 1, 1);
    }
    free(img);
    ld_paella_vq_free(w->vqgan);
    w->vqgan = NULL;
    return st;
}

ld_status ld_wu_decode(ld_ctx *ctx, ld_wuerstchen *w, ld_wu_run *run, const float *emb, int64_t hC, int64_t wC,
                       int steps, float cfg, ld_image *out) {
    int64_t hB = (int64_t)((double)hC * w->latent_dim_scale), wB = (int64_t)((double)wC * w->latent_dim_scale);
    LD_TRY(ld_wu_need_decoder(ctx, w));
    LD_TRY(ld_wuerstchen_diffnext_check_size(ctx, w->decoder, hB, wB));
    float *x;
    LD_TRY(ld_malloc(ctx, (void **)&x, (size_t)(w->decoder->c_in * hB * wB) * sizeof(float), "decoder latents"));
    ld_status st = run_decoder(ctx, w, run, emb, hC, wC, steps, cfg, hB, wB, x);
    ld_wuerstchen_diffnext_free(w->decoder); /* released after its stage */
    w->decoder = NULL;
    if (st == LD_OK) st = run_vqgan(ctx, w, run, x, hB, wB, out);
    free(x);
    return st;
}
