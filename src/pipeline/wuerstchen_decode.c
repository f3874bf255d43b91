/* Wuerstchen v2 Stage B and Stage A: encode the prompt with CLIP ViT-H (with
 * the padding mask), run WuerstchenDiffNeXt on [image embeddings; zeros] with
 * DDPMWuerstchen and CFG on the denoising loop, decode scale_factor * latents
 * with the Paella VQGAN, clamp to [0, 1] and round to 8 bits. Each model is
 * loaded for its stage and released after it. See wuerstchen.h, spec
 * section 8.2. */
#include "pipeline/wuerstchen.h"

#include "pipeline/denoise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ld_wuerstchen_diffnext *decoder;
    int64_t hB, wB, hC, wC, T;
    const float *eff;  /* [B, Ce, hC, wC]: [emb; zeros] with CFG */
    const float *text; /* [B, T, D] */
} decoder_call;

static ld_status decoder_model(ld_ctx *ctx, void *user, const float *in, int B, float t, float *out) {
    decoder_call *dc = user;
    float r[2] = {t, t};
    const ld_wuerstchen_diffnext_inputs di = {.B = B, .H = dc->hB, .W = dc->wB, .sample = in, .r = r,
                                              .effnet = dc->eff, .eh = dc->hC, .ew = dc->wC,
                                              .clip_text = dc->text, .text_len = dc->T};
    return ld_wuerstchen_diffnext_forward(ctx, dc->decoder, &di, out);
}

static ld_status run_decoder(ld_ctx *ctx, const ld_wuerstchen *w, ld_wuerstchen_diffnext *dec, ld_run *run,
                             const float *emb, int64_t hC, int64_t wC, int steps, float cfg, int64_t hB, int64_t wB,
                             float *x) {
    const int do_cfg = cfg > 1.0f;
    ld_run_stage_start(run);
    ld_prompt_enc e;
    LD_TRY(ld_wu_encode_text(ctx, run, w, w->decoder_tok, w->decoder_text_dir, do_cfg, "decoder.", &e));
    const int64_t B = do_cfg ? 2 : 1, ne = dec->effnet_embd * hC * wC;
    const int64_t C = dec->c_in, n = C * hB * wB, shape[4] = {1, C, hB, wB};
    ld_scheduler *s = NULL;
    float *eff = NULL;
    ld_status st = ld_ddpmw_stage_scheduler(ctx, run, w->decoder_sched_cfg, w->decoder_sched_where, steps, "decoder.", &s);
    if (st == LD_OK) st = ld_calloc(ctx, (void **)&eff, (size_t)(B * ne), sizeof(float), "effnet");
    if (st == LD_OK) {
        memcpy(eff, emb, (size_t)ne * sizeof(float)); /* the second half stays zero */
        st = ld_run_noise(ctx, run, "decoder.latents0", 4, shape, x);
    }
    decoder_call dc = {dec, hB, wB, hC, wC, e.L, eff, e.hidden};
    ld_denoise d = {.stage = "decoder", .prefix = "decoder.", .ndim = 4, .shape = {1, C, hB, wB}, .n_in = n,
                    .guided = do_cfg, .guidance = LD_GUIDE_LERP, .scale = cfg, .model = decoder_model, .user = &dc};
    if (st == LD_OK) st = ld_denoise_run(ctx, run, s, x, &d);
    ld_scheduler_free(s);
    ld_prompt_enc_free(&e);
    free(eff);
    return st;
}

/* img = clamp(vqgan.decode(scale_factor * x), 0, 1); u8 = round(img * 255), HWC. */
static ld_status run_vqgan(ld_ctx *ctx, const ld_wuerstchen *w, ld_run *run, float *x, int64_t hB, int64_t wB,
                           ld_image *out) {
    ld_paella_vq *vq;
    LD_TRY(ld_paella_vq_load(ctx, w->vqgan_dir, ld_wu_variant(w), &vq));
    int64_t f = ld_paella_vq_factor(vq), H = hB * f, W = wB * f, C = vq->out_channels, HW = H * W;
    float *img = NULL;
    ld_status st = LD_OK;
    if (C != 3)
        st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "the VQGAN makes %lld channels; only RGB (3) images are supported",
                     (long long)C);
    ld_run_stage_start(run);
    if (st == LD_OK) {
        for (int64_t i = 0; i < vq->latent_channels * hB * wB; i++) x[i] *= vq->scale_factor;
        st = ld_malloc(ctx, (void **)&img, (size_t)(C * HW) * sizeof(float), "image");
    }
    if (st == LD_OK) st = ld_paella_vq_decode(ctx, vq, img, x, 1, hB, wB);
    ld_paella_vq_free(vq); /* released after its stage */
    if (st == LD_OK) st = ld_run_check_finite(ctx, img, C * HW, "vqgan", 0, 0);
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
        st = ld_run_dump(ctx, run, "image", LD_F32, 4, s_img, img);
        if (st == LD_OK) st = ld_run_dump(ctx, run, "image_u8", LD_U8, 4, s_u8, out->pixels);
        if (st == LD_OK) st = ld_run_progress(ctx, run, "vqgan", 1, 1);
    }
    free(img);
    return st;
}

ld_status ld_wu_decode(ld_ctx *ctx, const ld_wuerstchen *w, ld_run *run, const float *emb, int64_t hC, int64_t wC,
                       int steps, float cfg, ld_image *out) {
    int64_t hB = (int64_t)((double)hC * w->latent_dim_scale), wB = (int64_t)((double)wC * w->latent_dim_scale);
    ld_wuerstchen_diffnext *dec;
    ld_run_denoiser_loading(run);
    ld_status st = ld_wuerstchen_diffnext_load(ctx, w->decoder_dir, ld_wu_variant(w), &dec);
    ld_run_denoiser_loaded(run);
    if (st != LD_OK) return st;
    float *x = NULL;
    st = ld_wuerstchen_diffnext_check_size(ctx, dec, hB, wB);
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&x, (size_t)(dec->c_in * hB * wB) * sizeof(float), "decoder latents");
    if (st == LD_OK) st = run_decoder(ctx, w, dec, run, emb, hC, wC, steps, cfg, hB, wB, x);
    ld_wuerstchen_diffnext_free(dec); /* released after its stage */
    if (st == LD_OK) st = run_vqgan(ctx, w, run, x, hB, wB, out);
    free(x);
    return st;
}
