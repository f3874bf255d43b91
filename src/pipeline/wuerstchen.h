/* Wuerstchen v2 pipeline internals (prior -> decoder -> VQGAN), shared by
 * wuerstchen.c (open, text, prior, generate) and wuerstchen_decode.c (decoder
 * and Stage A). The public entry is the ld_pipeline_impl
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
#include "sched/ddpm_wuerstchen.h"
#include "sched/rng.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

#define LD_WU_DEFAULT_SIZE 1024
#define LD_WU_DEFAULT_PRIOR_CFG 4.0f   /* with DEFAULT_STAGE_C_TIMESTEPS (29 steps) */
#define LD_WU_DEFAULT_DECODER_STEPS 12
#define LD_WU_DEFAULT_DECODER_CFG 0.0f

/* The heavy components (text encoders, prior, decoder, VQGAN) are loaded at
 * open (which validates them) and released at the end of the stage that uses
 * them, so peak memory is that of one stage, not the sum; a later generation
 * maps them again (cheap: the files are memory-mapped and stay in the page
 * cache). */
typedef struct {
    char prior_text_dir[4200], prior_dir[4200], decoder_text_dir[4200], decoder_dir[4200], vqgan_dir[4200];
    char variant[32];
    int has_variant;
    int64_t prior_c_in, decoder_multiple, vq_factor; /* kept for size checks while released */
    ld_wuerstchen_prior *prior;
    ld_wuerstchen_diffnext *decoder;
    ld_paella_vq *vqgan;
    ld_clip_text *prior_text, *decoder_text;
    ld_clip_tokenizer *prior_tok, *decoder_tok;
    ld_ddpmw prior_sched, decoder_sched; /* configured; timesteps set per generation */
    double latent_mean, latent_std, resolution_multiple; /* prior model_index.json */
    double latent_dim_scale;                             /* decoder model_index.json */
} ld_wuerstchen;

/* One generation's run state: random inputs, dump collection, progress. */
typedef struct {
    const ld_gen_params *params;
    ld_rng rng;
    ld_safetensors *replay; /* NULL: draw from rng */
    ld_st_builder *dump;    /* NULL: no dump */
    double t0;              /* stage start (seconds) */
} ld_wu_run;

/* Standard normal values named `name` (replay file, shape checked, else RNG). */
ld_status ld_wu_noise(ld_ctx *ctx, ld_wu_run *run, const char *name, int ndim, const int64_t *shape, float *out);
ld_status ld_wu_dump(ld_ctx *ctx, ld_wu_run *run, const char *name, ld_dtype dtype, int ndim, const int64_t *shape,
                     const void *data);
/* Progress for step `step` (1-based) of `total`; LD_ERR_CANCELLED when asked to stop. */
ld_status ld_wu_progress(ld_ctx *ctx, ld_wu_run *run, const char *stage, int step, int total);
void ld_wu_stage_start(ld_wu_run *run);

/* eps = torch.lerp(uncond, cond, w) over n values (PyTorch's formula). */
void ld_wu_lerp(float *eps, const float *uncond, const float *cond, float w, int64_t n);

/* Text encoding: ids/mask -> last_hidden_state [n, len, D] with the padding
 * mask, for n = 1 (prompt) or 2 (prompt; negative); len is 77, or with the
 * A1111 prompt syntax (params->prompt_syntax) 77 per chunk of 75 tokens
 * (text/prompt_encode.h). */
ld_status ld_wu_encode_text(ld_ctx *ctx, ld_wu_run *run, const ld_clip_tokenizer *tok, const ld_clip_text *te,
                            const char *prompt, const char *negative, int with_negative, const char *dump_prefix,
                            float **hidden, int64_t *dim, int64_t *len);

/* Load a released component again (no-op when loaded). */
ld_status ld_wu_need_prior_text(ld_ctx *ctx, ld_wuerstchen *w);
ld_status ld_wu_need_prior(ld_ctx *ctx, ld_wuerstchen *w);
ld_status ld_wu_need_decoder_text(ld_ctx *ctx, ld_wuerstchen *w);
ld_status ld_wu_need_decoder(ld_ctx *ctx, ld_wuerstchen *w);
ld_status ld_wu_need_vqgan(ld_ctx *ctx, ld_wuerstchen *w);

/* Stage B + Stage A: image embeddings [1, 16, hC, wC] -> RGB image. */
ld_status ld_wu_decode(ld_ctx *ctx, ld_wuerstchen *w, ld_wu_run *run, const float *emb, int64_t hC, int64_t wC,
                       int steps, float cfg, ld_image *out);

extern const ld_pipeline_impl ld_pipeline_wuerstchen;

#endif
