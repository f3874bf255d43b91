/* Stable Cascade pipeline internals shared by cascade.c (open, text, prior)
 * and cascade_decode.c (decoder and Stage A). The public entry is the
 * ld_pipeline_impl `ld_pipeline_stable_cascade` (family "stable-cascade").
 *
 * Options: opt->model_dir is the StableCascadePriorPipeline folder (prior,
 * text_encoder, tokenizer, scheduler), opt->decoder_dir the
 * StableCascadeDecoderPipeline folder (decoder, vqgan, scheduler). With
 * opt->prior_weights / decoder_weights / vqgan_weights, the Stability single
 * files (stage_c*, stage_b*, stage_a.safetensors) replace the folders' weights.
 */
#ifndef LD_PIPELINE_CASCADE_H
#define LD_PIPELINE_CASCADE_H

#include "io/safetensors.h"
#include "models/paella_vq.h"
#include "models/stable_cascade_unet.h"
#include "pipeline/pipeline.h"
#include "sched/ddpm_wuerstchen.h"
#include "sched/rng.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

#define LD_CASCADE_DEFAULT_SIZE 1024
#define LD_CASCADE_DEFAULT_PRIOR_STEPS 20
#define LD_CASCADE_DEFAULT_PRIOR_CFG 4.0f
#define LD_CASCADE_DEFAULT_DECODER_STEPS 10
#define LD_CASCADE_DEFAULT_DECODER_CFG 0.0f

/* The open pipeline keeps configs, paths and the tokenizer; each stage maps
 * its weights when it starts and unmaps them when it ends, so peak RSS is the
 * largest stage, not the sum (weights are mmapped: loading is cheap). */
typedef struct {
    char prior_dir[4096], text_dir[4096], decoder_dir[4096], vqgan_dir[4096]; /* component folders */
    char *variant, *prior_weights, *decoder_weights, *vqgan_weights;          /* copies of the options */
    ld_sc_config prior_cfg, decoder_cfg;
    int64_t text_hidden, text_proj;
    ld_clip_tokenizer *tok;
    json_t *prior_sched_cfg, *decoder_sched_cfg;
    double resolution_multiple; /* model_index.json of the prior (42.67) */
    double latent_dim_scale;    /* model_index.json of the decoder (10.67) */
} ld_cascade;

/* Stage loaders (cascade_models.c); free with the models' own free functions
 * (the vqgan also needs ld_weights_free(*ws), NULL unless a stage_a file is used). */
ld_status ld_cascade_load_text(ld_ctx *ctx, const ld_cascade *c, ld_clip_text **out);
ld_status ld_cascade_load_prior(ld_ctx *ctx, const ld_cascade *c, ld_sc_unet **out);
ld_status ld_cascade_load_decoder(ld_ctx *ctx, const ld_cascade *c, ld_sc_unet **out);
ld_status ld_cascade_load_vqgan(ld_ctx *ctx, const ld_cascade *c, ld_paella_vq **out, ld_weights **ws);
ld_status ld_cascade_open(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *model_index, void **state);
void ld_cascade_free(void *state);

/* One generation's run state: random inputs, dump collection, progress. */
typedef struct {
    const ld_gen_params *params;
    ld_rng rng;
    ld_safetensors *replay; /* NULL: draw from rng */
    ld_st_builder *dump;    /* NULL: no dump */
    double t0;              /* stage start (seconds) */
} ld_cascade_run;

/* Standard normal values for `name` with the given shape: from the replay
 * file when there is one (shape checked), else from the RNG. */
ld_status ld_cascade_noise(ld_ctx *ctx, ld_cascade_run *run, const char *name, int ndim, const int64_t *shape,
                           float *out);
/* Adds a tensor to the dump (no-op without one). */
ld_status ld_cascade_dump(ld_ctx *ctx, ld_cascade_run *run, const char *name, ld_dtype dtype, int ndim,
                          const int64_t *shape, const void *data);
/* Progress callback for step `step` (1-based) of `total`; LD_ERR_CANCELLED when asked to stop. */
ld_status ld_cascade_progress(ld_ctx *ctx, ld_cascade_run *run, const char *stage, int step, int total);
double ld_cascade_now(void);

/* eps = lerp(uncond, cond, w) as PyTorch computes it; cond and uncond are
 * the two halves of the batch [cond; uncond] of n values each. */
void ld_cascade_cfg(float *eps, const float *cond, const float *uncond, float w, int64_t n);

/* Stage B + Stage A: image embeddings [1, C, hC, wC] -> RGB image. pooled and
 * neg_pooled are [1, 1, P] (neg_pooled only used when cfg > 1). */
ld_status ld_cascade_decode(ld_ctx *ctx, const ld_cascade *c, ld_cascade_run *run, const float *emb, int64_t hC,
                            int64_t wC, const float *pooled, const float *neg_pooled, int steps, float cfg,
                            ld_image *out);

#endif
