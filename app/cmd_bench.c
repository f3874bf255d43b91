/* `leandiff bench -m DIR --component unet|vae|text_encoder|prior|decoder|vqgan
 *                 [-W 1024] [-H 1024] [--batch 1] [-t THREADS] [--runs 3]
 *                 [--warmup 1] [--precision f32|bf16] [--tiling 0|1]
 *                 [--subfolder NAME] [--variant V] [--probe-seconds 0.5]
 *                 [--ref-peak GFLOPS] [--products N] [--json]`
 *
 * Times one evaluation of one model component on deterministic random inputs
 * of the size an image of W x H needs, and reports:
 *   seconds      median over the timed runs (after the warm-up runs)
 *   gflop        FLOPs executed per evaluation, from the process-wide counter
 *                of base/flops.h (GEMMs, convolutions, attention; 2 per FMA)
 *   gflops       gflop / seconds
 *   peak_gflops  FMA throughput probe (ld_cpu_peak_gflops, same threads),
 *                median of probes taken before every timed run and after the last
 *   ratio        gflops / peak_gflops
 *   theory_gflops the limit the probe is checked against (base/cpu_theory.h:
 *                threads x 2 FMA pipes x lanes x 2 x the measured clock)
 *   amx_theory_gflops, amx_peak_gflops  bf16 on a CPU with AMX: the tile
 *                unit's limit (threads x 1024 flop x clock) and its probe
 *                (tensor/gemm.h), which bf16 ratios should be read against
 *   ref_ratio    gflops / --ref-peak (a figure measured outside, e.g. by
 *                ../shared/tools/fma_peak.c just before; see bench/peak.sh)
 *   peak_rss_mb  getrusage(RUSAGE_SELF).ru_maxrss
 *   cpu_ratio    the same ratio per CPU-second of the process (model GFLOP per
 *                CPU-second / probe GFLOP per CPU-second): on a machine shared
 *                with other processes the wall ratio moves with their load,
 *                the per-CPU-second one much less
 * and a per-op time breakdown (gemm, conv, attention, direct conv, other);
 * --products N adds the N shapes that took the most time (bench_products.h).
 * With --json the last line of stdout is one JSON object with these fields.
 *
 * DIR is a model folder holding DIR/<component>/config.json (or
 * DIR/<subfolder>/), or the component folder itself. Latent sizes follow the
 * pipelines: unet/vae H/8 (VAE downscale); Wuerstchen/Cascade prior
 * ceil(H/resolution_multiple), decoder int(prior * latent_dim_scale) (both
 * from DIR/model_index.json when present, else 42.67 and 10.67); vqgan
 * H/factor; text_encoder 77 tokens (W, H unused).
 */
#include "bench_products.h"
#include "cli_util.h"
#include "commands.h"

#include "base/cpu.h"
#include "base/cpu_theory.h"
#include "base/flops.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "io/weights_memory.h"
#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"
#include "models/paella_vq.h"
#include "models/stable_cascade_unet.h"
#include "models/unet2d.h"
#include "models/wuerstchen_diffnext.h"
#include "models/wuerstchen_prior.h"
#include "tensor/gemm.h"
#include "tensor/gemm_cache.h"
#include "text/clip_text.h"

#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_TOKENS 77 /* CLIP context length used by every pipeline */
#define BENCH_MAX_RUNS 100

typedef struct {
    const char *model_dir, *component, *subfolder, *variant;
    int width, height, batch, threads, runs, warmup, tiling, json, products;
    ld_precision precision;
    double probe_seconds, ref_peak;
} bench_opts;

/* One loaded component with its inputs and output buffer. */
typedef struct {
    char dir[4096], cls[64];
    ld_unet2d *unet;
    ld_vae *vae;
    ld_vae_tiny *taesd;
    ld_clip_text *te;
    ld_wuerstchen_prior *wprior;
    ld_wuerstchen_diffnext *wdec;
    ld_sc_unet *sc;
    ld_paella_vq *vq;
    int64_t B, h, w;   /* batch and latent (or token) size of the evaluation */
    int64_t eh, ew;    /* effnet size (decoders) */
    float *x, *r, *ctx_a, *ctx_b, *ctx_c, *out, *out2;
    int64_t *ids;
    char shape[96];    /* input description for the table */
} bench_model;

/* ---- deterministic inputs ---- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static float rnd(void) { /* xorshift64*, uniform in [-1, 1) */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (float)((g_rng * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.0f;
}

static ld_status rand_buf(ld_ctx *ctx, float **p, int64_t n, float scale, const char *what) {
    if (n <= 0) n = 1;
    LD_TRY(ld_malloc(ctx, (void **)p, (size_t)n * sizeof(float), what));
    for (int64_t i = 0; i < n; i++) (*p)[i] = scale * rnd();
    return LD_OK;
}

static ld_status out_buf(ld_ctx *ctx, float **p, int64_t n, const char *what) {
    if (n <= 0) n = 1;
    return ld_calloc(ctx, (void **)p, (size_t)n, sizeof(float), what);
}

/* ---- per-component setup ---- */

static ld_status setup_unet(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_unet2d_load(ctx, m->dir, o->variant, &m->unet));
    if (o->height % 8 || o->width % 8)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unet: -W/-H must be multiples of 8 (the VAE factor), got %dx%d", o->width,
                       o->height);
    m->h = o->height / 8, m->w = o->width / 8;
    int64_t B = m->B, cin = ld_unet2d_in_channels(m->unet), cout = ld_unet2d_out_channels(m->unet);
    int64_t D = ld_unet2d_cross_attention_dim(m->unet), P = ld_unet2d_text_embeds_dim(m->unet);
    int64_t nt = ld_unet2d_num_time_ids(m->unet);
    LD_TRY(rand_buf(ctx, &m->x, B * cin * m->h * m->w, 1.0f, "sample"));
    LD_TRY(rand_buf(ctx, &m->ctx_a, B * BENCH_TOKENS * D, 1.0f, "encoder_hidden_states"));
    LD_TRY(ld_malloc(ctx, (void **)&m->r, (size_t)B * sizeof(float), "timesteps"));
    for (int64_t b = 0; b < B; b++) m->r[b] = 500.0f;
    if (P > 0) {
        LD_TRY(rand_buf(ctx, &m->ctx_b, B * P, 1.0f, "text_embeds"));
        LD_TRY(ld_malloc(ctx, (void **)&m->ctx_c, (size_t)(B * (nt > 0 ? nt : 1)) * sizeof(float), "time_ids"));
        for (int64_t b = 0; b < B; b++) /* SDXL: original size, crop, target size */
            for (int64_t i = 0; i < nt; i++) m->ctx_c[b * nt + i] = (i % 6 == 2 || i % 6 == 3) ? 0.0f : (float)o->height;
    }
    LD_TRY(out_buf(ctx, &m->out, B * cout * m->h * m->w, "unet output"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld, %d tokens", (long long)cin, (long long)m->h,
             (long long)m->w, BENCH_TOKENS);
    return LD_OK;
}

/* AutoencoderTiny (TAESD) decode: the --vae-decoder tiny path. */
static ld_status setup_taesd(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_vae_tiny_load(ctx, m->dir, o->variant, &m->taesd));
    const int64_t f = m->taesd->scale, lc = m->taesd->latent_channels;
    if (o->height % f || o->width % f)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae: -W/-H must be multiples of %lld, got %dx%d", (long long)f,
                       o->width, o->height);
    m->h = o->height / f, m->w = o->width / f;
    LD_TRY(rand_buf(ctx, &m->x, m->B * lc * m->h * m->w, 1.0f, "latents"));
    LD_TRY(out_buf(ctx, &m->out, m->B * m->taesd->out_channels * o->height * o->width, "image"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld, TAESD", (long long)lc, (long long)m->h, (long long)m->w);
    return LD_OK;
}

static ld_status setup_vae(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_vae_load(ctx, m->dir, o->variant, &m->vae));
    int f = ld_vae_downscale(m->vae);
    if (o->height % f || o->width % f)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae: -W/-H must be multiples of %d, got %dx%d", f, o->width, o->height);
    m->h = o->height / f, m->w = o->width / f;
    int64_t lc = ld_vae_latent_channels(m->vae);
    LD_TRY(rand_buf(ctx, &m->x, m->B * lc * m->h * m->w, 1.0f, "latents"));
    LD_TRY(out_buf(ctx, &m->out, m->B * ld_vae_out_channels(m->vae) * o->height * o->width, "image"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld, %s", (long long)lc, (long long)m->h, (long long)m->w,
             o->tiling ? "tiled" : "untiled");
    return LD_OK;
}

static ld_status setup_text(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_clip_text_load(ctx, m->dir, o->variant, &m->te));
    const ld_clip_text_config *c = ld_clip_text_get_config(m->te);
    int64_t L = c->max_positions < BENCH_TOKENS ? c->max_positions : BENCH_TOKENS, B = m->B;
    m->h = L, m->w = 1;
    LD_TRY(ld_malloc(ctx, (void **)&m->ids, (size_t)(B * L) * sizeof(int64_t), "token ids"));
    for (int64_t i = 0; i < B * L; i++) m->ids[i] = (int64_t)((rnd() + 1.0f) * 0.5f * (float)(c->vocab_size - 2));
    for (int64_t b = 0; b < B; b++) m->ids[b * L + L - 1] = c->vocab_size - 1; /* the largest id: pooled there */
    LD_TRY(out_buf(ctx, &m->out, B * L * c->hidden_size, "last_hidden"));
    LD_TRY(out_buf(ctx, &m->out2, B * (c->projection_dim > 0 ? c->projection_dim : c->hidden_size), "pooled"));
    snprintf(m->shape, sizeof m->shape, "%lld tokens", (long long)L);
    return LD_OK;
}

/* Wuerstchen / Cascade latent sides from the pipeline's model_index.json. */
static void stage_sizes(const bench_opts *o, int64_t side_px, int64_t *prior_side, int64_t *dec_side) {
    double rm = 42.67, lds = 10.67;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model_index.json", o->model_dir) < (int)sizeof path) {
        json_error_t err;
        json_t *idx = json_load_file(path, 0, &err);
        if (idx) {
            json_t *v = json_object_get(idx, "resolution_multiple");
            if (json_is_number(v) && json_number_value(v) >= 1) rm = json_number_value(v);
            v = json_object_get(idx, "latent_dim_scale");
            if (json_is_number(v) && json_number_value(v) > 0) lds = json_number_value(v);
            json_decref(idx);
        }
    }
    *prior_side = (int64_t)ceil((double)side_px / rm);
    *dec_side = (int64_t)((double)*prior_side * lds);
}

static ld_status setup_wprior(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_wuerstchen_prior_load(ctx, m->dir, o->variant, &m->wprior));
    int64_t dummy, B = m->B, cin = m->wprior->c_in;
    stage_sizes(o, o->height, &m->h, &dummy);
    stage_sizes(o, o->width, &m->w, &dummy);
    LD_TRY(rand_buf(ctx, &m->x, B * cin * m->h * m->w, 1.0f, "sample"));
    LD_TRY(rand_buf(ctx, &m->r, B, 0.5f, "r"));
    for (int64_t b = 0; b < B; b++) m->r[b] += 0.5f;
    LD_TRY(rand_buf(ctx, &m->ctx_a, B * BENCH_TOKENS * m->wprior->c_cond, 1.0f, "text"));
    LD_TRY(out_buf(ctx, &m->out, B * cin * m->h * m->w, "prior output"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld, %d tokens", (long long)cin, (long long)m->h,
             (long long)m->w, BENCH_TOKENS);
    return LD_OK;
}

static ld_status setup_wdecoder(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_wuerstchen_diffnext_load(ctx, m->dir, o->variant, &m->wdec));
    const ld_wuerstchen_diffnext *d = m->wdec;
    int64_t B = m->B;
    stage_sizes(o, o->height, &m->eh, &m->h);
    stage_sizes(o, o->width, &m->ew, &m->w);
    LD_TRY(ld_wuerstchen_diffnext_check_size(ctx, d, m->h, m->w));
    LD_TRY(rand_buf(ctx, &m->x, B * d->c_in * m->h * m->w, 1.0f, "sample"));
    LD_TRY(rand_buf(ctx, &m->r, B, 0.5f, "r"));
    for (int64_t b = 0; b < B; b++) m->r[b] += 0.5f;
    LD_TRY(rand_buf(ctx, &m->ctx_a, B * d->effnet_embd * m->eh * m->ew, 1.0f, "effnet"));
    LD_TRY(rand_buf(ctx, &m->ctx_b, B * BENCH_TOKENS * d->clip_embd, 1.0f, "clip"));
    LD_TRY(out_buf(ctx, &m->out, B * d->c_out * m->h * m->w, "decoder output"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld, effnet %lldx%lld", (long long)d->c_in,
             (long long)m->h, (long long)m->w, (long long)m->eh, (long long)m->ew);
    return LD_OK;
}

static ld_status setup_sc(ld_ctx *ctx, const bench_opts *o, bench_model *m, int is_prior) {
    LD_TRY(ld_sc_unet_load(ctx, m->dir, o->variant, NULL, &m->sc));
    const ld_sc_config *c = &m->sc->cfg;
    int64_t B = m->B;
    if (is_prior) {
        stage_sizes(o, o->height, &m->h, &m->eh);
        stage_sizes(o, o->width, &m->w, &m->ew);
        m->eh = m->ew = 0;
        if (!c->clip_text_in || !c->clip_img_in)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: not a Stable Cascade prior (clip_text_in_channels or "
                           "clip_image_in_channels missing)", m->dir);
        LD_TRY(rand_buf(ctx, &m->ctx_b, B * BENCH_TOKENS * c->clip_text_in, 1.0f, "clip_text"));
        LD_TRY(rand_buf(ctx, &m->ctx_c, B * c->clip_img_in, 1.0f, "clip_img"));
    } else {
        stage_sizes(o, o->height, &m->eh, &m->h);
        stage_sizes(o, o->width, &m->ew, &m->w);
        if (!c->effnet_in)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: not a Stable Cascade decoder (effnet_in_channels missing)", m->dir);
        LD_TRY(rand_buf(ctx, &m->ctx_c, B * c->effnet_in * m->eh * m->ew, 1.0f, "effnet"));
    }
    LD_TRY(rand_buf(ctx, &m->x, B * c->in_channels * m->h * m->w, 1.0f, "sample"));
    LD_TRY(rand_buf(ctx, &m->r, B, 0.5f, "r"));
    for (int64_t b = 0; b < B; b++) m->r[b] += 0.5f;
    LD_TRY(rand_buf(ctx, &m->ctx_a, B * c->clip_pooled_in, 1.0f, "clip_text_pooled"));
    LD_TRY(out_buf(ctx, &m->out, B * c->out_channels * m->h * m->w, "output"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld%s", (long long)c->in_channels, (long long)m->h,
             (long long)m->w, is_prior ? ", 77 tokens" : ", effnet");
    return LD_OK;
}

static ld_status setup_vq(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    LD_TRY(ld_paella_vq_load(ctx, m->dir, o->variant, &m->vq));
    int64_t f = ld_paella_vq_factor(m->vq);
    if (o->height % f || o->width % f)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vqgan: -W/-H must be multiples of %lld, got %dx%d", (long long)f, o->width,
                       o->height);
    m->h = o->height / f, m->w = o->width / f;
    int64_t lc = m->vq->latent_channels;
    LD_TRY(rand_buf(ctx, &m->x, m->B * lc * m->h * m->w, 1.0f, "latent"));
    LD_TRY(out_buf(ctx, &m->out, m->B * m->vq->out_channels * o->height * o->width, "image"));
    snprintf(m->shape, sizeof m->shape, "latent %lldx%lldx%lld", (long long)lc, (long long)m->h, (long long)m->w);
    return LD_OK;
}

/* Finds the component folder and loads the model the component and class call for. */
static ld_status bench_setup(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    const char *sub = o->subfolder ? o->subfolder : o->component;
    char cfgpath[4096];
    LD_TRY(ld_path_join(ctx, m->dir, sizeof m->dir, o->model_dir, sub));
    LD_TRY(ld_path_join(ctx, cfgpath, sizeof cfgpath, m->dir, "config.json"));
    if (!ld_file_exists(cfgpath)) { /* DIR may be the component folder itself */
        LD_TRY(ld_path_join(ctx, cfgpath, sizeof cfgpath, o->model_dir, "config.json"));
        if (!ld_file_exists(cfgpath))
            return ld_fail(ctx, LD_ERR_IO, "%s: no %s/config.json and no config.json", o->model_dir, sub);
        snprintf(m->dir, sizeof m->dir, "%s", o->model_dir);
    }
    json_t *cfg = NULL;
    LD_TRY(ld_json_load_file(ctx, cfgpath, &cfg));
    /* diffusers configs name the class in _class_name, transformers ones in architectures[0] */
    const json_t *arch = json_array_get(json_object_get(cfg, "architectures"), 0);
    const char *cls = json_string_value(json_object_get(cfg, "_class_name"));
    if (!cls) cls = json_string_value(arch);
    if (cls) snprintf(m->cls, sizeof m->cls, "%s", cls);
    json_decref(cfg);
    if (!cls) return ld_fail(ctx, LD_ERR_MODEL, "%s: no _class_name (or architectures) field", cfgpath);
    m->B = o->batch;
    const char *c = o->component;
    /* as generation loads them (pipeline/run.h): a denoiser's file read into
     * huge pages on the exact path, everything else mapped */
    ld_weights_prefer_read(o->precision == LD_PRECISION_F32 &&
                           (!strcmp(c, "unet") || !strcmp(c, "prior") || !strcmp(c, "decoder")));
    if (!strcmp(c, "unet") && !strcmp(m->cls, "UNet2DConditionModel")) return setup_unet(ctx, o, m);
    if (!strcmp(c, "vae") && !strcmp(m->cls, "AutoencoderKL")) return setup_vae(ctx, o, m);
    if (!strcmp(c, "vae") && !strcmp(m->cls, "AutoencoderTiny")) return setup_taesd(ctx, o, m);
    if (!strcmp(c, "text_encoder") && !strncmp(m->cls, "CLIPTextModel", 13)) return setup_text(ctx, o, m);
    if (!strcmp(c, "prior") && !strcmp(m->cls, "WuerstchenPrior")) return setup_wprior(ctx, o, m);
    if (!strcmp(c, "prior") && !strcmp(m->cls, "StableCascadeUNet")) return setup_sc(ctx, o, m, 1);
    if (!strcmp(c, "decoder") && !strcmp(m->cls, "WuerstchenDiffNeXt")) return setup_wdecoder(ctx, o, m);
    if (!strcmp(c, "decoder") && !strcmp(m->cls, "StableCascadeUNet")) return setup_sc(ctx, o, m, 0);
    if (!strcmp(c, "vqgan") && !strcmp(m->cls, "PaellaVQModel")) return setup_vq(ctx, o, m);
    return ld_fail(ctx, LD_ERR_MODEL, "%s: _class_name '%s' cannot be benchmarked as component '%s'", cfgpath, m->cls,
                   c);
}

/* One evaluation. */
static ld_status bench_eval(ld_ctx *ctx, const bench_opts *o, bench_model *m) {
    if (m->unet) {
        const ld_unet2d_inputs in = {.B = (int)m->B, .H = (int)m->h, .W = (int)m->w, .sample = m->x, .timesteps = m->r,
                                     .encoder_hidden_states = m->ctx_a, .L = BENCH_TOKENS, .text_embeds = m->ctx_b,
                                     .time_ids = m->ctx_c};
        return ld_unet2d_forward(ctx, m->unet, &in, m->out);
    }
    if (m->vae) return ld_vae_decode(ctx, m->vae, m->x, (int)m->B, (int)m->h, (int)m->w, m->out, o->tiling);
    if (m->taesd) return ld_vae_tiny_decode(ctx, m->taesd, m->out, m->x, m->B, m->h, m->w);
    if (m->te) {
        ld_clip_text_out out = {0};
        out.last_hidden = m->out;
        if (ld_clip_text_get_config(m->te)->projection_dim > 0) out.text_embeds = m->out2;
        else out.pooled = m->out2;
        return ld_clip_text_forward(ctx, m->te, m->ids, NULL, m->B, m->h, &out);
    }
    if (m->wprior) {
        ld_wuerstchen_prior_inputs in = {.B = m->B, .H = m->h, .W = m->w, .sample = m->x, .r = m->r,
                                         .clip_text = m->ctx_a, .text_len = BENCH_TOKENS};
        return ld_wuerstchen_prior_forward(ctx, m->wprior, &in, m->out);
    }
    if (m->wdec) {
        ld_wuerstchen_diffnext_inputs in = {.B = m->B, .H = m->h, .W = m->w, .sample = m->x, .r = m->r,
                                            .effnet = m->ctx_a, .eh = m->eh, .ew = m->ew,
                                            .clip_text = m->ctx_b, .text_len = BENCH_TOKENS};
        return ld_wuerstchen_diffnext_forward(ctx, m->wdec, &in, m->out);
    }
    if (m->sc) {
        ld_sc_inputs in = {.B = m->B, .H = m->h, .W = m->w, .sample = m->x, .r = m->r, .clip_text_pooled = m->ctx_a,
                           .pooled_len = 1};
        if (m->eh > 0) in.effnet = m->ctx_c, in.eh = m->eh, in.ew = m->ew;
        else in.clip_text = m->ctx_b, in.text_len = BENCH_TOKENS, in.clip_img = m->ctx_c;
        return ld_sc_unet_forward(ctx, m->sc, &in, m->out);
    }
    if (m->vq) return ld_paella_vq_decode(ctx, m->vq, m->out, m->x, m->B, m->h, m->w);
    return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "bench: no model loaded");
}

static void bench_free(bench_model *m) {
    ld_unet2d_free(m->unet);
    ld_vae_free(m->vae);
    ld_vae_tiny_free(m->taesd);
    ld_clip_text_free(m->te);
    ld_wuerstchen_prior_free(m->wprior);
    ld_wuerstchen_diffnext_free(m->wdec);
    ld_sc_unet_free(m->sc);
    ld_paella_vq_free(m->vq);
    free(m->x), free(m->r), free(m->ctx_a), free(m->ctx_b), free(m->ctx_c), free(m->out), free(m->out2);
    free(m->ids);
}

/* ---- measurement ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[BENCH_MAX_RUNS + 1];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double cpu_s(void) { /* CPU time of all threads of the process */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The FMA probe; *per_cpu gets its GFLOP per CPU-second. */
static double probe(const bench_opts *o, double *per_cpu) {
    double w0 = now_s(), c0 = cpu_s();
    double g = ld_cpu_peak_gflops(o->threads, o->probe_seconds);
    double w = now_s() - w0, c = cpu_s() - c0;
    *per_cpu = c > 0 ? g * w / c : 0;
    return g;
}

static double load1(void) {
    double l[1] = {-1};
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

typedef struct {
    double seconds, cpu_seconds, gflop, op_s[LD_FLOPS_NCAT], op_gflop[LD_FLOPS_NCAT];
} run_result;

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff bench -m DIR --component unet|vae|text_encoder|prior|decoder|vqgan [-W 1024] [-H 1024]\n"
            "                      [--batch 1] [-t THREADS] [--runs 3] [--warmup 1] [--precision f32|bf16]\n"
            "                      [--tiling 0|1] [--subfolder NAME] [--variant V] [--probe-seconds 0.5]\n"
            "                      [--ref-peak GFLOPS] [--products N] [--json]\n"
            "Times one evaluation of a model component (median of --runs after --warmup), counts its FLOPs, and\n"
            "compares with an FMA peak probe run by the same command and with the theoretical limit (measured clock).\n"
            "--ref-peak also reports the ratio to a peak measured elsewhere. --tiling applies to the VAE (default 1).\n"
            "--products N lists the N shapes (products, convolutions, attention) that took the most time.\n"
            "With --json the last line is one JSON object.\n");
}

static int parse_opts(int argc, char **argv, bench_opts *o) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"component", required_argument, 0, 'c'},
        {"width", required_argument, 0, 'W'},     {"height", required_argument, 0, 'H'},
        {"batch", required_argument, 0, 'b'},     {"threads", required_argument, 0, 't'},
        {"runs", required_argument, 0, 'r'},      {"warmup", required_argument, 0, 'w'},
        {"precision", required_argument, 0, 'p'}, {"tiling", required_argument, 0, 'T'},
        {"subfolder", required_argument, 0, 's'}, {"variant", required_argument, 0, 'v'},
        {"probe-seconds", required_argument, 0, 'P'}, {"json", no_argument, 0, 'j'},
        {"ref-peak", required_argument, 0, 'R'},  {"products", required_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:W:H:b:t:r:w:p:T:s:v:P:R:X:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_dir = optarg; break;
        case 'c': o->component = optarg; break;
        case 'W': if (!cli_parse_int("-W", optarg, 8, 16384, &v)) return 2; o->width = (int)v; break;
        case 'H': if (!cli_parse_int("-H", optarg, 8, 16384, &v)) return 2; o->height = (int)v; break;
        case 'b': if (!cli_parse_int("--batch", optarg, 1, 64, &v)) return 2; o->batch = (int)v; break;
        case 't': if (!cli_parse_int("-t", optarg, 1, 1024, &v)) return 2; o->threads = (int)v; break;
        case 'r': if (!cli_parse_int("--runs", optarg, 1, BENCH_MAX_RUNS, &v)) return 2; o->runs = (int)v; break;
        case 'w': if (!cli_parse_int("--warmup", optarg, 0, 100, &v)) return 2; o->warmup = (int)v; break;
        case 'T': if (!cli_parse_int("--tiling", optarg, 0, 1, &v)) return 2; o->tiling = (int)v; break;
        case 'X': if (!cli_parse_int("--products", optarg, 0, 1000, &v)) return 2; o->products = (int)v; break;
        case 'P':
            if (!cli_parse_float("--probe-seconds", optarg, 0.01, 60, &o->probe_seconds)) return 2;
            break;
        case 'R':
            if (!cli_parse_float("--ref-peak", optarg, 0.001, 1e9, &o->ref_peak)) return 2;
            break;
        case 'p': {
            int k = cli_parse_choice("--precision", optarg, (const char *const[]){"f32", "bf16", NULL});
            if (k < 0) return 2;
            o->precision = k == 1 ? LD_PRECISION_BF16 : LD_PRECISION_F32;
            break;
        }
        case 's': o->subfolder = optarg; break;
        case 'v': o->variant = optarg; break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o->model_dir || !o->component || optind != argc) {
        usage(stderr);
        return 2;
    }
    static const char *const comps[] = {"unet", "vae", "text_encoder", "prior", "decoder", "vqgan"};
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++)
        if (!strcmp(o->component, comps[i])) return -1;
    fprintf(stderr, "leandiff: --component must be unet, vae, text_encoder, prior, decoder or vqgan, got '%s'\n",
            o->component);
    return 2;
}

static void print_results(const bench_opts *o, const bench_model *m, const run_result *rr, int nruns, double secs,
                          double peak, double peak_cpu, double load0, double load_end) {
    const run_result *med = &rr[0]; /* the run closest to the median, for the breakdown */
    for (int i = 1; i < nruns; i++)
        if (fabs(rr[i].seconds - secs) < fabs(med->seconds - secs)) med = &rr[i];
    double gflop = med->gflop, gflops = secs > 0 ? gflop / secs : 0, ratio = peak > 0 ? gflops / peak : 0;
    double per_cpu = med->cpu_seconds > 0 ? gflop / med->cpu_seconds : 0;
    double cpu_ratio = peak_cpu > 0 ? per_cpu / peak_cpu : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    const char *prec = o->precision == LD_PRECISION_BF16 ? "bf16" : "f32";
    const char *cpu = ld_cpu_info_get()->model;

    printf("component    %s (%s) in %s\n", o->component, m->cls, m->dir);
    printf("input        %dx%d px, batch %d, %s\n", o->width, o->height, o->batch, m->shape);
    const ld_cpu_info *ci = ld_cpu_info_get();
    printf("cpu          %s (%s), %d threads, %s path%s, gemm kernel %s, precision %s\n", cpu, ci->id, o->threads,
           ld_cpu_level_name(ld_cpu_level()), ld_cpu_has_amx() ? " + amx" : "", ld_gemm_kernel_name(), prec);
    printf("runs         %d timed after %d warm-up:", nruns, o->warmup);
    for (int i = 0; i < nruns; i++) printf(" %.3f", rr[i].seconds);
    printf(" s\n");
    printf("%-12s %10s %10s %10s %12s %7s %10s %9s\n", "", "seconds", "GFLOP", "GFLOP/s", "peak GFLOP/s", "ratio",
           "RSS MB", "load1");
    printf("%-12s %10.3f %10.3f %10.2f %12.1f %6.1f%% %10.0f %4.1f/%.1f\n", o->component, secs, gflop, gflops, peak,
           100 * ratio, rss_mb, load0, load_end);
    ld_cpu_theory th;
    ld_cpu_theory_get(o->threads, &th);
    double th_ratio = th.gflops > 0 ? gflops / th.gflops : 0, ref_ratio = o->ref_peak > 0 ? gflops / o->ref_peak : 0;
    printf("theory       %d threads x %d FMA pipes x %d lanes x 2 flop x %.2f GHz = %.1f GFLOP/s: probe %.1f%%, "
           "model %.1f%%\n",
           th.threads, th.fma_pipes, th.lanes, th.clock_ghz, th.gflops, th.gflops > 0 ? 100 * peak / th.gflops : 0,
           100 * th_ratio);
    /* bf16 on AMX: the tile unit's limit, far above twice the FMA figure */
    const int amx = o->precision == LD_PRECISION_BF16 && ld_cpu_has_amx();
    const double amx_theory = amx ? ld_gemm_amx_theory_gflops(o->threads, th.clock_ghz) : 0;
    const double amx_probe = amx ? ld_gemm_amx_peak_gflops(o->threads, o->probe_seconds) : 0;
    if (amx)
        printf("amx          bf16 tiles: %d threads x 1024 flop x %.2f GHz = %.1f GFLOP/s; probe %.1f GFLOP/s (%.1f%%): "
               "model %.1f%% of the AMX probe\n",
               o->threads, th.clock_ghz, amx_theory, amx_probe, amx_theory > 0 ? 100 * amx_probe / amx_theory : 0,
               amx_probe > 0 ? 100 * gflops / amx_probe : 0);
    if (o->ref_peak > 0) printf("ref peak     %.1f GFLOP/s (--ref-peak): ratio %.1f%%\n", o->ref_peak, 100 * ref_ratio);
    printf("per CPU-s    %.2f GFLOP per CPU-second (%.1f CPU-s), probe %.2f: ratio %.1f%%\n", per_cpu,
           med->cpu_seconds, peak_cpu, 100 * cpu_ratio);
    size_t packed_n, packed_bytes;
    ld_gemm_cache_stats(&packed_n, &packed_bytes);
    if (packed_n)
        printf("packed       %zu weight matrices kept packed for the bf16 kernels, %.0f MB (LEANDIFF_PACK_CACHE)\n",
               packed_n, (double)packed_bytes / (1 << 20));
    double op_sum = 0;
    printf("breakdown    %-12s %9s %6s %10s %9s\n", "op", "seconds", "share", "GFLOP", "GFLOP/s");
    for (int c = 0; c < LD_FLOPS_NCAT; c++) {
        op_sum += med->op_s[c];
        printf("             %-12s %9.3f %5.1f%% %10.3f %9.2f\n", ld_flops_cat_name((ld_flops_cat)c), med->op_s[c],
               med->seconds > 0 ? 100 * med->op_s[c] / med->seconds : 0, med->op_gflop[c],
               med->op_s[c] > 0 ? med->op_gflop[c] / med->op_s[c] : 0);
    }
    double other = med->seconds - op_sum;
    printf("             %-12s %9.3f %5.1f%% %10s %9s  (norms, activations, elementwise, resizes)\n", "other",
           other, med->seconds > 0 ? 100 * other / med->seconds : 0, "-", "-");
    double mean = 0;
    for (int i = 0; i < nruns; i++) mean += rr[i].seconds / nruns;
    json_t *products = bench_products_report(o->products, nruns, mean, o->json);
    if (!o->json) return;

    json_t *j = json_object(), *bd = json_object();
    for (int c = 0; c < LD_FLOPS_NCAT; c++)
        json_object_set_new(bd, ld_flops_cat_name((ld_flops_cat)c),
                            json_pack("{s:f,s:f}", "seconds", med->op_s[c], "gflop", med->op_gflop[c]));
    json_object_set_new(bd, "other", json_pack("{s:f}", "seconds", other));
    json_t *runs = json_array();
    for (int i = 0; i < nruns; i++) json_array_append_new(runs, json_real(rr[i].seconds));
    json_object_set_new(j, "component", json_string(o->component));
    json_object_set_new(j, "class", json_string(m->cls));
    json_object_set_new(j, "model_dir", json_string(m->dir));
    json_object_set_new(j, "width", json_integer(o->width));
    json_object_set_new(j, "height", json_integer(o->height));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "latent_h", json_integer(m->h));
    json_object_set_new(j, "latent_w", json_integer(m->w));
    json_object_set_new(j, "precision", json_string(prec));
    json_object_set_new(j, "tiling", json_integer(o->tiling));
    json_object_set_new(j, "threads", json_integer(o->threads));
    json_object_set_new(j, "seconds", json_real(secs));
    json_object_set_new(j, "runs", runs);
    json_object_set_new(j, "gflop", json_real(gflop));
    json_object_set_new(j, "flops", json_integer((json_int_t)llround(gflop * 1e9)));
    json_object_set_new(j, "gflops", json_real(gflops));
    json_object_set_new(j, "peak_gflops", json_real(peak));
    json_object_set_new(j, "ratio", json_real(ratio));
    json_object_set_new(j, "clock_ghz", json_real(th.clock_ghz));
    json_object_set_new(j, "theory_gflops", json_real(th.gflops));
    json_object_set_new(j, "theory_ratio", json_real(th_ratio));
    if (amx) {
        json_object_set_new(j, "amx_theory_gflops", json_real(amx_theory));
        json_object_set_new(j, "amx_peak_gflops", json_real(amx_probe));
    }
    if (o->ref_peak > 0) {
        json_object_set_new(j, "ref_peak_gflops", json_real(o->ref_peak));
        json_object_set_new(j, "ref_ratio", json_real(ref_ratio));
    }
    json_object_set_new(j, "peak_rss_mb", json_real(rss_mb));
    json_object_set_new(j, "cpu_seconds", json_real(med->cpu_seconds));
    json_object_set_new(j, "gflop_per_cpu_s", json_real(per_cpu));
    json_object_set_new(j, "peak_gflop_per_cpu_s", json_real(peak_cpu));
    json_object_set_new(j, "cpu_ratio", json_real(cpu_ratio));
    json_object_set_new(j, "load1_start", json_real(load0));
    json_object_set_new(j, "load1_end", json_real(load_end));
    json_object_set_new(j, "cpu_model", json_string(cpu));
    json_object_set_new(j, "cpu_vendor", json_string(ci->vendor));
    json_object_set_new(j, "cpu_family", json_integer(ci->family));
    json_object_set_new(j, "cpu_model_id", json_integer(ci->model_id));
    json_object_set_new(j, "cpu_path", json_string(ld_cpu_level_name(ld_cpu_level())));
    json_object_set_new(j, "gemm_kernel", json_string(ld_gemm_kernel_name()));
    json_object_set_new(j, "breakdown", bd);
    if (products) json_object_set_new(j, "products", products);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(j);
}

int cmd_bench(int argc, char **argv) {
    bench_opts o = {.width = 1024, .height = 1024, .batch = 1, .runs = 3, .warmup = 1, .tiling = 1,
                    .precision = LD_PRECISION_F32, .probe_seconds = 0.5};
    int prc = parse_opts(argc, argv, &o);
    if (prc >= 0) return prc;
    if (o.threads > 0) ld_set_threads(o.threads);
    o.threads = ld_get_threads() > 0 ? ld_get_threads() : omp_get_max_threads();
    ld_gemm_set_precision(o.precision);

    ld_ctx *ctx = ld_ctx_new();
    bench_model m = {0};
    run_result rr[BENCH_MAX_RUNS];
    double probes[BENCH_MAX_RUNS + 1], probes_cpu[BENCH_MAX_RUNS + 1], load0 = load1();
    int rc = 1;
    ld_status st = ctx ? bench_setup(ctx, &o, &m) : LD_ERR_NOMEM;
    for (int i = 0; st == LD_OK && i < o.warmup; i++) {
        if (!o.json) fprintf(stderr, "bench: warm-up %d/%d\n", i + 1, o.warmup);
        st = bench_eval(ctx, &o, &m);
    }
    ld_flops_shapes_reset();
    ld_flops_shapes_enable(o.products > 0);
    for (int i = 0; st == LD_OK && i < o.runs; i++) {
        probes[i] = probe(&o, &probes_cpu[i]);
        ld_flops_reset();
        double t0 = now_s(), c0 = cpu_s();
        st = bench_eval(ctx, &o, &m);
        rr[i].seconds = now_s() - t0;
        rr[i].cpu_seconds = cpu_s() - c0;
        rr[i].gflop = (double)ld_flops_total() * 1e-9;
        for (int c = 0; c < LD_FLOPS_NCAT; c++) {
            rr[i].op_s[c] = ld_flops_seconds((ld_flops_cat)c);
            rr[i].op_gflop[c] = (double)ld_flops_get((ld_flops_cat)c) * 1e-9;
        }
        if (!o.json) fprintf(stderr, "bench: run %d/%d %.3f s\n", i + 1, o.runs, rr[i].seconds);
    }
    ld_flops_shapes_enable(0);
    if (st == LD_OK) {
        probes[o.runs] = probe(&o, &probes_cpu[o.runs]);
        double secs[BENCH_MAX_RUNS];
        for (int i = 0; i < o.runs; i++) secs[i] = rr[i].seconds;
        print_results(&o, &m, rr, o.runs, median(secs, o.runs), median(probes, o.runs + 1),
                      median(probes_cpu, o.runs + 1), load0, load1());
        rc = 0;
    } else {
        fprintf(stderr, "leandiff bench: %s\n", ctx ? ld_ctx_error(ctx) : "out of memory");
    }
    bench_free(&m);
    ld_ctx_free(ctx);
    return rc;
}
