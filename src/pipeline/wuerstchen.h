/* Wuerstchen v2 pipeline internals (prior -> decoder -> VQGAN), shared by
 * wuerstchen.c (open, prior, generate), wuerstchen_text.c (the CLIP stages
 * and the schedulers) and wuerstchen_decode.c (decoder and Stage A). The public entry is the ld_pipeline_impl
 * `ld_pipeline_wuerstchen` (family "wuerstchen"), registered in
 * pipeline_registry.c. Spec: specs/wuerstchen.md sections 1, 6, 7, 8.1-8.3.
 *
 * Options: opt->model_dir is the WuerstchenPriorPipeline folder (prior,
 * text_encoder = CLIP bigG, tokenizer, scheduler), opt->decoder_dir the
 * WuerstchenDecoderPipeline folder (decoder, vqgan, text_encoder = CLIP
 * ViT-H, tokenizer, scheduler).
 */
#ifndef LD_PIPELINE_WUERSTCHEN_H
#define LD_PIPELINE_WUERSTCHEN_H

#include "io/safetensors.h"
#include "models/paella_vq.h"
#include "models/wuerstchen_diffnext.h"
#include "models/wuerstchen_prior.h"
#include "pipeline/pipeline.h"
#include "pipeline/run.h"
#include "sched/scheduler.h"
#include "text/prompt_encode.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

#define LD_WU_DEFAULT_SIZE 1024
#define LD_WU_DEFAULT_PRIOR_CFG 4.0f   /* with DEFAULT_STAGE_C_TIMESTEPS (29 steps) */
#define LD_WU_DEFAULT_DECODER_STEPS 12
#define LD_WU_DEFAULT_DECODER_CFG 0.0f

/* The open pipeline keeps paths, the tokenizers, the scheduler configs and
 * what the size checks need; it never holds a model. Open loads each model
 * once to check that the pieces fit and releases it; each stage of a
 * generation loads what it needs and releases it when done (the weights are
 * memory-mapped and stay in the page cache, so loading again is cheap), so
 * peak memory is that of one stage and generating never changes the pipeline. */
typedef struct {
    char prior_text_dir[4200], prior_dir[4200], decoder_text_dir[4200], decoder_dir[4200], vqgan_dir[4200];
    char variant[32];
    int has_variant;
    int64_t prior_c_in, decoder_multiple, vq_factor; /* for the size checks */
    ld_clip_tokenizer *prior_tok, *decoder_tok;
    json_t *prior_sched_cfg, *decoder_sched_cfg;     /* DDPMWuerstchenScheduler configs */
    char prior_sched_where[4300], decoder_sched_where[4300];
    double latent_mean, latent_std, resolution_multiple; /* prior model_index.json */
    double latent_dim_scale;                             /* decoder model_index.json */
} ld_wuerstchen;

const char *ld_wu_variant(const ld_wuerstchen *w);

/* Text encoding (wuerstchen_text.c): last_hidden_state [n, len, D] with the
 * padding mask for n = 1 (prompt) or 2 (prompt; negative), dumped as
 * "<prefix>prompt_embeds" (and "<prefix>negative_prompt_embeds"); len is 77,
 * or with the A1111 prompt syntax 77 per chunk of 75 tokens
 * (text/prompt_encode.h). The encoder is loaded from text_dir and released. */
ld_status ld_wu_encode_text(ld_ctx *ctx, ld_run *run, const ld_wuerstchen *w, const ld_clip_tokenizer *tok,
                            const char *text_dir, int with_negative, const char *prefix, ld_prompt_enc *e);

/* Stage B + Stage A (wuerstchen_decode.c): image embeddings [1, 16, hC, wC] -> RGB image. */
ld_status ld_wu_decode(ld_ctx *ctx, const ld_wuerstchen *w, ld_run *run, const float *emb, int64_t hC, int64_t wC,
                       int steps, float cfg, ld_image *out);

extern const ld_pipeline_impl ld_pipeline_wuerstchen;

#endif
