/* Stable Cascade text-to-image (spec wuerstchen.md §8.4-8.6): prompt ->
 * bigG CLIP (hidden_states[-1] + pooled text_embeds) -> Stage C prior (DDPM
 * Wuerstchen, CFG) -> image embeddings -> Stage B decoder -> Stage A (Paella
 * VQ) -> RGB. This file: the text encoder, the prior (on the denoising loop of
 * denoise.h) and generate; cascade_models.c: open and the stage loaders;
 * cascade_decode.c: stages B, A.
 *
 *     ld_pipeline_options o; ld_pipeline_options_init(&o);
 *     o.model_dir = "stable-cascade-prior"; o.decoder_dir = "stable-cascade";
 *     ld_pipeline_open(ctx, &o, &p);   ld_generate(ctx, p, &params, &img, &info);
 */
#include "pipeline/cascade.h"

#include "pipeline/denoise.h"
#include "text/prompt_encode.h"
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text ---- */

typedef struct {
    float *hidden; /* [nb, L, D] hidden_states[-1] */
    float *pooled; /* [nb, P] text_embeds (of the first chunk) */
    int64_t L;     /* 77, or 77 per chunk with the A1111 syntax */
    int nb;        /* 1, or 2 with the negative */
} cascade_text;

/* with_negative: also encode the negative prompt ("" if none), as batch entry 1;
 * its prior.* dump entries only when the prior runs CFG (as diffusers has them). */
static ld_status encode_text(ld_ctx *ctx, const ld_cascade *c, ld_run *run, int with_negative,
                             int dump_negative, cascade_text *t) {
    const ld_gen_params *p = run->params;
    const char *texts[2] = {p->prompt, p->negative_prompt ? p->negative_prompt : ""};
    const char *names[2] = {"prompt", "negative prompt"};
    int a1111;
    LD_TRY(ld_prompt_syntax_name(ctx, p->prompt_syntax, &a1111));
    t->nb = with_negative ? 2 : 1;
    ld_clip_text *te;
    LD_TRY(ld_cascade_load_text(ctx, c, &te));
    /* hidden_states[-1] with the padding mask, and the pooled text_embeds */
    ld_prompt_enc e;
    ld_prompt_warn_truncation(c->tok, texts, t->nb, names, a1111);
    ld_status st = ld_prompt_encode(ctx, c->tok, te, texts, t->nb, names, a1111, -1, 1, 1, &e);
    ld_clip_text_free(te);
    LD_TRY(st);
    t->hidden = e.hidden, t->pooled = e.pooled, t->L = e.L;
    e.hidden = e.pooled = NULL; /* t owns them now */
    const int64_t D = e.D, P = e.P;
    int64_t s_ids[2] = {1, LD_CLIP_CONTEXT}, s_h[3] = {1, t->L, D}, s_p[3] = {1, 1, P};
    st = ld_run_dump(ctx, run, "prior.input_ids", LD_I64, 2, s_ids, e.ids); /* the first chunk's */
    if (st == LD_OK) st = ld_run_dump(ctx, run, "prior.attention_mask", LD_I64, 2, s_ids, e.mask);
    ld_prompt_enc_free(&e);
    LD_TRY(st);
    LD_TRY(ld_run_dump(ctx, run, "prior.prompt_embeds", LD_F32, 3, s_h, t->hidden));
    LD_TRY(ld_run_dump(ctx, run, "prior.prompt_embeds_pooled", LD_F32, 3, s_p, t->pooled));
    if (with_negative && dump_negative) {
        LD_TRY(ld_run_dump(ctx, run, "prior.negative_prompt_embeds", LD_F32, 3, s_h, t->hidden + t->L * D));
        LD_TRY(ld_run_dump(ctx, run, "prior.negative_prompt_embeds_pooled", LD_F32, 3, s_p, t->pooled + P));
    }
    return ld_run_progress(ctx, run, "text", 1, 1);
}

/* ---- Stage C ---- */

typedef struct {
    ld_sc_unet *prior;
    int64_t hC, wC, L;
    const cascade_text *t;
    const float *img; /* zero image embeddings for both halves */
} prior_call;

/* Batch entries [first, first + B) on the model's lane. */
static ld_status prior_run(ld_ctx *ctx, const prior_call *pc, int lane, int first, const float *in, int B, float t,
                           float *out) {
    const ld_sc_config *c = &pc->prior->cfg;
    const float r[2] = {t, t};
    ld_sc_inputs si = {.B = B,
                       .H = pc->hC,
                       .W = pc->wC,
                       .sample = in,
                       .r = r,
                       .clip_text_pooled = pc->t->pooled + first * c->clip_pooled_in,
                       .pooled_len = 1,
                       .clip_text = pc->t->hidden + first * pc->t->L * c->clip_text_in,
                       .text_len = pc->t->L,
                       .clip_img = pc->img + first * c->clip_img_in};
    return ld_sc_unet_forward_lane(ctx, pc->prior, lane, &si, out);
}

static ld_status prior_model(ld_ctx *ctx, void *user, const float *in, int B, float t, float *out) {
    return prior_run(ctx, user, 0, 0, in, B, t, out);
}

static ld_status prior_half(ld_ctx *ctx, void *user, int half, const float *in, float t, float *out) {
    return prior_run(ctx, user, half, half, in, 1, t, out);
}

static ld_status prior_stage(ld_ctx *ctx, const ld_cascade *c, ld_run *run, const cascade_text *t, int64_t hC,
                             int64_t wC, int steps, float cfg, float *x) {
    const ld_sc_config *pc = &c->prior_cfg;
    const int64_t C = pc->in_channels, shape[4] = {1, C, hC, wC};
    ld_sc_unet *prior = NULL;
    ld_scheduler *s = NULL;
    float *img = NULL;
    ld_run_denoiser_loading(run);
    ld_status st = ld_cascade_load_prior(ctx, c, &prior);
    ld_run_denoiser_loaded(run);
    if (st == LD_OK) /* the v3 prior always uses linspace(1, 0, N+1) */
        st = ld_ddpmw_stage_scheduler(ctx, run, c->prior_sched_cfg, "prior scheduler", steps, "prior.", &s);
    if (st == LD_OK) st = ld_calloc(ctx, (void **)&img, (size_t)(2 * pc->clip_img_in), sizeof(float), "clip_img");
    if (st == LD_OK) st = ld_run_noise(ctx, run, "prior.latents0", 4, shape, x);
    prior_call call = {prior, hC, wC, t->L, t, img};
    ld_denoise d = {.stage = "prior", .prefix = "prior.", .ndim = 4, .shape = {1, C, hC, wC},
                    .n_in = C * hC * wC, .guided = cfg > 1.0f, .guidance = LD_GUIDE_LERP, .scale = cfg,
                    .model = prior_model, .model_half = prior_half, .user = &call};
    if (st == LD_OK) st = ld_denoise_run(ctx, run, s, x, &d);
    if (st == LD_OK) st = ld_run_dump(ctx, run, "image_embeddings", LD_F32, 4, shape, x);
    ld_sc_unet_free(prior); /* released after its stage */
    ld_scheduler_free(s);
    free(img);
    return st;
}

/* ---- generate ---- */

typedef struct {
    int width, height, prior_steps, steps;
    float prior_cfg, cfg;
    int64_t hC, wC;
} cascade_plan;

/* The family's defaults (ld_pipeline_describe), the one place they are stated. */
static void cascade_describe(const void *state, ld_pipeline_desc *d) {
    (void)state;
    d->width = d->height = LD_CASCADE_DEFAULT_SIZE;
    d->steps = LD_CASCADE_DEFAULT_DECODER_STEPS;
    d->cfg_scale = LD_CASCADE_DEFAULT_DECODER_CFG;
    d->prior_steps = LD_CASCADE_DEFAULT_PRIOR_STEPS;
    d->prior_cfg_scale = LD_CASCADE_DEFAULT_PRIOR_CFG;
    d->size_multiple = 128; /* see plan(): multiples of 128 pixels always work */
    d->sampler = "ddpm_wuerstchen";
    d->schedule = "default";
    d->samplers[d->nsamplers++] = "ddpm_wuerstchen";
}

/* Resolves defaults and checks that the latent sizes can run: the decoder's
 * latent int(hC * 10.67) must split into patches and survive its levels. */
static ld_status plan(ld_ctx *ctx, const ld_cascade *c, const ld_gen_params *p, cascade_plan *pl) {
    ld_pipeline_desc def = {0};
    cascade_describe(c, &def);
    pl->width = p->width ? p->width : def.width;
    pl->height = p->height ? p->height : def.height;
    pl->prior_steps = p->prior_steps ? p->prior_steps : def.prior_steps;
    pl->steps = p->steps ? p->steps : def.steps;
    pl->prior_cfg = p->prior_cfg_scale < 0 ? def.prior_cfg_scale : p->prior_cfg_scale;
    pl->cfg = p->cfg_scale < 0 ? def.cfg_scale : p->cfg_scale;
    pl->hC = (int64_t)ceil(pl->height / c->resolution_multiple);
    pl->wC = (int64_t)ceil(pl->width / c->resolution_multiple);
    const ld_sc_config *d = &c->decoder_cfg;
    int64_t hB = (int64_t)((double)pl->hC * c->latent_dim_scale), wB = (int64_t)((double)pl->wC * c->latent_dim_scale);
    int64_t dh, dw;
    ld_sc_config_deepest_size(d, hB / d->patch_size, wB / d->patch_size, &dh, &dw);
    if (hB % d->patch_size || wB % d->patch_size || dh < 1 || dw < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "image size %dx%d gives a Stage C latent of %lldx%lld and a Stage B latent of %lldx%lld, which "
                       "the decoder cannot run (its sides must be multiples of %lld and at least %lld); multiples of "
                       "128 pixels always work",
                       pl->width, pl->height, (long long)pl->wC, (long long)pl->hC, (long long)wB, (long long)hB,
                       (long long)d->patch_size, (long long)(d->patch_size << (d->levels - 1)));
    return LD_OK;
}

static ld_status run_generate(ld_ctx *ctx, const ld_cascade *c, ld_run *run, const cascade_plan *pl,
                              ld_image *out) {
    const ld_sc_config *pc = &c->prior_cfg;
    const int prior_cfg = pl->prior_cfg > 1.0f, dec_cfg = pl->cfg > 1.0f;
    cascade_text t = {0};
    float *x = NULL;
    const int64_t n = pc->in_channels * pl->hC * pl->wC, P = pc->clip_pooled_in;
    ld_status st = encode_text(ctx, c, run, prior_cfg || dec_cfg, prior_cfg, &t);
    if (st == LD_OK && !prior_cfg && t.nb == 2) t.nb = 1; /* the negative is only for the decoder */
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&x, (size_t)n * sizeof(float), "prior latents");
    if (st == LD_OK) st = prior_stage(ctx, c, run, &t, pl->hC, pl->wC, pl->prior_steps, pl->prior_cfg, x);
    if (st == LD_OK)
        st = ld_cascade_decode(ctx, c, run, x, pl->hC, pl->wC, t.pooled, dec_cfg ? t.pooled + P : NULL, pl->steps,
                               pl->cfg, out);
    free(t.hidden);
    free(t.pooled);
    free(x);
    return st;
}

static ld_status cascade_generate(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_precision precision,
                                  ld_image *out, ld_gen_info *info) {
    const ld_cascade *c = state;
    cascade_plan pl;
    int a1111;
    LD_TRY(plan(ctx, c, params, &pl));
    LD_TRY(ld_prompt_syntax_name(ctx, params->prompt_syntax, &a1111));
    ld_run run;
    ld_status st = ld_run_begin(ctx, &run, params, precision);
    if (st == LD_OK) st = run_generate(ctx, c, &run, &pl, out);
    info->seconds = ld_run_seconds(&run);
    st = ld_run_end(ctx, &run, st);
    if (st != LD_OK) {
        ld_image_free(out);
        return st;
    }
    info->width = out->width;
    info->height = out->height;
    info->steps = pl.steps;
    info->prior_steps = pl.prior_steps;
    info->cfg_scale = pl.cfg;
    info->prior_cfg_scale = pl.prior_cfg;
    snprintf(info->sampler, sizeof info->sampler, "ddpm_wuerstchen");
    snprintf(info->prompt_syntax, sizeof info->prompt_syntax, "%s", a1111 ? "a1111" : "plain");
    return LD_OK;
}

static const char *const cascade_classes[] = {"StableCascadePriorPipeline", NULL};

const ld_pipeline_impl ld_pipeline_stable_cascade = {
    .family = "stable-cascade",
    .class_names = cascade_classes,
    .open = ld_cascade_open,
    .free = ld_cascade_free,
    .describe = cascade_describe,
    .generate = cascade_generate,
};
