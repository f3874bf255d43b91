/* SDXL-family pipeline: KOALA, KOALA-Lightning, SDXL (see koala.h for the
 * math, the defaults and the replay/dump keys). One generate call runs four
 * stages, each loading its models and releasing them before the next:
 * text (two CLIP encoders), unet (the denoising loop), vae (decode), and the
 * conversion to RGB8. */
#include "pipeline/koala.h"

#include "io/fileio.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/unet2d.h"
#include "sched/scheduler.h"
#include "text/clip_tokenizer.h"
#include "pipeline/koala_init.h"
#include "pipeline/koala_defaults.h"
#include "pipeline/denoise.h"
#include "pipeline/memory_check.h"
#include "pipeline/preview.h"
#include "pipeline/sdxl_text.h"
#include "models/lora_merge.h"
#include "text/prompt_loras.h"
#include "text/prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 4096

typedef struct {
    char dir[PATH_MAX_LEN];
    char tok1[PATH_MAX_LEN], tok2[PATH_MAX_LEN], te1[PATH_MAX_LEN], te2[PATH_MAX_LEN];
    char unet[PATH_MAX_LEN], vae[PATH_MAX_LEN];
    char variant[32];
    int has_variant;
    json_t *sched_cfg;     /* scheduler/scheduler_config.json */
    int force_zeros;       /* model_index force_zeros_for_empty_prompt */
    int lightning;         /* KOALA-Lightning defaults (10 steps, CFG 3.5) */
    const char *spacing_override; /* "trailing" when the model's files say Lightning (koala_defaults.h), else NULL */
    int sample_size;       /* unet config sample_size (latent pixels) */
    int unet_in;           /* unet config in_channels: latent channels, or 2C + 1 for inpainting U-Nets */
    int vae_scale;         /* 2^(len(vae block_out_channels) - 1) */
    double scaling_factor; /* vae config */
    int has_latents_stats; /* vae latents_mean / latents_std present */
    double latents_mean[16], latents_std[16];
    int vae_tiling;        /* -1 auto, 0 off, 1 on */
} koala;

static void koala_free(void *state) {
    koala *k = state;
    if (!k) return;
    json_decref(k->sched_cfg);
    free(k);
}

static ld_status read_vae_config(ld_ctx *ctx, koala *k) {
    json_t *cfg;
    LD_TRY(ld_component_config(ctx, k->vae, &cfg));
    char where[PATH_MAX_LEN + 16];
    snprintf(where, sizeof where, "%s/config.json", k->vae);
    int64_t blocks[16];
    int nb = 0;
    ld_status st = ld_json_int_list(ctx, where, cfg, "block_out_channels", blocks, 16, 0, &nb);
    if (st == LD_OK && nb < 1) st = ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels is missing", where);
    if (st == LD_OK) k->vae_scale = 1 << (nb - 1);
    if (st == LD_OK) st = ld_json_num(ctx, where, cfg, "scaling_factor", 0.18215, &k->scaling_factor);
    if (st == LD_OK && !(k->scaling_factor > 0))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: scaling_factor must be positive", where);
    int nm = 0, ns = 0;
    if (st == LD_OK) st = ld_json_num_list(ctx, where, cfg, "latents_mean", k->latents_mean, 16, &nm);
    if (st == LD_OK) st = ld_json_num_list(ctx, where, cfg, "latents_std", k->latents_std, 16, &ns);
    if (st == LD_OK && (nm || ns)) {
        if (nm != ns) st = ld_fail(ctx, LD_ERR_MODEL, "%s: latents_mean and latents_std differ in length", where);
        k->has_latents_stats = nm;
    }
    json_decref(cfg);
    return st;
}

static ld_status koala_open(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *index, void **state) {
    *state = NULL;
    koala *k = calloc(1, sizeof *k);
    if (!k) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    ld_status st = LD_OK;
    snprintf(k->dir, sizeof k->dir, "%s", opt->model_dir);
    if (opt->variant) {
        if (strlen(opt->variant) >= sizeof k->variant)
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "variant name '%s' is too long", opt->variant);
        snprintf(k->variant, sizeof k->variant, "%s", opt->variant);
        k->has_variant = 1;
    }
    if (opt->decoder_dir || opt->prior_weights || opt->decoder_weights || opt->vqgan_weights)
        ld_log_warn("%s: decoder / prior / vqgan options are for Wuerstchen and Stable Cascade; ignored", k->dir);
    k->vae_tiling = opt->vae_tiling;
    if (st == LD_OK) st = ld_json_bool(ctx, "model_index.json", index, "force_zeros_for_empty_prompt", 1, &k->force_zeros);
    int aesthetics = 0; /* the refiner-style conditioning of the img2img / inpaint pipelines */
    if (st == LD_OK) st = ld_json_bool(ctx, "model_index.json", index, "requires_aesthetics_score", 0, &aesthetics);
    if (st == LD_OK && aesthetics)
        st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s/model_index.json: requires_aesthetics_score (refiner-style time ids) "
                     "is not supported", opt->model_dir);
    struct {
        const char *name;
        char *out;
    } comps[] = {{"tokenizer", k->tok1}, {"tokenizer_2", k->tok2}, {"text_encoder", k->te1},
                 {"text_encoder_2", k->te2}, {"unet", k->unet},     {"vae", k->vae}};
    for (size_t i = 0; st == LD_OK && i < sizeof comps / sizeof comps[0]; i++)
        st = ld_component_dir(ctx, k->dir, index, comps[i].name, comps[i].out, PATH_MAX_LEN);
    char sched[PATH_MAX_LEN];
    if (st == LD_OK) st = ld_component_dir(ctx, k->dir, index, "scheduler", sched, sizeof sched);
    if (st == LD_OK) st = ld_component_config(ctx, sched, &k->sched_cfg);
    /* KOALA-Lightning or KOALA defaults, from the model's own files (koala_defaults.h) */
    if (st == LD_OK) {
        const char *spacing = NULL;
        char where[PATH_MAX_LEN + 32];
        snprintf(where, sizeof where, "%s/scheduler_config.json", sched);
        st = ld_json_str(ctx, where, k->sched_cfg, "timestep_spacing", "linspace", &spacing);
        ld_koala_defaults d;
        if (st == LD_OK) st = ld_koala_defaults_detect(ctx, k->dir, index, k->unet, spacing, &d);
        if (st == LD_OK) {
            k->lightning = d.lightning;
            k->spacing_override = d.spacing_override;
            ld_log_info("%s: %s: %s", k->dir,
                        d.lightning ? (d.spacing_override ? "KOALA-Lightning defaults (10 steps, CFG 3.5, Euler with "
                                                            "the timestep spacing overridden to trailing)"
                                                          : "KOALA-Lightning defaults (10 steps, CFG 3.5, the "
                                                            "scheduler's trailing spacing)")
                                    : "KOALA defaults (25 steps, CFG 7.5, the scheduler config as stored)",
                        d.why);
        }
        ld_scheduler *probe = NULL; /* reject an unusable scheduler config now, not after the text stage */
        if (st == LD_OK)
            st = ld_scheduler_create(ctx, "euler", LD_SCHEDULE_DEFAULT, k->sched_cfg, where, k->spacing_override,
                                     &probe);
        ld_scheduler_free(probe);
    }
    if (st == LD_OK) {
        json_t *ucfg;
        st = ld_component_config(ctx, k->unet, &ucfg);
        if (st == LD_OK) {
            int64_t ss;
            char where[PATH_MAX_LEN + 16];
            snprintf(where, sizeof where, "%s/config.json", k->unet);
            st = ld_json_int(ctx, where, ucfg, "sample_size", 128, &ss);
            if (st == LD_OK && (ss < 1 || ss > 1024))
                st = ld_fail(ctx, LD_ERR_MODEL, "%s: sample_size %lld is out of range", where, (long long)ss);
            k->sample_size = (int)ss;
            int64_t cin = 4;
            if (st == LD_OK) st = ld_json_int(ctx, where, ucfg, "in_channels", 4, &cin);
            if (st == LD_OK && (cin < 1 || cin > 33))
                st = ld_fail(ctx, LD_ERR_MODEL, "%s: in_channels %lld is out of range", where, (long long)cin);
            k->unet_in = (int)cin;
            json_decref(ucfg);
        }
    }
    if (st == LD_OK) st = read_vae_config(ctx, k);
    if (st != LD_OK) {
        koala_free(k);
        return st;
    }
    ld_log_info("%s: SDXL-family pipeline, %s defaults, default size %d", k->dir, k->lightning ? "Lightning" : "KOALA",
                k->sample_size * k->vae_scale);
    *state = k;
    return LD_OK;
}

/* ---- one generation ---- */

typedef struct {
    koala *k;
    const ld_gen_params *p;
    int H, W, h, w, C;   /* image size, latent size, latent channels */
    int steps;
    float cfg;
    int do_cfg;          /* cfg > 1 */
    const char *sampler;   /* short name (sched/scheduler.h) */
    ld_schedule schedule;
    int B;               /* U-Net batch: 2 with CFG */
    int64_t D, P;        /* prompt_embeds width, pooled width */
    int64_t L;           /* prompt_embeds tokens: 77 per chunk */
    int a1111_syntax;    /* A1111 prompt syntax (text/prompt_syntax.h), else plain diffusers */
    char *prompt, *neg;  /* the texts the encoders see (LoRA tags cut out); neg NULL when none was given */
    ld_lora_ref *loras;  /* the call's LoRA files, then those of the prompt tags */
    char **lora_paths;   /* owned paths of the tag LoRAs */
    int nloras, ntags;
    ld_vae_tiny *taesd;  /* previews / tiny decoding (gen params taesd_dir), loaded once per run */
    int begin;           /* first scheduler call (image-to-image starts part-way) */
    float *image_latents;  /* image-to-image / inpainting: the encoded init image */
    float *mask;           /* inpainting: [h * w], 1 = repaint */
    float *masked_latents; /* 9-channel inpainting U-Nets: the encoded masked image, concatenated to the input */
    ld_image init_img, mask_img; /* the init image and mask at the output size (blurred, resized) */
    float *noise0;         /* inpainting: latents0, to re-noise the known region */
    float *embeds;       /* [B, L, D]: [uncond; cond] with CFG */
    float *pooled;       /* [B, P] */
    float time_ids[2 * 6];
    float *latents;      /* [1, C, h, w] */
    float *image;        /* [1, 3, H, W] */
    ld_run *rc;          /* the run context: noise, dumps, progress, timing, precision */
} run;

/* Checks up front that the replay file holds every noise tensor this run
 * will ask for, so a mismatch fails before any model runs. */
static ld_status replay_check(ld_ctx *ctx, run *r, const ld_scheduler *s, int64_t n) {
    float *tmp = malloc(sizeof(float) * (size_t)n);
    if (!tmp) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    int64_t lshape[4] = {1, r->C, r->h, r->w};
    ld_status st = ld_run_replay_get(ctx, r->rc, "latents0", 4, lshape, tmp);
    const int concat = r->k->unet_in != r->C;
    if (st == LD_OK && r->p->init_image && !(concat && r->p->strength >= 1.0f))
        st = ld_run_replay_get(ctx, r->rc, "encode_noise", 4, lshape, tmp);
    if (st == LD_OK && concat) st = ld_run_replay_get(ctx, r->rc, "masked_encode_noise", 4, lshape, tmp);
    for (int i = 0; st == LD_OK && i < ld_scheduler_calls(s) - r->begin; i++) {
        if (!ld_scheduler_needs_noise(s, r->begin + i)) continue;
        char name[64];
        snprintf(name, sizeof name, "step%d.noise", i);
        st = ld_run_replay_get(ctx, r->rc, name, 4, lshape, tmp);
    }
    free(tmp);
    return st;
}

static ld_status text_report(ld_ctx *ctx, void *user, int encoder, double since) {
    (void)since;
    return ld_run_progress(ctx, ((run *)user)->rc, "text", encoder + 1, 2);
}

/* Text stage: fills r->embeds / r->pooled ([uncond; cond] with CFG). */
static ld_status stage_text(ld_ctx *ctx, run *r) {
    const char *neg = r->neg;
    int zero_uncond = r->do_cfg && !neg && r->k->force_zeros;
    int encode_neg = r->do_cfg && !zero_uncond;
    const char *texts[2];
    int n = 0;
    if (encode_neg) texts[n++] = neg ? neg : "";
    texts[n++] = r->prompt;
    int64_t *ids[2] = {NULL, NULL};
    if (r->rc->dumping) { /* the token ids are only kept for the dump */
        ids[0] = malloc(sizeof(int64_t) * LD_CLIP_CONTEXT * 2);
        ids[1] = malloc(sizeof(int64_t) * LD_CLIP_CONTEXT * 2);
        if (!ids[0] || !ids[1]) {
            free(ids[0]);
            free(ids[1]);
            return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        }
    }
    koala *k = r->k;
    ld_sdxl_text te = {.tok = {k->tok1, k->tok2}, .te = {k->te1, k->te2},
                       .variant = k->has_variant ? k->variant : NULL, .a1111 = r->a1111_syntax,
                       .report = text_report, .user = r, .loras = r->loras, .nloras = r->nloras};
    ld_sdxl_cond cond = {0};
    ld_status st = ld_sdxl_encode(ctx, &te, texts, n, &cond, ids);
    float *emb = cond.embeds, *pool = cond.pooled;
    r->L = cond.L;
    r->D = cond.D;
    r->P = cond.P;
    if (st == LD_OK) {
        size_t erow = (size_t)r->L * (size_t)r->D;
        r->embeds = calloc((size_t)r->B * erow, sizeof(float));
        r->pooled = calloc((size_t)r->B * (size_t)r->P, sizeof(float));
        if (!r->embeds || !r->pooled) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        if (st == LD_OK) {
            /* cond is the last text; with CFG it goes second, uncond (zeros or encoded) first */
            memcpy(r->embeds + (size_t)(r->B - 1) * erow, emb + (size_t)(n - 1) * erow, sizeof(float) * erow);
            memcpy(r->pooled + (size_t)(r->B - 1) * r->P, pool + (size_t)(n - 1) * r->P, sizeof(float) * r->P);
            if (encode_neg) {
                memcpy(r->embeds, emb, sizeof(float) * erow);
                memcpy(r->pooled, pool, sizeof(float) * r->P);
            }
        }
    }
    if (st == LD_OK && r->rc->dumping) {
        int64_t ishape[2] = {1, LD_CLIP_CONTEXT}, eshape[3] = {1, r->L, r->D}, pshape[2] = {1, r->P};
        size_t erow = (size_t)r->L * (size_t)r->D;
        ld_run *rc = r->rc;
        st = ld_run_dump(ctx, rc, "ids1", LD_I64, 2, ishape, ids[0] + (n - 1) * LD_CLIP_CONTEXT);
        if (st == LD_OK) st = ld_run_dump(ctx, rc, "ids2", LD_I64, 2, ishape, ids[1] + (n - 1) * LD_CLIP_CONTEXT);
        if (st == LD_OK)
            st = ld_run_dump(ctx, rc, "prompt_embeds", LD_F32, 3, eshape, r->embeds + (size_t)(r->B - 1) * erow);
        if (st == LD_OK)
            st = ld_run_dump(ctx, rc, "pooled_prompt_embeds", LD_F32, 2, pshape, r->pooled + (size_t)(r->B - 1) * r->P);
        if (st == LD_OK && r->do_cfg) st = ld_run_dump(ctx, rc, "negative_prompt_embeds", LD_F32, 3, eshape, r->embeds);
        if (st == LD_OK && r->do_cfg)
            st = ld_run_dump(ctx, rc, "negative_pooled_prompt_embeds", LD_F32, 2, pshape, r->pooled);
    }
    free(ids[0]);
    free(ids[1]);
    free(emb);
    free(pool);
    return st;
}

/* Hands the preview callback the estimate of the final image at call c
 * (ld_scheduler_predict_x0 of the guided model output). tmp holds n floats. */
static ld_status preview_step(ld_ctx *ctx, void *user, const ld_scheduler *s, int c, const float *out,
                              const float *x, float *tmp) {
    run *r = user;
    const int every = r->p->preview_every > 0 ? r->p->preview_every : 1, calls = ld_scheduler_calls(s) - r->begin;
    const int step = c - r->begin + 1;
    if (step % every && step != calls) return LD_OK;
    const int64_t n = (int64_t)r->C * r->h * r->w;
    ld_scheduler_predict_x0(s, c, out, x, tmp, n);
    ld_image img;
    LD_TRY(ld_preview_render(ctx, r->taesd, tmp, r->C, r->h, r->w, &img));
    const int stop = r->p->preview(r->p->preview_user, &img, step, calls);
    ld_image_free(&img);
    return stop ? ld_fail(ctx, LD_ERR_CANCELLED, "generation cancelled by the preview callback") : LD_OK;
}

typedef struct {
    run *r;
    ld_unet2d *u; /* the forward plans its activations in the model's arena */
} unet_call;

static ld_status unet_model(ld_ctx *ctx, void *user, const float *in, int B, float t, float *out) {
    const unet_call *uc = user;
    const run *r = uc->r;
    const float ts[2] = {t, t};
    const ld_unet2d_inputs ui = {.B = B, .H = r->h, .W = r->w, .sample = in, .timesteps = ts,
                                 .encoder_hidden_states = r->embeds, .L = (int)r->L, .text_embeds = r->pooled,
                                 .time_ids = r->time_ids};
    return ld_unet2d_forward(ctx, uc->u, &ui, out);
}

/* 9-channel inpainting U-Nets: torch.cat([latent_model_input, mask, masked_image_latents], dim=1). */
static void unet_fill_input(void *user, float *in) {
    const run *r = ((const unet_call *)user)->r;
    const int64_t plane = (int64_t)r->h * r->w, n = r->C * plane;
    memcpy(in + n, r->mask, sizeof(float) * (size_t)plane);
    memcpy(in + n + plane, r->masked_latents, sizeof(float) * (size_t)n);
}

/* 4-channel inpainting: the known region, re-noised to the next call's
 * level (the init latents after the last), blended back. */
static ld_status unet_blend(ld_ctx *ctx, void *user, const ld_scheduler *s, int c, int last, float *x,
                            float *scratch) {
    (void)ctx;
    const run *r = ((const unet_call *)user)->r;
    const int64_t plane = (int64_t)r->h * r->w, n = r->C * plane;
    if (!last) ld_scheduler_add_noise(s, c + 1, r->image_latents, r->noise0, scratch, n);
    const float *known = last ? r->image_latents : scratch;
    for (int64_t j = 0; j < n; j++) {
        const float m = r->mask[j % plane];
        x[j] = (1.0f - m) * known[j] + m * x[j];
    }
    return LD_OK;
}

static ld_status preview_hook(ld_ctx *ctx, void *user, const ld_scheduler *s, int c, const float *out, const float *x,
                              float *scratch) {
    return preview_step(ctx, ((unet_call *)user)->r, s, c, out, x, scratch);
}

/* Denoising stage: the U-Net on the denoising loop (denoise.h). */
static ld_status stage_unet(ld_ctx *ctx, run *r, ld_scheduler *s) {
    koala *k = r->k;
    ld_unet2d *u = NULL;
    ld_run_denoiser_loading(r->rc);
    ld_status st = ld_unet2d_load_lora(ctx, k->unet, k->has_variant ? k->variant : NULL, r->loras, r->nloras, &u);
    ld_run_denoiser_loaded(r->rc);
    if (st != LD_OK) return st;
    if (ld_unet2d_cross_attention_dim(u) != r->D)
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: cross_attention_dim is %d but the text encoders give %lld features",
                     k->unet, ld_unet2d_cross_attention_dim(u), (long long)r->D);
    else if (ld_unet2d_text_embeds_dim(u) != r->P || ld_unet2d_num_time_ids(u) != 6)
        st = ld_fail(ctx, LD_ERR_MODEL,
                     "%s: the U-Net expects %d-wide text_embeds and %d time ids, the pipeline gives %lld and 6",
                     k->unet, ld_unet2d_text_embeds_dim(u), ld_unet2d_num_time_ids(u), (long long)r->P);
    const int cin = r->masked_latents ? 2 * r->C + 1 : r->C;
    if (st == LD_OK && (ld_unet2d_in_channels(u) != cin || ld_unet2d_out_channels(u) != r->C))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: in/out channels %d/%d do not match the pipeline's %d/%d", k->unet,
                     ld_unet2d_in_channels(u), ld_unet2d_out_channels(u), cin, r->C);
    unet_call uc = {r, u};
    ld_denoise d = {.stage = "unet",
                    .prefix = "",
                    .ndim = 4,
                    .shape = {1, r->C, r->h, r->w},
                    .n_in = (int64_t)cin * r->h * r->w,
                    .guided = r->do_cfg,
                    .guidance = LD_GUIDE_CFG,
                    .scale = r->cfg,
                    .model = unet_model,
                    .fill_input = r->masked_latents ? unet_fill_input : NULL,
                    .after_step = r->mask && !r->masked_latents ? unet_blend : NULL,
                    .preview = r->p->preview ? preview_hook : NULL,
                    .user = &uc};
    if (st == LD_OK) st = ld_denoise_run(ctx, r->rc, s, r->latents, &d);
    ld_unet2d_free(u);
    return st;
}

/* Whether the VAE decodes tile by tile: the option, or automatic above 512x512. */
static int vae_tiled(const run *r) {
    return r->k->vae_tiling < 0 ? (int64_t)r->H * r->W > 512 * 512 : r->k->vae_tiling;
}

/* Decode stage: latents / scaling_factor (or the latents_mean/std form) through the VAE. */
static ld_status stage_vae(ld_ctx *ctx, run *r) {
    koala *k = r->k;
    int64_t n = (int64_t)r->C * r->h * r->w;
    float *z = malloc(sizeof(float) * (size_t)n);
    r->image = malloc(sizeof(float) * 3 * (size_t)r->H * (size_t)r->W);
    if (!z || !r->image) {
        free(z);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for a %dx%d image", r->W, r->H);
    }
    float sf = (float)k->scaling_factor;
    int64_t plane = (int64_t)r->h * r->w;
    for (int64_t i = 0; i < n; i++) {
        if (k->has_latents_stats) {
            int c = (int)(i / plane);
            z[i] = r->latents[i] * (float)k->latents_std[c] / sf + (float)k->latents_mean[c];
        } else {
            z[i] = r->latents[i] / sf;
        }
    }
    ld_run_stage_start(r->rc);
    if (r->p->tiny_decoder) { /* TAESD reads the U-Net's scaled latents (its scaling_factor is 1) */
        for (int64_t i = 0; i < n; i++) z[i] = r->latents[i] / r->taesd->scaling_factor;
        ld_status st = ld_vae_tiny_decode(ctx, r->taesd, r->image, z, 1, r->h, r->w);
        free(z);
        return st == LD_OK ? ld_run_progress(ctx, r->rc, "vae", 1, 1) : st;
    }
    ld_vae *v = NULL;
    ld_status st = ld_vae_load(ctx, k->vae, k->has_variant ? k->variant : NULL, &v);
    if (st == LD_OK && (ld_vae_latent_channels(v) != r->C || ld_vae_out_channels(v) != 3 ||
                        ld_vae_downscale(v) != k->vae_scale))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: %d latent channels, %d output channels, downscale %d: cannot decode", k->vae,
                     ld_vae_latent_channels(v), ld_vae_out_channels(v), ld_vae_downscale(v));
    const int tiling = vae_tiled(r);
    if (st == LD_OK) st = ld_vae_decode(ctx, v, z, 1, r->h, r->w, r->image, tiling);
    ld_vae_free(v);
    free(z);
    if (st == LD_OK) st = ld_run_progress(ctx, r->rc, "vae", 1, 1);
    return st;
}

/* The texts to encode and the LoRA files of the run: the call's, then one per
 * <lora:NAME:SCALE> tag of the prompt and the negative prompt (A1111 syntax),
 * found as NAME.safetensors in lora_dir. Every file is checked now, before
 * any model runs. */
static ld_status take_tags(ld_ctx *ctx, run *r, const char *text, char **clean, ld_prompt_lora **tags, int *n) {
    if (!r->a1111_syntax) {
        *tags = NULL;
        *n = 0;
        return (*clean = strdup(text)) ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    return ld_prompt_take_loras(ctx, text, clean, tags, n);
}

static ld_status resolve_loras(ld_ctx *ctx, run *r) {
    const ld_gen_params *p = r->p;
    if (p->nloras < 0 || p->nloras > 64 || (p->nloras && !p->loras))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%d LoRA files: at most 64", p->nloras);
    ld_prompt_lora *tags[2] = {NULL, NULL};
    int nt[2] = {0, 0};
    ld_status st = take_tags(ctx, r, p->prompt, &r->prompt, &tags[0], &nt[0]);
    if (st == LD_OK && p->negative_prompt) st = take_tags(ctx, r, p->negative_prompt, &r->neg, &tags[1], &nt[1]);
    const int total = p->nloras + nt[0] + nt[1];
    if (st == LD_OK && total) {
        r->loras = calloc((size_t)total, sizeof *r->loras);
        r->lora_paths = calloc((size_t)(nt[0] + nt[1] + 1), sizeof *r->lora_paths);
        if (!r->loras || !r->lora_paths) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == LD_OK && i < p->nloras; i++) r->loras[r->nloras++] = p->loras[i];
    for (int t = 0; st == LD_OK && t < 2; t++)
        for (int i = 0; st == LD_OK && i < nt[t]; i++) {
            if (!p->lora_dir) {
                st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt tag <lora:%s>: no LoRA folder is set (--lora-dir)",
                             tags[t][i].name);
                break;
            }
            size_t len = strlen(p->lora_dir) + strlen(tags[t][i].name) + 16;
            char *path = malloc(len);
            if (!path) {
                st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
                break;
            }
            snprintf(path, len, "%s/%s.safetensors", p->lora_dir, tags[t][i].name);
            r->lora_paths[r->ntags++] = path;
            if (!ld_file_exists(path))
                st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt tag <lora:%s>: %s not found", tags[t][i].name, path);
            r->loras[r->nloras++] = (ld_lora_ref){path, tags[t][i].scale};
        }
    for (int i = 0; st == LD_OK && i < r->nloras; i++) st = ld_lora_check_file(ctx, r->loras[i].path);
    ld_prompt_loras_free(tags[0], nt[0]);
    ld_prompt_loras_free(tags[1], nt[1]);
    return st;
}

/* The family's defaults and what it accepts (ld_pipeline_describe); the one
 * place they are stated (KOALA-Lightning: 10 steps, CFG 3.5; else 25, 7.5). */
static void koala_describe(const void *state, ld_pipeline_desc *d) {
    const koala *k = state;
    d->width = d->height = k->sample_size * k->vae_scale;
    d->steps = k->lightning ? 10 : 25;
    d->cfg_scale = k->lightning ? 3.5f : 7.5f;
    d->size_multiple = k->vae_scale;
    d->sampler = "euler";
    d->schedule = json_is_true(json_object_get(k->sched_cfg, "use_karras_sigmas")) ? "karras" : "default";
    for (int i = 0; ld_sampler_list[i] && d->nsamplers < (int)(sizeof d->samplers / sizeof d->samplers[0]); i++)
        d->samplers[d->nsamplers++] = ld_sampler_list[i]->name;
    d->karras = d->init_image = d->loras = d->preview = 1;
}

static ld_status resolve_params(ld_ctx *ctx, run *r, const ld_gen_params *p) {
    koala *k = r->k;
    ld_pipeline_desc desc = {0};
    koala_describe(k, &desc);
    const int def = desc.width;
    const ld_image *im = p->init_image, *mk = p->mask_image;
    /* without a size, the init image's rounded down to a multiple of the VAE's scale (get_default_height_width) */
    r->W = p->width ? p->width : im ? im->width - im->width % k->vae_scale : def;
    r->H = p->height ? p->height : im ? im->height - im->height % k->vae_scale : def;
    if (im) {
        if (!im->pixels || im->channels != 3 || im->width < 1 || im->height < 1)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "the init image (%dx%d, %d channels) is not an RGB8 image",
                           im->width, im->height, im->channels);
        if (mk && (!mk->pixels || mk->channels != 3 || mk->width < 1 || mk->height < 1))
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "the mask (%dx%d, %d channels) is not an RGB8 image",
                           mk->width, mk->height, mk->channels);
        if (!(p->strength > 0.0f && p->strength <= 1.0f))
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "strength %g is not in (0, 1]", p->strength);
        if (!(p->mask_blur >= 0.0f && p->mask_blur <= 1024.0f))
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "mask blur %g is not in [0, 1024]", p->mask_blur);
    } else if (mk) {
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "a mask needs an init image");
    }

    if (r->W % k->vae_scale || r->H % k->vae_scale || r->W < k->vae_scale || r->H < k->vae_scale)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "image size %dx%d: width and height must be multiples of %d",
                       r->W, r->H, k->vae_scale);
    r->w = r->W / k->vae_scale;
    r->h = r->H / k->vae_scale;
    r->steps = p->steps ? p->steps : desc.steps;
    r->cfg = p->cfg_scale >= 0 ? p->cfg_scale : desc.cfg_scale;
    r->do_cfg = r->cfg > 1.0f;
    r->B = r->do_cfg ? 2 : 1;
    LD_TRY(ld_prompt_syntax_name(ctx, p->prompt_syntax, &r->a1111_syntax));
    r->schedule = LD_SCHEDULE_DEFAULT;
    if (p->schedule && !strcmp(p->schedule, "karras")) r->schedule = LD_SCHEDULE_KARRAS;
    else if (p->schedule && strcmp(p->schedule, "default"))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "schedule '%s' is not default or karras", p->schedule);
    const ld_sampler_desc *d = ld_sampler_find(p->sampler ? p->sampler : desc.sampler, &r->schedule);
    if (!d) {
        char names[256] = "";
        for (int i = 0; ld_sampler_list[i]; i++) {
            strcat(names, i ? ", " : "");
            strcat(names, ld_sampler_list[i]->name);
        }
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "sampler '%s' is not available for SDXL-family models (%s)",
                       p->sampler, names);
    }
    r->sampler = d->name;
    return resolve_loras(ctx, r);
}

static ld_status dump_meta(ld_ctx *ctx, run *r) {
    char v[64];
    const char *neg = r->p->negative_prompt;
    ld_status st = ld_run_dump_meta(ctx, r->rc, "prompt", r->p->prompt);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "negative_prompt", neg ? neg : "");
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "negative_is_none", neg ? "false" : "true");
    snprintf(v, sizeof v, "%d", r->steps);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "steps", v);
    snprintf(v, sizeof v, "%g", (double)r->cfg);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "guidance_scale", v);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "sampler", r->sampler);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "schedule", ld_schedule_name(r->schedule));
    snprintf(v, sizeof v, "%d", r->H);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "height", v);
    snprintf(v, sizeof v, "%d", r->W);
    if (st == LD_OK) st = ld_run_dump_meta(ctx, r->rc, "width", v);
    return st;
}

static ld_status generate_run(ld_ctx *ctx, run *r, ld_image *out, ld_gen_info *info) {
    koala *k = r->k;
    const ld_gen_params *p = r->p;
    LD_TRY(resolve_params(ctx, r, p));
    r->C = 4;
    {
        /* latent channels from the VAE config without loading weights */
        json_t *cfg;
        LD_TRY(ld_component_config(ctx, k->vae, &cfg));
        int64_t lc;
        ld_status st = ld_json_int(ctx, k->vae, cfg, "latent_channels", 4, &lc);
        json_decref(cfg);
        LD_TRY(st);
        if (lc < 1 || lc > 16) return ld_fail(ctx, LD_ERR_MODEL, "%s: latent_channels %lld is out of range", k->vae, (long long)lc);
        r->C = (int)lc;
    }
    const int img2img = p->init_image != NULL, inpaint = img2img && p->mask_image;
    const int concat = k->unet_in == 2 * r->C + 1; /* inpainting U-Net: [latents, mask, masked image latents] */
    if (k->unet_in != r->C && !concat)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: in_channels %d is neither the VAE's %d latent channels nor %d (an "
                       "inpainting U-Net)", k->unet, k->unet_in, r->C, 2 * r->C + 1);
    if (concat && !inpaint)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: the U-Net takes %d input channels (an inpainting model): "
                       "give an init image and a mask", k->unet, k->unet_in);
    /* the 9-channel pipeline encodes the init image only to noise it (strength < 1) */
    const int encode_image = img2img && !(concat && p->strength >= 1.0f);
    if (img2img)
        LD_TRY(ld_koala_prepare_images(ctx, p->init_image, p->mask_image, p->mask_blur, r->W, r->H, &r->init_img,
                                       &r->mask_img));
    { /* refuse a size whose activations do not fit, before any work (memory_check.h) */
        double need;
        LD_TRY(ld_sdxl_activation_estimate(ctx, k->unet, k->vae, r->B, r->h, r->w, LD_CLIP_CONTEXT, vae_tiled(r),
                                           &need));
        LD_TRY(ld_memory_check(ctx, r->W, r->H, need, "the U-Net and the VAE"));
    }
    char where[PATH_MAX_LEN + 32];
    snprintf(where, sizeof where, "%s/scheduler/scheduler_config.json", k->dir);
    ld_scheduler *s = NULL;
    LD_TRY(ld_scheduler_create(ctx, r->sampler, r->schedule, k->sched_cfg, where, k->spacing_override, &s));
    r->schedule = ld_scheduler_schedule(s); /* the folder's config may ask for Karras */
    ld_status st = ld_scheduler_set_timesteps(ctx, s, r->steps);
    if (st == LD_OK && img2img) { /* get_timesteps: the last int(N * strength) steps run */
        const int N = ld_scheduler_steps(s), init_t = (int)((float)N * p->strength) < N ? (int)((float)N * p->strength) : N;
        r->begin = (N - init_t > 0 ? N - init_t : 0) * ld_scheduler_order(s);
        if (r->begin >= ld_scheduler_calls(s))
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "strength %g of %d steps leaves no step to run", p->strength, N);
        else ld_scheduler_set_begin(s, r->begin);
    }
    int64_t n = (int64_t)r->C * r->h * r->w, lshape[4] = {1, r->C, r->h, r->w};
    if (st == LD_OK && r->rc->replay) st = replay_check(ctx, r, s, n);
    if (st == LD_OK) st = dump_meta(ctx, r);
    /* random inputs first, in the reference's order: the VAE sample's noise
     * (image-to-image), the initial noise, the masked image's VAE sample
     * noise (9-channel inpainting) */
    float *enc_noise = NULL, *masked_noise = NULL;
    if (st == LD_OK) {
        r->latents = malloc(sizeof(float) * (size_t)n);
        if (img2img) {
            enc_noise = malloc(sizeof(float) * (size_t)n);
            r->image_latents = malloc(sizeof(float) * (size_t)n);
        }
        if (concat) {
            masked_noise = malloc(sizeof(float) * (size_t)n);
            r->masked_latents = malloc(sizeof(float) * (size_t)n);
        }
        if (!r->latents || (img2img && (!enc_noise || !r->image_latents)) ||
            (concat && (!masked_noise || !r->masked_latents)))
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    if (st == LD_OK && encode_image) st = ld_run_noise(ctx, r->rc, "encode_noise", 4, lshape, enc_noise);
    if (st == LD_OK) st = ld_run_noise(ctx, r->rc, "latents0", 4, lshape, r->latents);
    if (st == LD_OK && concat) st = ld_run_noise(ctx, r->rc, "masked_encode_noise", 4, lshape, masked_noise);
    if (st == LD_OK && img2img) { /* the init image: encoded, then noised to the first call's level */
        ld_vae *v = NULL;
        ld_run_stage_start(r->rc);
        st = ld_vae_load(ctx, k->vae, k->has_variant ? k->variant : NULL, &v);
        if (st == LD_OK && encode_image)
            st = ld_koala_encode_init(ctx, v, &r->init_img, enc_noise, k->scaling_factor, r->C, r->h, r->w,
                                      r->image_latents);
        if (st == LD_OK && concat)
            st = ld_koala_encode_masked(ctx, v, &r->init_img, &r->mask_img, masked_noise, k->scaling_factor, r->C,
                                        r->h, r->w, r->masked_latents);
        ld_vae_free(v);
        if (st == LD_OK && encode_image)
            st = ld_run_dump(ctx, r->rc, "image_latents", LD_F32, 4, lshape, r->image_latents);
        if (st == LD_OK && concat)
            st = ld_run_dump(ctx, r->rc, "masked_image_latents", LD_F32, 4, lshape, r->masked_latents);
        if (st == LD_OK) st = ld_run_progress(ctx, r->rc, "encode", 1, 1);
    }
    free(masked_noise);
    if (st == LD_OK && inpaint) {
        int64_t mshape[4] = {1, 1, r->h, r->w};
        r->mask = malloc(sizeof(float) * (size_t)r->h * (size_t)r->w);
        r->noise0 = malloc(sizeof(float) * (size_t)n);
        if (!r->mask || !r->noise0) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        if (st == LD_OK) {
            ld_koala_mask_latents(&r->mask_img, r->h, r->w, r->mask);
            memcpy(r->noise0, r->latents, sizeof(float) * (size_t)n);
            st = ld_run_dump(ctx, r->rc, "mask_latents", LD_F32, 4, mshape, r->mask);
        }
    }
    free(enc_noise);
    if (st == LD_OK && img2img && !(inpaint && p->strength >= 1.0f)) {
        ld_scheduler_add_noise(s, r->begin, r->image_latents, r->latents, r->latents, n);
    } else {
        for (int64_t i = 0; st == LD_OK && i < n; i++) r->latents[i] = r->latents[i] * ld_scheduler_init_noise_sigma(s);
    }
    if (st == LD_OK && p->taesd_dir) {
        st = ld_vae_tiny_load(ctx, p->taesd_dir, NULL, &r->taesd);
        if (st == LD_OK && (r->taesd->latent_channels != r->C || r->taesd->scale != k->vae_scale))
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: TAESD with %lld latent channels and scale %lld cannot decode this "
                         "model's latents (%d channels, scale %d)", p->taesd_dir, (long long)r->taesd->latent_channels,
                         (long long)r->taesd->scale, r->C, k->vae_scale);
    }
    if (st == LD_OK && p->tiny_decoder && !p->taesd_dir)
        st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "the tiny decoder needs a TAESD folder (taesd_dir, --taesd DIR)");
    if (st == LD_OK && p->tiny_decoder) /* TAESD decodes the whole image at once */
        st = ld_memory_check(ctx, r->W, r->H,
                             (double)ld_vae_tiny_decode_bytes(r->taesd, 1, r->h, r->w) +
                                 3.0 * (sizeof(float) + 1) * r->H * r->W, /* + the image, float and RGB8 */
                             "the TAESD decode");
    if (st == LD_OK) st = stage_text(ctx, r);
    for (int b = 0; b < r->B; b++) {
        float *ti = r->time_ids + 6 * b;
        ti[0] = (float)r->H, ti[1] = (float)r->W, ti[2] = 0, ti[3] = 0, ti[4] = (float)r->H, ti[5] = (float)r->W;
    }
    if (st == LD_OK) {
        const int runs = ld_scheduler_calls(s) - r->begin;
        int64_t tshape[2] = {1, 6}, sshape[1] = {runs};
        st = ld_run_dump(ctx, r->rc, "time_ids", LD_F32, 2, tshape, r->time_ids);
        float *tsv = malloc(sizeof(float) * (size_t)runs);
        if (!tsv) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        for (int i = 0; st == LD_OK && i < runs; i++) tsv[i] = ld_scheduler_timestep(s, r->begin + i);
        if (st == LD_OK) st = ld_run_dump(ctx, r->rc, "timesteps", LD_F32, 1, sshape, tsv);
        free(tsv);
    }
    if (st == LD_OK) st = stage_unet(ctx, r, s);
    if (st == LD_OK) st = ld_run_dump(ctx, r->rc, "final_latents", LD_F32, 4, lshape, r->latents);
    if (st == LD_OK && p->latents_out) memcpy(p->latents_out, r->latents, sizeof(float) * (size_t)n);
    free(r->embeds);
    free(r->pooled);
    r->embeds = r->pooled = NULL;
    const int decode = !p->latents_out;
    if (st == LD_OK && decode) st = stage_vae(ctx, r);
    if (st == LD_OK && decode)
        st = ld_run_check_finite(ctx, r->image, 3 * (int64_t)r->H * r->W, p->tiny_decoder ? "TAESD" : "vae", 0, 0);
    if (st == LD_OK && decode) {
        out->pixels = malloc((size_t)r->H * r->W * 3);
        if (!out->pixels) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    if (st == LD_OK && decode) {
        ld_image_chw_to_u8(r->image, r->H, r->W, out->pixels);
        out->width = r->W;
        out->height = r->H;
        out->channels = 3;
        int64_t ishape[4] = {1, 3, r->H, r->W}, ushape[4] = {1, r->H, r->W, 3};
        st = ld_run_dump(ctx, r->rc, "image", LD_F32, 4, ishape, r->image);
        if (st == LD_OK) st = ld_run_dump(ctx, r->rc, "image_u8", LD_U8, 4, ushape, out->pixels);
    }
    if (st == LD_OK) {
        info->width = r->W;
        info->height = r->H;
        info->steps = ld_scheduler_steps(s);
        info->cfg_scale = r->cfg;
        snprintf(info->sampler, sizeof info->sampler, "%s", r->sampler);
        snprintf(info->schedule, sizeof info->schedule, "%s", ld_schedule_name(r->schedule));
        snprintf(info->timestep_spacing, sizeof info->timestep_spacing, "%s", ld_scheduler_spacing(s));
        snprintf(info->prompt_syntax, sizeof info->prompt_syntax, "%s", r->a1111_syntax ? "a1111" : "plain");
        info->strength = p->init_image ? p->strength : 0.0f;
        info->mask_blur = p->init_image && p->mask_image ? p->mask_blur : 0.0f;
        snprintf(info->vae, sizeof info->vae, "%s", p->tiny_decoder ? "TAESD" : "");
        info->seed = p->seed;
    } else {
        ld_image_free(out);
    }
    ld_scheduler_free(s);
    return st;
}

static ld_status koala_generate(ld_ctx *ctx, void *state, const ld_gen_params *p, ld_precision precision,
                                ld_image *out, ld_gen_info *info) {
    run r;
    memset(&r, 0, sizeof r);
    r.k = state;
    r.p = p;
    ld_run rc;
    r.rc = &rc;
    ld_status st = ld_run_begin(ctx, &rc, p, precision);
    if (st == LD_OK) st = generate_run(ctx, &r, out, info);
    info->seconds = ld_run_seconds(&rc);
    st = ld_run_end(ctx, &rc, st);
    if (st != LD_OK) ld_image_free(out);
    ld_vae_tiny_free(r.taesd);
    free(r.image_latents);
    free(r.mask);
    free(r.masked_latents);
    ld_image_free(&r.init_img);
    ld_image_free(&r.mask_img);
    free(r.noise0);
    free(r.embeds);
    free(r.pooled);
    free(r.latents);
    free(r.image);
    free(r.prompt);
    free(r.neg);
    free(r.loras);
    for (int i = 0; i < r.ntags; i++) free(r.lora_paths[i]);
    free(r.lora_paths);
    return st;
}

static const char *const koala_classes[] = {"StableDiffusionXLPipeline", "StableDiffusionXLInpaintPipeline", NULL};

const ld_pipeline_impl ld_koala_pipeline = {
    .family = "sdxl",
    .class_names = koala_classes,
    .open = koala_open,
    .free = koala_free,
    .describe = koala_describe,
    .generate = koala_generate,
};
