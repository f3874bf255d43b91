/* WuerstchenPrior (Wuerstchen v2 Stage C), built from prior/config.json.
 * Spec: specs/wuerstchen.md section 4.1.
 *
 *     ld_wuerstchen_prior *p;
 *     LD_TRY(ld_wuerstchen_prior_load(ctx, "wuerstchen-prior/prior", NULL, &p));
 *     ld_wuerstchen_prior_inputs in = {.B = 2, .H = 24, .W = 24, .sample = x, .r = r,
 *                                      .clip_text = text, .text_len = 77};
 *     LD_TRY(ld_wuerstchen_prior_forward(ctx, p, &in, eps));   // eps [B, c_in, H, W]
 *     ld_wuerstchen_prior_free(p);
 *
 * build borrows the weight source, load owns it. Activations come from an
 * arena owned by the model: the first forward at a size plans it, later
 * forwards at the same or a smaller size allocate nothing. A model runs one
 * forward at a time on each lane (wuerstchen_blocks.h):
 * ld_wuerstchen_prior_forward on lane 0, ld_wuerstchen_prior_forward_lane on
 * either.
 */
#ifndef LD_MODELS_WUERSTCHEN_PRIOR_H
#define LD_MODELS_WUERSTCHEN_PRIOR_H

#include "models/model_registry.h"
#include "models/wuerstchen_blocks.h"

typedef struct {
    wu_resblock res;        /* blocks.{3i} */
    wu_timestep_block ts;   /* blocks.{3i+1} */
    wu_attn_block attn;     /* blocks.{3i+2} */
} wu_prior_layer;

typedef struct {
    int64_t c_in, c, c_cond, c_r, depth, nhead;
    ld_tensor proj_w, proj_b;           /* projection: 1x1 conv c_in -> c */
    ld_tensor cm0_w, cm0_b, cm2_w, cm2_b; /* cond_mapper.0 / .2 */
    ld_tensor out_w, out_b;             /* out.1: 1x1 conv c -> 2*c_in */
    wu_prior_layer *layers;             /* depth */
    ld_weights *ws;                     /* owned when made by _load */
    ld_arena arena[WU_LANES];           /* activations of each lane */
    wu_cond_memo memo[WU_LANES];        /* each lane's cond_mapper output of its last forward */
} ld_wuerstchen_prior;

/* Builds from a parsed config (where: config path for messages) and a weight
 * source (not owned). */
ld_status ld_wuerstchen_prior_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws,
                                    ld_wuerstchen_prior **out);
/* Opens <dir>/config.json and the weights in dir (variant "fp16"/"bf16"/NULL). */
ld_status ld_wuerstchen_prior_load(ld_ctx *ctx, const char *dir, const char *variant, ld_wuerstchen_prior **out);
void ld_wuerstchen_prior_free(ld_wuerstchen_prior *p);

typedef struct {
    int64_t B, H, W;        /* sample [B, c_in, H, W] */
    const float *sample;
    const float *r;         /* timestep ratio [B] */
    const float *clip_text; /* [B, text_len, c_cond] */
    int64_t text_len;
} ld_wuerstchen_prior_inputs;

/* out [B, c_in, H, W] = (sample - a) / (|1 - b| + 1e-5), the predicted noise.
 * out must not alias sample. */
ld_status ld_wuerstchen_prior_forward(ld_ctx *ctx, ld_wuerstchen_prior *p, const ld_wuerstchen_prior_inputs *in,
                                      float *out);
/* The same on lane (0 or 1): a forward on each lane may run at the same time
 * (on different threads); same bits as on lane 0. */
ld_status ld_wuerstchen_prior_forward_lane(ld_ctx *ctx, ld_wuerstchen_prior *p, int lane,
                                           const ld_wuerstchen_prior_inputs *in, float *out);
/* Bytes of activation memory the forwards so far needed (the arenas' peaks). */
size_t ld_wuerstchen_prior_activation_bytes(const ld_wuerstchen_prior *p);

extern const ld_model_type ld_model_wuerstchen_prior;

#endif
