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
#include "pipeline/run.h"
#include "sched/scheduler.h"
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

/* Stage B + Stage A: image embeddings [1, C, hC, wC] -> RGB image. pooled and
 * neg_pooled are [1, 1, P] (neg_pooled only used when cfg > 1). */
ld_status ld_cascade_decode(ld_ctx *ctx, const ld_cascade *c, ld_run *run, const float *emb, int64_t hC,
                            int64_t wC, const float *pooled, const float *neg_pooled, int steps, float cfg,
                            ld_image *out);

#endif
