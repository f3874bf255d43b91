/* Stable Cascade text-to-image (spec wuerstchen.md §8.4-8.6): prompt ->
 * bigG CLIP (hidden_states[-1] + pooled text_embeds) -> Stage C prior (DDPM
 * Wuerstchen, CFG) -> image embeddings -> Stage B decoder -> Stage A (Paella
 * VQ) -> RGB. This file: open/free, the text encoder, the prior loop and the
 * run helpers (noise replay, dumps, progress); cascade_decode.c: stages B, A.
 *
 *     ld_pipeline_options o; ld_pipeline_options_init(&o);
 *     o.model_dir = "stable-cascade-prior"; o.decoder_dir = "stable-cascade";
 *     ld_pipeline_open(ctx, &o, &p);   ld_generate(ctx, p, &params, &img, &info);
 */
#include "pipeline/cascade.h"

#include "text/prompt_encode.h"
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- run helpers ---- */

double ld_cascade_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ld_status ld_cascade_noise(ld_ctx *ctx, ld_cascade_run *run, const char *name, int ndim, const int64_t *shape,
                           float *out) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (!run->replay) {
        ld_rng_randn(&run->rng, out, n);
    } else {
        const ld_tensor *t = ld_safetensors_find(run->replay, name);
        if (!t)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' not found",
                           ld_safetensors_path(run->replay), name);
        if (t->dtype != LD_F32 || !ld_shape_equal(t->ndim, t->shape, ndim, shape)) {
            char a[96], b[96];
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' is %s %s, expected F32 %s",
                           ld_safetensors_path(run->replay), name, ld_dtype_name(t->dtype),
                           ld_shape_str(a, sizeof a, t->ndim, t->shape), ld_shape_str(b, sizeof b, ndim, shape));
        }
        memcpy(out, t->data, (size_t)n * sizeof(float));
    }
    return ld_cascade_dump(ctx, run, name, LD_F32, ndim, shape, out);
}

ld_status ld_cascade_dump(ld_ctx *ctx, ld_cascade_run *run, const char *name, ld_dtype dtype, int ndim,
                          const int64_t *shape, const void *data) {
    if (!run->dump) return LD_OK;
    return ld_st_builder_add(ctx, run->dump, name, dtype, ndim, shape, data);
}

ld_status ld_cascade_progress(ld_ctx *ctx, ld_cascade_run *run, const char *stage, int step, int total) {
    const ld_gen_params *p = run->params;
    if (p->progress && p->progress(p->progress_user, stage, step, total, ld_cascade_now() - run->t0))
        return ld_fail(ctx, LD_ERR_CANCELLED, "generation cancelled during %s step %d of %d", stage, step, total);
    return LD_OK;
}

void ld_cascade_cfg(float *eps, const float *cond, const float *uncond, float w, int64_t n) {
    /* torch.lerp(uncond, cond, w): the two-sided form PyTorch uses for accuracy. */
    for (int64_t i = 0; i < n; i++) {
        float d = cond[i] - uncond[i];
        eps[i] = fabsf(w) < 0.5f ? uncond[i] + w * d : cond[i] - d * (1.0f - w);
    }
}

/* ---- text ---- */

typedef struct {
    float *hidden; /* [nb, L, D] hidden_states[-1] */
    float *pooled; /* [nb, P] text_embeds (of the first chunk) */
    int64_t L;     /* 77, or 77 per chunk with the A1111 syntax */
    int nb;        /* 1, or 2 with the negative */
} cascade_text;

/* with_negative: also encode the negative prompt ("" if none), as batch entry 1;
 * its prior.* dump entries only when the prior runs CFG (as diffusers has them). */
static ld_status encode_text(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, int with_negative,
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
    st = ld_cascade_dump(ctx, run, "prior.input_ids", LD_I64, 2, s_ids, e.ids); /* the first chunk's */
    if (st == LD_OK) st = ld_cascade_dump(ctx, run, "prior.attention_mask", LD_I64, 2, s_ids, e.mask);
    ld_prompt_enc_free(&e);
    LD_TRY(st);
    LD_TRY(ld_cascade_dump(ctx, run, "prior.prompt_embeds", LD_F32, 3, s_h, t->hidden));
    LD_TRY(ld_cascade_dump(ctx, run, "prior.prompt_embeds_pooled", LD_F32, 3, s_p, t->pooled));
    if (with_negative && dump_negative) {
        LD_TRY(ld_cascade_dump(ctx, run, "prior.negative_prompt_embeds", LD_F32, 3, s_h, t->hidden + t->L * D));
        LD_TRY(ld_cascade_dump(ctx, run, "prior.negative_prompt_embeds_pooled", LD_F32, 3, s_p, t->pooled + P));
    }
    return ld_cascade_progress(ctx, run, "text", 1, 1);
}

/* ---- Stage C ---- */

typedef struct {
    float *x, *xin, *eps, *r, *img;
} prior_bufs;

static ld_status prior_loop(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, const cascade_text *t, int64_t hC,
                            int64_t wC, int steps, float cfg, prior_bufs *b) {
    const ld_sc_config *pc = &c->prior_cfg;
    int use_cfg = cfg > 1.0f, nb = use_cfg ? 2 : 1;
    int64_t C = pc->in_channels, n = C * hC * wC, shape[4] = {1, C, hC, wC};
    ld_sc_unet *prior;
    ld_ddpmw s;
    LD_TRY(ld_ddpmw_init(ctx, &s, "prior scheduler", c->prior_sched_cfg));
    ld_status st = ld_cascade_load_prior(ctx, c, &prior);
    if (st != LD_OK) {
        ld_ddpmw_free(&s);
        return st;
    }
    st = ld_ddpmw_set_timesteps(ctx, &s, steps); /* the v3 prior always uses linspace(1, 0, N+1) */
    if (st == LD_OK) {
        int64_t ts[1] = {s.n_points};
        st = ld_cascade_dump(ctx, run, "prior.timesteps", LD_F32, 1, ts, s.timesteps);
    }
    if (st == LD_OK) st = ld_cascade_noise(ctx, run, "prior.latents0", 4, shape, b->x);
    /* zero image embeddings for both halves */
    memset(b->img, 0, (size_t)(nb * pc->clip_img_in) * sizeof(float));
    for (int i = 0; st == LD_OK && i < s.n_steps; i++) {
        float tt = s.timesteps[i];
        for (int k = 0; k < nb; k++) {
            memcpy(b->xin + k * n, b->x, (size_t)n * sizeof(float));
            b->r[k] = tt;
        }
        ld_sc_inputs in = {.B = nb,
                           .H = hC,
                           .W = wC,
                           .sample = b->xin,
                           .r = b->r,
                           .clip_text_pooled = t->pooled,
                           .pooled_len = 1,
                           .clip_text = t->hidden,
                           .text_len = t->L,
                           .clip_img = b->img};
        st = ld_sc_unet_forward(ctx, prior, &in, b->eps);
        if (st != LD_OK) break;
        if (use_cfg) ld_cascade_cfg(b->eps, b->eps, b->eps + n, cfg, n);
        char name[64];
        snprintf(name, sizeof name, "prior.step%d.noise", i);
        st = ld_cascade_noise(ctx, run, name, 4, shape, b->xin); /* xin is free until the next step */
        if (st != LD_OK) break;
        ld_ddpmw_step(&s, b->x, b->eps, tt, b->x, b->xin, n);
        if ((st = ld_pipeline_check_finite(ctx, b->x, n, "prior", i + 1, s.n_steps)) != LD_OK) break;
        snprintf(name, sizeof name, "prior.step%d.latents", i);
        st = ld_cascade_dump(ctx, run, name, LD_F32, 4, shape, b->x);
        if (st == LD_OK) st = ld_cascade_progress(ctx, run, "prior", i + 1, s.n_steps);
    }
    if (st == LD_OK) st = ld_cascade_dump(ctx, run, "image_embeddings", LD_F32, 4, shape, b->x);
    ld_sc_unet_free(prior);
    ld_ddpmw_free(&s);
    return st;
}

/* ---- generate ---- */

typedef struct {
    int width, height, prior_steps, steps;
    float prior_cfg, cfg;
    int64_t hC, wC;
} cascade_plan;

/* Resolves defaults and checks that the latent sizes can run: the decoder's
 * latent int(hC * 10.67) must split into patches and survive its levels. */
static ld_status plan(ld_ctx *ctx, const ld_cascade *c, const ld_gen_params *p, cascade_plan *pl) {
    pl->width = p->width ? p->width : LD_CASCADE_DEFAULT_SIZE;
    pl->height = p->height ? p->height : LD_CASCADE_DEFAULT_SIZE;
    pl->prior_steps = p->prior_steps ? p->prior_steps : LD_CASCADE_DEFAULT_PRIOR_STEPS;
    pl->steps = p->steps ? p->steps : LD_CASCADE_DEFAULT_DECODER_STEPS;
    pl->prior_cfg = p->prior_cfg_scale < 0 ? LD_CASCADE_DEFAULT_PRIOR_CFG : p->prior_cfg_scale;
    pl->cfg = p->cfg_scale < 0 ? LD_CASCADE_DEFAULT_DECODER_CFG : p->cfg_scale;
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

static ld_status run_generate(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, const cascade_plan *pl,
                              ld_image *out) {
    const ld_sc_config *pc = &c->prior_cfg;
    int prior_cfg = pl->prior_cfg > 1.0f, dec_cfg = pl->cfg > 1.0f;
    cascade_text t = {0};
    prior_bufs b = {0};
    int64_t n = pc->in_channels * pl->hC * pl->wC, P = pc->clip_pooled_in;
    ld_status st = LD_OK;
    run->t0 = ld_cascade_now();
    st = encode_text(ctx, c, run, prior_cfg || dec_cfg, prior_cfg, &t);
    if (st == LD_OK && !prior_cfg && t.nb == 2) t.nb = 1; /* the negative is only for the decoder */
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&b.x, (size_t)n * sizeof(float), "prior latents");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&b.xin, (size_t)(2 * n) * sizeof(float), "prior input");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&b.eps, (size_t)(2 * n) * sizeof(float), "prior output");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&b.r, 2 * sizeof(float), "prior input");
    if (st == LD_OK) st = ld_malloc(ctx, (void **)&b.img, (size_t)(2 * pc->clip_img_in) * sizeof(float), "clip_img");
    if (st == LD_OK) {
        run->t0 = ld_cascade_now();
        st = prior_loop(ctx, c, run, &t, pl->hC, pl->wC, pl->prior_steps, pl->prior_cfg, &b);
    }
    if (st == LD_OK)
        st = ld_cascade_decode(ctx, c, run, b.x, pl->hC, pl->wC, t.pooled, dec_cfg ? t.pooled + P : NULL, pl->steps,
                               pl->cfg, out);
    free(t.hidden);
    free(t.pooled);
    free(b.x);
    free(b.xin);
    free(b.eps);
    free(b.r);
    free(b.img);
    return st;
}

static ld_status cascade_generate(ld_ctx *ctx, void *state, const ld_gen_params *params, ld_image *out,
                                  ld_gen_info *info) {
    const ld_cascade *c = state;
    double t_start = ld_cascade_now();
    cascade_plan pl;
    int a1111;
    LD_TRY(plan(ctx, c, params, &pl));
    LD_TRY(ld_prompt_syntax_name(ctx, params->prompt_syntax, &a1111));
    ld_cascade_run run = {.params = params};
    ld_rng_init(&run.rng, params->seed);
    ld_st_builder dump;
    ld_st_builder_init(&dump);
    if (params->dump) run.dump = &dump;
    ld_status st = LD_OK;
    if (params->replay_noise) st = ld_safetensors_open(ctx, params->replay_noise, &run.replay);
    if (st == LD_OK) st = run_generate(ctx, c, &run, &pl, out);
    if (st == LD_OK && run.dump) st = ld_st_builder_write(ctx, &dump, params->dump);
    ld_st_builder_free(&dump);
    ld_safetensors_close(run.replay);
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
    info->seconds = ld_cascade_now() - t_start;
    return LD_OK;
}

static const char *const cascade_classes[] = {"StableCascadePriorPipeline", NULL};

static void cascade_defaults(const void *state, ld_gen_info *info) {
    (void)state;
    info->width = info->height = LD_CASCADE_DEFAULT_SIZE;
    info->steps = LD_CASCADE_DEFAULT_DECODER_STEPS;
    info->cfg_scale = LD_CASCADE_DEFAULT_DECODER_CFG;
    info->prior_steps = LD_CASCADE_DEFAULT_PRIOR_STEPS;
    info->prior_cfg_scale = LD_CASCADE_DEFAULT_PRIOR_CFG;
    snprintf(info->sampler, sizeof info->sampler, "ddpm_wuerstchen");
}

const ld_pipeline_impl ld_pipeline_stable_cascade = {
    .family = "stable-cascade",
    .class_names = cascade_classes,
    .open = ld_cascade_open,
    .free = ld_cascade_free,
    .generate = cascade_generate,
    .defaults = cascade_defaults,
};
