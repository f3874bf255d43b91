/* WuerstchenPrior (Wuerstchen v2 Stage C), built from prior/config.json.
 * Spec: specs/wuerstchen.md section 4.1.
 *
 *     ld_wuerstchen_prior *p;
 *     LD_TRY(ld_wuerstchen_prior_load(ctx, "wuerstchen-prior/prior", NULL, &p));
 *     // eps [B,16,h,w] from x [B,16,h,w], ratio r [B], text c [B,L,c_cond]
 *     LD_TRY(ld_wuerstchen_prior_forward(ctx, p, eps, x, B, h, w, r, c, L));
 *     ld_wuerstchen_prior_free(p);
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
} ld_wuerstchen_prior;

/* Builds from a parsed config (where: config path for messages) and a weight
 * source (not owned). */
ld_status ld_wuerstchen_prior_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws,
                                    ld_wuerstchen_prior **out);
/* Opens <dir>/config.json and the weights in dir (variant "fp16"/"bf16"/NULL). */
ld_status ld_wuerstchen_prior_load(ld_ctx *ctx, const char *dir, const char *variant, ld_wuerstchen_prior **out);
void ld_wuerstchen_prior_free(ld_wuerstchen_prior *p);

/* out [B, c_in, h, w] = (x - a) / (|1 - b| + 1e-5), the predicted noise.
 * out must not alias x. */
ld_status ld_wuerstchen_prior_forward(ld_ctx *ctx, const ld_wuerstchen_prior *p, float *out, const float *x,
                                      int64_t B, int64_t h, int64_t w, const float *r, const float *c, int64_t L);

extern const ld_model_type ld_model_wuerstchen_prior;

#endif
