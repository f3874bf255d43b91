/* Wuerstchen v2 text-to-image: open the prior and decoder pipeline folders,
 * encode the prompt (CLIP bigG last_hidden_state with the padding mask), run
 * the prior with DDPMWuerstchen and CFG, denormalize, then hand over to
 * wuerstchen_decode.c. See wuerstchen.h. */
#include "pipeline/wuerstchen.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "text/prompt_encode.h"
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- run helpers ---- */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ld_wu_stage_start(ld_wu_run *run) { run->t0 = now_seconds(); }

ld_status ld_wu_noise(ld_ctx *ctx, ld_wu_run *run, const char *name, int ndim, const int64_t *shape, float *out) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    if (!run->replay) {
        ld_rng_randn(&run->rng, out, n);
        return LD_OK;
    }
    const ld_tensor *t = ld_safetensors_find(run->replay, name);
    char a[96], b[96];
    if (!t)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' not found",
                       ld_safetensors_path(run->replay), name);
    if (t->dtype != LD_F32 || !ld_shape_equal(t->ndim, t->shape, ndim, shape))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' is %s %s, expected F32 %s",
                       ld_safetensors_path(run->replay), name, ld_dtype_name(t->dtype),
                       ld_shape_str(a, sizeof a, t->ndim, t->shape), ld_shape_str(b, sizeof b, ndim, shape));
    ld_convert_to_f32(out, t->data, LD_F32, 0, n);
    return LD_OK;
}

ld_status ld_wu_dump(ld_ctx *ctx, ld_wu_run *run, const char *name, ld_dtype dtype, int ndim, const int64_t *shape,
                     const void *data) {
    if (!run->dump) return LD_OK;
    return ld_st_builder_add(ctx, run->dump, name, dtype, ndim, shape, data);
}

ld_status ld_wu_progress(ld_ctx *ctx, ld_wu_run *run, const char *stage, int step, int total) {
    const ld_gen_params *p = run->params;
    if (p->progress && p->progress(p->progress_user, stage, step, total, now_seconds() - run->t0))
        return ld_fail(ctx, LD_ERR_CANCELLED, "cancelled during %s step %d of %d", stage, step, total);
    return LD_OK;
}

void ld_wu_lerp(float *eps, const float *uncond, const float *cond, float w, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float u = uncond[i], c = cond[i];
        eps[i] = fabsf(w) < 0.5f ? u + w * (c - u) : c - (c - u) * (1.0f - w);
    }
}

ld_status ld_wu_encode_text(ld_ctx *ctx, ld_wu_run *run, const ld_clip_tokenizer *tok, const ld_clip_text *te,
                            const char *prompt, const char *negative, int with_negative, const char *dump_prefix,
                            float **hidden, int64_t *dim, int64_t *len) {
    const int B = with_negative ? 2 : 1;
    const char *texts[2] = {prompt, negative ? negative : ""}, *names[2] = {"prompt", "negative prompt"};
    int a1111;
    ld_prompt_enc e;
    *hidden = NULL;
    LD_TRY(ld_prompt_syntax_name(ctx, run->params->prompt_syntax, &a1111));
    if (strcmp(dump_prefix, "prior") == 0) ld_prompt_warn_truncation(tok, texts, B, names, a1111); /* once a run */
    /* last_hidden_state with the padding mask; A1111 syntax: chunks along the sequence */
    LD_TRY(ld_prompt_encode(ctx, tok, te, texts, B, names, a1111, 0, 1, 0, &e));
    const int64_t L = e.L, D = e.D;
    char name[96];
    int64_t s_ids[2] = {1, LD_CLIP_CONTEXT}, s_h[3] = {1, L, D};
    ld_status st = LD_OK;
    if (strcmp(dump_prefix, "prior") == 0) { /* the first chunk's ids and mask */
        st = ld_wu_dump(ctx, run, "prior.input_ids", LD_I64, 2, s_ids, e.ids);
        if (st == LD_OK) st = ld_wu_dump(ctx, run, "prior.attention_mask", LD_I64, 2, s_ids, e.mask);
    }
    snprintf(name, sizeof name, "%s.prompt_embeds", dump_prefix);
    if (st == LD_OK) st = ld_wu_dump(ctx, run, name, LD_F32, 3, s_h, e.hidden);
    snprintf(name, sizeof name, "%s.negative_prompt_embeds", dump_prefix);
    if (st == LD_OK && with_negative) st = ld_wu_dump(ctx, run, name, LD_F32, 3, s_h, e.hidden + L * D);
    if (st != LD_OK) {
        ld_prompt_enc_free(&e);
        return st;
    }
    *hidden = e.hidden;
    e.hidden = NULL;
    ld_prompt_enc_free(&e);
    *dim = D;
    *len = L;
    return LD_OK;
}

/* ---- open / free ---- */

static const char *variant_of(const ld_wuerstchen *w) { return w->has_variant ? w->variant : NULL; }

ld_status ld_wu_need_prior_text(ld_ctx *ctx, ld_wuerstchen *w) {
    return w->prior_text ? LD_OK : ld_clip_text_load(ctx, w->prior_text_dir, variant_of(w), &w->prior_text);
}
ld_status ld_wu_need_prior(ld_ctx *ctx, ld_wuerstchen *w) {
    return w->prior ? LD_OK : ld_wuerstchen_prior_load(ctx, w->prior_dir, variant_of(w), &w->prior);
}
ld_status ld_wu_need_decoder_text(ld_ctx *ctx, ld_wuerstchen *w) {
    return w->decoder_text ? LD_OK : ld_clip_text_load(ctx, w->decoder_text_dir, variant_of(w), &w->decoder_text);
}
ld_status ld_wu_need_decoder(ld_ctx *ctx, ld_wuerstchen *w) {
    return w->decoder ? LD_OK : ld_wuerstchen_diffnext_load(ctx, w->decoder_dir, variant_of(w), &w->decoder);
}
ld_status ld_wu_need_vqgan(ld_ctx *ctx, ld_wuerstchen *w) {
    return w->vqgan ? LD_OK : ld_paella_vq_load(ctx, w->vqgan_dir, variant_of(w), &w->vqgan);
}

static void wu_free(void *state) {
    ld_wuerstchen *w = state;
    if (!w) return;
    ld_wuerstchen_prior_free(w->prior);
    ld_wuerstchen_diffnext_free(w->decoder);
    ld_paella_vq_free(w->vqgan);
    ld_clip_text_free(w->prior_text);
    ld_clip_text_free(w->decoder_text);
    ld_clip_tokenizer_free(w->prior_tok);
    ld_clip_tokenizer_free(w->decoder_tok);
    free(w);
}

static ld_status load_scheduler(ld_ctx *ctx, const char *dir, const json_t *index, ld_ddpmw *s) {
    char comp[4200], where[4300];
    LD_TRY(ld_component_dir(ctx, dir, index, "scheduler", comp, sizeof comp));
    json_t *cfg;
    LD_TRY(ld_component_config(ctx, comp, &cfg));
    const char *cls = json_string_value(json_object_get(cfg, "_class_name"));
    snprintf(where, sizeof where, "%s/scheduler_config.json", comp);
    ld_status st = LD_OK;
    if (cls && strcmp(cls, "DDPMWuerstchenScheduler") != 0)
        st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: scheduler '%s' is not supported (only DDPMWuerstchenScheduler)",
                     where, cls);
    if (st == LD_OK) st = ld_ddpmw_init(ctx, s, where, cfg);
    json_decref(cfg);
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
    if (st == LD_OK) st = ld_wu_need_prior_text(ctx, w);
    if (st == LD_OK) st = ld_component_dir(ctx, pd, prior_index, "prior", w->prior_dir, dn);
    if (st == LD_OK) st = ld_wu_need_prior(ctx, w);
    if (st == LD_OK) st = load_scheduler(ctx, pd, prior_index, &w->prior_sched);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "tokenizer", c, sizeof c);
    if (st == LD_OK) st = ld_clip_tokenizer_load(ctx, c, &w->decoder_tok);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "text_encoder", w->decoder_text_dir, dn);
    if (st == LD_OK) st = ld_wu_need_decoder_text(ctx, w);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "decoder", w->decoder_dir, dn);
    if (st == LD_OK) st = ld_wu_need_decoder(ctx, w);
    if (st == LD_OK) st = ld_component_dir(ctx, dd, dec_index, "vqgan", w->vqgan_dir, dn);
    if (st == LD_OK) st = ld_wu_need_vqgan(ctx, w);
    if (st == LD_OK) st = load_scheduler(ctx, dd, dec_index, &w->decoder_sched);
    /* the pieces must fit together */
    if (st == LD_OK && ld_clip_text_get_config(w->prior_text)->hidden_size != w->prior->c_cond)
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: the text encoder's hidden_size %lld differs from the prior's c_cond %lld",
                     opt->model_dir, (long long)ld_clip_text_get_config(w->prior_text)->hidden_size,
                     (long long)w->prior->c_cond);
    if (st == LD_OK && ld_clip_text_get_config(w->decoder_text)->hidden_size != w->decoder->clip_embd)
        st = ld_fail(ctx, LD_ERR_MODEL,
                     "%s: the text encoder's hidden_size %lld differs from the decoder's clip_embd %lld",
                     opt->decoder_dir, (long long)ld_clip_text_get_config(w->decoder_text)->hidden_size,
                     (long long)w->decoder->clip_embd);
    if (st == LD_OK && w->prior->c_in != w->decoder->effnet_embd)
        st = ld_fail(ctx, LD_ERR_MODEL, "the prior makes %lld channels but the decoder's effnet_embd is %lld",
                     (long long)w->prior->c_in, (long long)w->decoder->effnet_embd);
    if (st == LD_OK && w->decoder->c_out != w->vqgan->latent_channels)
        st = ld_fail(ctx, LD_ERR_MODEL, "the decoder makes %lld channels but the VQGAN's latent_channels is %lld",
                     (long long)w->decoder->c_out, (long long)w->vqgan->latent_channels);
    if (st == LD_OK) {
        w->prior_c_in = w->prior->c_in;
        w->decoder_multiple = ld_wuerstchen_diffnext_size_multiple(w->decoder);
        w->vq_factor = ld_paella_vq_factor(w->vqgan);
    }
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

static ld_status run_prior(ld_ctx *ctx, ld_wuerstchen *w, ld_wu_run *run, int64_t hC, int64_t wC, int steps, float cfg,
                           float *x) {
    const ld_gen_params *p = run->params;
    int do_cfg = cfg > 1.0f;
    ld_wu_stage_start(run);
    float *text = NULL, *xin = NULL, *eps = NULL, *noise = NULL;
    int64_t D, T;
    LD_TRY(ld_wu_need_prior_text(ctx, w));
    LD_TRY(ld_wu_encode_text(ctx, run, w->prior_tok, w->prior_text, p->prompt, p->negative_prompt, do_cfg, "prior",
                             &text, &D, &T));
    ld_clip_text_free(w->prior_text); /* released after its stage (see wuerstchen.h) */
    w->prior_text = NULL;
    ld_status st = ld_wu_progress(ctx, run, "text", 1, 1);
    if (st == LD_OK) st = ld_wu_need_prior(ctx, w);
    ld_ddpmw s = w->prior_sched;
    if (st == LD_OK) {
        if (steps > 0) {
            st = ld_ddpmw_set_timesteps(ctx, &s, steps);
        } else {
            float d[LD_DDPMW_STAGE_C_POINTS];
            ld_ddpmw_default_stage_c(d);
            st = ld_ddpmw_set_custom(ctx, &s, d, LD_DDPMW_STAGE_C_POINTS);
        }
    }
    int64_t C = w->prior->c_in, n = C * hC * wC, shape[4] = {1, C, hC, wC}, s_t[1] = {s.n_points};
    int64_t B = do_cfg ? 2 : 1;
    if (st == LD_OK) st = ld_wu_dump(ctx, run, "prior.timesteps", LD_F32, 1, s_t, s.timesteps);
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&xin, (size_t)(B * n) * sizeof(float), "prior input");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&eps, (size_t)(B * n) * sizeof(float), "prior output");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&noise, (size_t)n * sizeof(float), "prior noise");
    if (st == LD_OK) st = ld_wu_noise(ctx, run, "prior.latents0", 4, shape, x);
    ld_wu_stage_start(run);
    for (int i = 0; st == LD_OK && i < s.n_steps; i++) {
        float t = s.timesteps[i], r[2] = {t, t};
        for (int64_t b = 0; b < B; b++) memcpy(xin + b * n, x, (size_t)n * sizeof(float));
        st = ld_wuerstchen_prior_forward(ctx, w->prior, eps, xin, B, hC, wC, r, text, T);
        if (st != LD_OK) break;
        if (do_cfg) ld_wu_lerp(eps, eps + n, eps, cfg, n); /* batch is [cond; uncond] */
        char name[64];
        snprintf(name, sizeof name, "prior.step%d.noise", i);
        if ((st = ld_wu_noise(ctx, run, name, 4, shape, noise)) != LD_OK) break;
        ld_ddpmw_step(&s, x, eps, t, x, noise, n);
        if ((st = ld_pipeline_check_finite(ctx, x, n, "prior", i + 1, s.n_steps)) != LD_OK) break;
        snprintf(name, sizeof name, "prior.step%d.latents", i);
        if ((st = ld_wu_dump(ctx, run, name, LD_F32, 4, shape, x)) != LD_OK) break;
        st = ld_wu_progress(ctx, run, "prior", i + 1, s.n_steps);
    }
    /* denormalize: image_embeddings = x * latent_mean - latent_std (sic, as diffusers) */
    if (st == LD_OK) {
        float mean = (float)w->latent_mean, std = (float)w->latent_std;
        for (int64_t i = 0; i < n; i++) x[i] = x[i] * mean - std;
        st = ld_wu_dump(ctx, run, "image_embeddings", LD_F32, 4, shape, x);
    }
    ld_wuerstchen_prior_free(w->prior);
    w->prior = NULL;
    free(text);
    free(xin);
    free(eps);
    free(noise);
    return st;
}

/* ---- generate ---- */

static ld_status wu_generate(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_image *out, ld_gen_info *info) {
    ld_wuerstchen *w = state;
    int H = params->height ? params->height : LD_WU_DEFAULT_SIZE;
    int W = params->width ? params->width : LD_WU_DEFAULT_SIZE;
    LD_TRY(check_side(ctx, w, "height", H));
    LD_TRY(check_side(ctx, w, "width", W));
    int dec_steps = params->steps > 0 ? params->steps : LD_WU_DEFAULT_DECODER_STEPS;
    float dec_cfg = params->cfg_scale >= 0 ? params->cfg_scale : LD_WU_DEFAULT_DECODER_CFG;
    float prior_cfg = params->prior_cfg_scale >= 0 ? params->prior_cfg_scale : LD_WU_DEFAULT_PRIOR_CFG;
    int prior_steps = params->prior_steps; /* 0: DEFAULT_STAGE_C_TIMESTEPS */
    int a1111;
    LD_TRY(ld_prompt_syntax_name(ctx, params->prompt_syntax, &a1111)); /* checked before any model runs */
    snprintf(info->prompt_syntax, sizeof info->prompt_syntax, "%s", a1111 ? "a1111" : "plain");
    info->width = W;
    info->height = H;
    info->steps = dec_steps;
    info->prior_steps = prior_steps > 0 ? prior_steps : LD_DDPMW_STAGE_C_POINTS - 1;
    info->cfg_scale = dec_cfg;
    info->prior_cfg_scale = prior_cfg;
    snprintf(info->sampler, sizeof info->sampler, "ddpm_wuerstchen");
    double t_start = now_seconds();

    ld_wu_run run;
    memset(&run, 0, sizeof run);
    run.params = params;
    ld_rng_init(&run.rng, params->seed);
    ld_st_builder dump;
    ld_st_builder_init(&dump);
    if (params->dump) run.dump = &dump;
    ld_status st = LD_OK;
    if (params->replay_noise) st = ld_safetensors_open(ctx, params->replay_noise, &run.replay);
    int64_t hC = prior_side(w, H), wC = prior_side(w, W);
    float *emb = NULL;
    if (st == LD_OK)
        st = ld_malloc(ctx, (void **)&emb, (size_t)(w->prior_c_in * hC * wC) * sizeof(float), "image embeddings");
    if (st == LD_OK) st = run_prior(ctx, w, &run, hC, wC, prior_steps, prior_cfg, emb);
    if (st == LD_OK) st = ld_wu_decode(ctx, w, &run, emb, hC, wC, dec_steps, dec_cfg, out);
    if (st == LD_OK && run.dump) st = ld_st_builder_write(ctx, &dump, params->dump);
    free(emb);
    ld_st_builder_free(&dump);
    ld_safetensors_close(run.replay);
    if (st != LD_OK) ld_image_free(out);
    info->seconds = now_seconds() - t_start;
    return st;
}

static const char *const wu_class_names[] = {"WuerstchenPriorPipeline", NULL};

static void wu_defaults(const void *state, ld_gen_info *info) {
    (void)state;
    info->width = info->height = LD_WU_DEFAULT_SIZE;
    info->steps = LD_WU_DEFAULT_DECODER_STEPS;
    info->cfg_scale = LD_WU_DEFAULT_DECODER_CFG;
    info->prior_steps = LD_DDPMW_STAGE_C_POINTS - 1;
    info->prior_cfg_scale = LD_WU_DEFAULT_PRIOR_CFG;
    snprintf(info->sampler, sizeof info->sampler, "ddpm_wuerstchen");
}

const ld_pipeline_impl ld_pipeline_wuerstchen = {"wuerstchen", wu_class_names, wu_open, wu_free, wu_generate, wu_defaults};
