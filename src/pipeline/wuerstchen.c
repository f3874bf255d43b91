/* Wuerstchen v2 text-to-image: open the prior and decoder pipeline folders
 * (configs checked, each model loaded once to check the pieces fit), then per
 * generation: the prior's text stage, the prior (DDPMWuerstchen with CFG, on
 * the denoising loop of denoise.h), denormalize, and hand over to
 * wuerstchen_decode.c. See wuerstchen.h. */
#include "pipeline/wuerstchen.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "pipeline/denoise.h"
#include "sched/ddpm_wuerstchen.h"
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- open / free ---- */

static void wu_free(void *state) {
    ld_wuerstchen *w = state;
    if (!w) return;
    ld_clip_tokenizer_free(w->prior_tok);
    ld_clip_tokenizer_free(w->decoder_tok);
    json_decref(w->prior_sched_cfg);
    json_decref(w->decoder_sched_cfg);
    free(w);
}

/* The folder's scheduler config (a DDPMWuerstchenScheduler), checked by
 * creating a scheduler from it. */
static ld_status read_scheduler(ld_ctx *ctx, const char *dir, const json_t *index, json_t **cfg, char *where,
                                size_t where_size) {
    char comp[4200];
    LD_TRY(ld_component_dir(ctx, dir, index, "scheduler", comp, sizeof comp));
    LD_TRY(ld_component_config(ctx, comp, cfg));
    const char *cls = json_string_value(json_object_get(*cfg, "_class_name"));
    snprintf(where, where_size, "%s/scheduler_config.json", comp);
    if (cls && strcmp(cls, "DDPMWuerstchenScheduler") != 0)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: scheduler '%s' is not supported (only DDPMWuerstchenScheduler)",
                       where, cls);
    ld_scheduler *s;
    LD_TRY(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_DEFAULT, *cfg, where, NULL, &s));
    ld_scheduler_free(s);
    return LD_OK;
}

/* Loads every model once to check that the pieces fit together, keeps what
 * the size checks need, and releases them. */
static ld_status check_models(ld_ctx *ctx, ld_wuerstchen *w, const char *prior_dir, const char *decoder_dir) {
    ld_clip_text *pt = NULL, *dt = NULL;
    ld_wuerstchen_prior *prior = NULL;
    ld_wuerstchen_diffnext *dec = NULL;
    ld_paella_vq *vq = NULL;
    const char *v = ld_wu_variant(w);
    ld_status st = ld_clip_text_load(ctx, w->prior_text_dir, v, &pt);
    if (st == LD_OK) st = ld_wuerstchen_prior_load(ctx, w->prior_dir, v, &prior);
    if (st == LD_OK) st = ld_clip_text_load(ctx, w->decoder_text_dir, v, &dt);
    if (st == LD_OK) st = ld_wuerstchen_diffnext_load(ctx, w->decoder_dir, v, &dec);
    if (st == LD_OK) st = ld_paella_vq_load(ctx, w->vqgan_dir, v, &vq);
    if (st == LD_OK && ld_clip_text_get_config(pt)->hidden_size != prior->c_cond)
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: the text encoder's hidden_size %lld differs from the prior's c_cond %lld",
                     prior_dir, (long long)ld_clip_text_get_config(pt)->hidden_size, (long long)prior->c_cond);
    if (st == LD_OK && ld_clip_text_get_config(dt)->hidden_size != dec->clip_embd)
        st = ld_fail(ctx, LD_ERR_MODEL,
                     "%s: the text encoder's hidden_size %lld differs from the decoder's clip_embd %lld",
                     decoder_dir, (long long)ld_clip_text_get_config(dt)->hidden_size, (long long)dec->clip_embd);
    if (st == LD_OK && prior->c_in != dec->effnet_embd)
        st = ld_fail(ctx, LD_ERR_MODEL, "the prior makes %lld channels but the decoder's effnet_embd is %lld",
                     (long long)prior->c_in, (long long)dec->effnet_embd);
    if (st == LD_OK && dec->c_out != vq->latent_channels)
        st = ld_fail(ctx, LD_ERR_MODEL, "the decoder makes %lld channels but the VQGAN's latent_channels is %lld",
                     (long long)dec->c_out, (long long)vq->latent_channels);
    if (st == LD_OK) {
        w->prior_c_in = prior->c_in;
        w->decoder_multiple = ld_wuerstchen_diffnext_size_multiple(dec);
        w->vq_factor = ld_paella_vq_factor(vq);
    }
    ld_clip_text_free(pt);
    ld_clip_text_free(dt);
    ld_wuerstchen_prior_free(prior);
    ld_wuerstchen_diffnext_free(dec);
    ld_paella_vq_free(vq);
    return st;
}

static ld_status wu_open(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *prior_index, void **state) {
    *state = NULL;
    if (!opt->decoder_dir)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "%s is a Wuerstchen prior: give the decoder pipeline folder too (warp-ai/wuerstchen, "
                       "option decoder_dir / --decoder)",
                       opt->model_dir);
    if (opt->prior_weights || opt->decoder_weights || opt->vqgan_weights)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "single-file weights are a Stable Cascade option, not Wuerstchen v2");
    ld_wuerstchen *w;
    LD_TRY(ld_calloc(ctx, (void **)&w, 1, sizeof *w, "Wuerstchen pipeline"));
    json_t *dec_index = NULL;
    const char *dec_cls = NULL;
    char where[4200];
    snprintf(where, sizeof where, "%s/model_index.json", opt->model_dir);
    ld_status st = ld_json_num(ctx, where, prior_index, "latent_mean", 42.0, &w->latent_mean);
    if (st == LD_OK) st = ld_json_num(ctx, where, prior_index, "latent_std", 1.0, &w->latent_std);
    if (st == LD_OK) st = ld_json_num(ctx, where, prior_index, "resolution_multiple", 42.67, &w->resolution_multiple);
    if (st == LD_OK && !(w->resolution_multiple >= 1 && w->resolution_multiple <= 1024))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: resolution_multiple %g is out of range", where, w->resolution_multiple);
    if (st == LD_OK) st = ld_model_index_load(ctx, opt->decoder_dir, &dec_index, &dec_cls);
    if (st == LD_OK && strcmp(dec_cls, "WuerstchenDecoderPipeline") != 0)
        st = ld_fail(ctx, LD_ERR_MODEL, "%s/model_index.json: expected a WuerstchenDecoderPipeline, got '%s'",
                     opt->decoder_dir, dec_cls);
    snprintf(where, sizeof where, "%s/model_index.json", opt->decoder_dir);
    if (st == LD_OK) st = ld_json_num(ctx, where, dec_index, "latent_dim_scale", 10.67, &w->latent_dim_scale);
    if (st == LD_OK && !(w->latent_dim_scale > 0 && w->latent_dim_scale <= 1024))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: latent_dim_scale %g is out of range", where, w->latent_dim_scale);
    const char *pd = opt->model_dir, *dd = opt->decoder_dir;
    char c[4200];
    const size_t dn = sizeof w->prior_dir; /* every *_dir has this size */
    if (opt->variant) {
        snprintf(w->variant, sizeof w->variant, "%s", opt->variant);
        w->has_variant = 1;
    }
    if (st == LD_OK) st = ld_component_dir(ctx, pd, prior_index, "tokenizer", c, sizeof c);
    if (st == LD_OK) st = ld_clip_tokenizer_load(ctx, c, &w->prior_tok);
    if (st == LD_OK) st = ld_component_dir(ctx, pd, prior_index, "text_encoder", w->prior_text_dir, dn);
    if (st == LD_OK) st = ld_component_dir(ctx, pd, prior_index, "prior", w->prior_dir, dn);
    if (st == LD_OK)
        st = read_scheduler(ctx, pd, prior_index, &w->prior_sched_cfg, w->prior_sched_where,
                            sizeof w->prior_sched_where);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "tokenizer", c, sizeof c);
    if (st == LD_OK) st = ld_clip_tokenizer_load(ctx, c, &w->decoder_tok);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "text_encoder", w->decoder_text_dir, dn);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "decoder", w->decoder_dir, dn);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "vqgan", w->vqgan_dir, dn);
    if (st == LD_OK)
        st = read_scheduler(ctx, dd, dec_index, &w->decoder_sched_cfg, w->decoder_sched_where,
                            sizeof w->decoder_sched_where);
    if (st == LD_OK) st = check_models(ctx, w, opt->model_dir, opt->decoder_dir);
    json_decref(dec_index);
    if (st != LD_OK) {
        wu_free(w);
        return st;
    }
    *state = w;
    return LD_OK;
}

/* ---- sizes ---- */

/* Stage C latent side for an image side (ceil(H / resolution_multiple)). */
static int64_t prior_side(const ld_wuerstchen *w, int64_t H) {
    return (int64_t)ceil((double)H / w->resolution_multiple);
}
static int64_t decoder_side(const ld_wuerstchen *w, int64_t hC) { return (int64_t)((double)hC * w->latent_dim_scale); }

/* A size works when the decoder can halve its latent down to the deepest
 * level and the image comes out at the requested size. */
static int side_fits(const ld_wuerstchen *w, int64_t H) {
    int64_t hB = decoder_side(w, prior_side(w, H)), m = w->decoder_multiple;
    return hB >= m && hB % m == 0 && hB * w->vq_factor == H;
}

static ld_status check_side(ld_ctx *ctx, const ld_wuerstchen *w, const char *what, int64_t H) {
    if (side_fits(w, H)) return LD_OK;
    int64_t lo = H - 1, hi = H + 1;
    while (lo > 0 && !side_fits(w, lo)) lo--;
    while (hi <= 16384 && !side_fits(w, hi)) hi++;
    char near[128];
    if (lo > 0 && hi <= 16384)
        snprintf(near, sizeof near, "%lld or %lld", (long long)lo, (long long)hi);
    else
        snprintf(near, sizeof near, "%lld", (long long)(lo > 0 ? lo : hi));
    int64_t hC = prior_side(w, H), hB = decoder_side(w, hC);
    return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                   "%s %lld does not fit Wuerstchen v2 (prior latent ceil(%lld/%g) = %lld, decoder latent "
                   "int(%lld*%g) = %lld, which must be a multiple of %lld and give %lld pixels); the nearest %ss that "
                   "work are %s",
                   what, (long long)H, (long long)H, w->resolution_multiple, (long long)hC, (long long)hC,
                   w->latent_dim_scale, (long long)hB, (long long)w->decoder_multiple,
                   (long long)H, what, near);
}

/* ---- prior ---- */

typedef struct {
    ld_wuerstchen_prior *prior;
    int64_t hC, wC, T;
    const float *text; /* [B, T, D]: [cond; uncond] with CFG */
} prior_call;

/* Batch entries [first, first + B) on the model's lane. */
static ld_status prior_run(ld_ctx *ctx, const prior_call *pc, int lane, int first, const float *in, int B, float t,
                           float *out) {
    float r[2] = {t, t};
    const ld_wuerstchen_prior_inputs pi = {.B = B,
                                           .H = pc->hC,
                                           .W = pc->wC,
                                           .sample = in,
                                           .r = r,
                                           .clip_text = pc->text + first * pc->T * pc->prior->c_cond,
                                           .text_len = pc->T};
    return ld_wuerstchen_prior_forward_lane(ctx, pc->prior, lane, &pi, out);
}

static ld_status prior_model(ld_ctx *ctx, void *user, const float *in, int B, float t, float *out) {
    return prior_run(ctx, user, 0, 0, in, B, t, out);
}

static ld_status prior_half(ld_ctx *ctx, void *user, int half, const float *in, float t, float *out) {
    return prior_run(ctx, user, half, half, in, 1, t, out);
}

static ld_status run_prior(ld_ctx *ctx, const ld_wuerstchen *w, ld_run *run, int64_t hC, int64_t wC, int steps,
                           float cfg, float *x) {
    const ld_gen_params *p = run->params;
    const int do_cfg = cfg > 1.0f;
    ld_run_stage_start(run);
    int a1111;
    LD_TRY(ld_prompt_syntax_name(ctx, p->prompt_syntax, &a1111));
    const char *texts[2] = {p->prompt, p->negative_prompt ? p->negative_prompt : ""};
    const char *names[2] = {"prompt", "negative prompt"};
    ld_prompt_warn_truncation(w->prior_tok, texts, do_cfg ? 2 : 1, names, a1111); /* once a run */
    ld_prompt_enc e;
    LD_TRY(ld_wu_encode_text(ctx, run, w, w->prior_tok, w->prior_text_dir, do_cfg, "prior.", &e));
    int64_t s_ids[2] = {1, LD_CLIP_CONTEXT}; /* the first chunk's ids and mask */
    ld_status st = ld_run_dump(ctx, run, "prior.input_ids", LD_I64, 2, s_ids, e.ids);
    if (st == LD_OK) st = ld_run_dump(ctx, run, "prior.attention_mask", LD_I64, 2, s_ids, e.mask);
    if (st == LD_OK) st = ld_run_progress(ctx, run, "text", 1, 1);
    ld_wuerstchen_prior *prior = NULL;
    ld_scheduler *s = NULL;
    ld_run_denoiser_loading(run);
    if (st == LD_OK) st = ld_wuerstchen_prior_load(ctx, w->prior_dir, ld_wu_variant(w), &prior);
    ld_run_denoiser_loaded(run);
    if (st == LD_OK) st = ld_ddpmw_stage_scheduler(ctx, run, w->prior_sched_cfg, w->prior_sched_where, steps, "prior.", &s);
    const int64_t C = w->prior_c_in, n = C * hC * wC;
    if (st == LD_OK) {
        const int64_t shape[4] = {1, C, hC, wC};
        st = ld_run_noise(ctx, run, "prior.latents0", 4, shape, x);
        prior_call pc = {prior, hC, wC, e.L, e.hidden};
        ld_denoise d = {.stage = "prior", .prefix = "prior.", .ndim = 4, .shape = {1, C, hC, wC}, .n_in = n,
                        .guided = do_cfg, .guidance = LD_GUIDE_LERP, .scale = cfg, .model = prior_model,
                        .model_half = prior_half, .user = &pc};
        if (st == LD_OK) st = ld_denoise_run(ctx, run, s, x, &d);
        /* denormalize: image_embeddings = x * latent_mean - latent_std (sic, as diffusers) */
        if (st == LD_OK) {
            const float mean = (float)w->latent_mean, std = (float)w->latent_std;
            for (int64_t i = 0; i < n; i++) x[i] = x[i] * mean - std;
            st = ld_run_dump(ctx, run, "image_embeddings", LD_F32, 4, shape, x);
        }
    }
    ld_wuerstchen_prior_free(prior); /* released after its stage */
    ld_scheduler_free(s);
    ld_prompt_enc_free(&e);
    return st;
}

/* ---- generate ---- */

/* The family's defaults (ld_pipeline_describe), the one place they are stated. */
static void wu_describe(const void *state, ld_pipeline_desc *d) {
    const ld_wuerstchen *w = state;
    d->width = d->height = LD_WU_DEFAULT_SIZE;
    d->steps = LD_WU_DEFAULT_DECODER_STEPS;
    d->cfg_scale = LD_WU_DEFAULT_DECODER_CFG;
    d->prior_steps = LD_DDPMW_STAGE_C_POINTS - 1; /* DEFAULT_STAGE_C_TIMESTEPS */
    d->prior_cfg_scale = LD_WU_DEFAULT_PRIOR_CFG;
    /* the smallest multiple of 8 whose first eight multiples all fit */
    for (int m = 8; m <= 1024 && !d->size_multiple; m += 8) {
        int all = 1;
        for (int k = 1; all && k <= 8; k++) all = side_fits(w, (int64_t)m * k);
        if (all) d->size_multiple = m;
    }
    d->sampler = "ddpm_wuerstchen";
    d->schedule = "default";
    d->samplers[d->nsamplers++] = "ddpm_wuerstchen";
}

static ld_status wu_generate(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_precision precision,
                             ld_image *out, ld_gen_info *info) {
    const ld_wuerstchen *w = state;
    ld_pipeline_desc d = {0};
    wu_describe(w, &d);
    int H = params->height ? params->height : d.height;
    int W = params->width ? params->width : d.width;
    LD_TRY(check_side(ctx, w, "height", H));
    LD_TRY(check_side(ctx, w, "width", W));
    int dec_steps = params->steps > 0 ? params->steps : d.steps;
    float dec_cfg = params->cfg_scale >= 0 ? params->cfg_scale : d.cfg_scale;
    float prior_cfg = params->prior_cfg_scale >= 0 ? params->prior_cfg_scale : d.prior_cfg_scale;
    int prior_steps = params->prior_steps; /* 0: DEFAULT_STAGE_C_TIMESTEPS (d.prior_steps of them) */
    int a1111;
    LD_TRY(ld_prompt_syntax_name(ctx, params->prompt_syntax, &a1111)); /* checked before any model runs */
    snprintf(info->prompt_syntax, sizeof info->prompt_syntax, "%s", a1111 ? "a1111" : "plain");
    info->width = W;
    info->height = H;
    info->steps = dec_steps;
    info->prior_steps = prior_steps > 0 ? prior_steps : d.prior_steps;
    info->cfg_scale = dec_cfg;
    info->prior_cfg_scale = prior_cfg;
    snprintf(info->sampler, sizeof info->sampler, "ddpm_wuerstchen");

    ld_run run;
    ld_status st = ld_run_begin(ctx, &run, params, precision);
    int64_t hC = prior_side(w, H), wC = prior_side(w, W);
    float *emb = NULL;
    if (st == LD_OK)
        st = ld_malloc(ctx, (void **)&emb, (size_t)(w->prior_c_in * hC * wC) * sizeof(float), "image embeddings");
    if (st == LD_OK) st = run_prior(ctx, w, &run, hC, wC, prior_steps, prior_cfg, emb);
    if (st == LD_OK) st = ld_wu_decode(ctx, w, &run, emb, hC, wC, dec_steps, dec_cfg, out);
    free(emb);
    info->seconds = ld_run_seconds(&run);
    st = ld_run_end(ctx, &run, st);
    if (st != LD_OK) ld_image_free(out);
    return st;
}

static const char *const wu_class_names[] = {"WuerstchenPriorPipeline", NULL};

const ld_pipeline_impl ld_pipeline_wuerstchen = {.family = "wuerstchen",
                                                 .class_names = wu_class_names,
                                                 .open = wu_open,
                                                 .free = wu_free,
                                                 .describe = wu_describe,
                                                 .generate = wu_generate};
