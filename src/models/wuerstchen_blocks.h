/* Building blocks shared by Wuerstchen v2 (WuerstchenPrior, WuerstchenDiffNeXt)
 * and Stable Cascade (StableCascadeUNet): spec specs/wuerstchen.md section 2.
 *
 * Each block is a weights struct, a build function that looks its tensors up
 * by their diffusers names under a prefix, and a forward on f32 NCHW
 * activations. Build code never reads weight values (init-random records the
 * names through the same calls).
 *
 *     wu_resblock rb;
 *     LD_TRY(wu_resblock_build(ctx, ws, &rb, "down_blocks.1.1.", 640, 1024, WU_RES_STAGE_B));
 *     LD_TRY(wu_resblock_forward(ctx, arena, &rb, x, B, H, W, effnet_skip));   // x updated in place
 *
 * Forward functions take their temporaries from the model's arena and leave
 * it as they found it (they fail only when it cannot grow); x is always
 * updated in place.
 */
#ifndef LD_MODELS_WUERSTCHEN_BLOCKS_H
#define LD_MODELS_WUERSTCHEN_BLOCKS_H

#include "base/arena.h"
#include "io/weights.h"

#define WU_LN_EPS 1e-6f
#define WU_MAX_CONDS 4

/* LayerNorm2d: LayerNorm over channels at each pixel, no affine, eps 1e-6.
 * y may alias x. */
void wu_layer_norm2d(float *y, const float *x, int64_t B, int64_t C, int64_t HW);

/* gen_r_embedding: r [B] in [0,1] -> emb [B, c_r] = [sin(r*1e4*f), cos(r*1e4*f)],
 * f_i = exp(-i*ln(1e4)/(c_r/2 - 1)), computed in f32 like PyTorch; odd c_r is
 * zero padded. emb is written with row stride ld (>= c_r). */
void wu_r_embedding(float *emb, int64_t ld, const float *r, int64_t B, int64_t c_r);

/* ---- ResBlock (ConvNeXt style) ---- */
typedef enum {
    WU_RES_STAGE_B = 0, /* ResBlockStageB / SDCascadeResBlock: DW(x) -> LN -> cat(skip) -> MLP */
    WU_RES_PRIOR = 1    /* v2 prior ResBlock: cat(x, skip) -> DW (groups=c) -> LN -> MLP */
} wu_res_kind;

typedef struct {
    wu_res_kind kind;
    int64_t c, c_skip;
    ld_tensor dw_w, dw_b;         /* depthwise.{weight,bias} */
    ld_tensor fc1_w, fc1_b;       /* channelwise.0 */
    ld_tensor grn_gamma, grn_beta; /* channelwise.2 */
    ld_tensor fc2_w, fc2_b;       /* channelwise.4 */
} wu_resblock;

ld_status wu_resblock_build(ld_ctx *ctx, ld_weights *ws, wu_resblock *rb, const char *prefix, int64_t c,
                            int64_t c_skip, wu_res_kind kind);
/* x [B, c, H, W] in place; skip [B, c_skip, H, W] or NULL when c_skip == 0. */
ld_status wu_resblock_forward(ld_ctx *ctx, ld_arena *a, const wu_resblock *rb, float *x, int64_t B, int64_t H,
                              int64_t W, const float *skip);

/* ---- TimestepBlock (FiLM) ---- */
typedef struct {
    int64_t c, c_r;
    int n_conds;                     /* extra conds (v3: "sca", "crp") */
    ld_tensor w, b;                  /* mapper */
    ld_tensor cw[WU_MAX_CONDS], cb[WU_MAX_CONDS]; /* mapper_<cond> */
} wu_timestep_block;

/* conds: names of the extra conditionings (NULL-terminated list, or NULL). */
ld_status wu_timestep_block_build(ld_ctx *ctx, ld_weights *ws, wu_timestep_block *tb, const char *prefix, int64_t c,
                                  int64_t c_r, const char *const *conds);
/* x [B, c, HW] in place; t_emb [B, c_r * (1 + n_conds)]:
 * [a|b] = mapper(chunk0) + sum_i mapper_i(chunk_i); x = x*(1+a) + b. */
ld_status wu_timestep_block_forward(ld_ctx *ctx, ld_arena *a, const wu_timestep_block *tb, float *x, int64_t B,
                                    int64_t HW, const float *t_emb);

/* ---- lanes ----
 * Two forwards of one model may run at the same time when each runs on its
 * own lane (0 or 1): a lane has its own activation arena, conditioning memo
 * and text k/v in every AttnBlock (the two halves of a guided step, one
 * thread each: pipeline/denoise.h). A model used by one caller at a time
 * runs on lane 0. */
#define WU_LANES 2

/* ---- conditioning memo ----
 * A pipeline passes the same text conditioning at every step, so the k and
 * v of the text tokens of each AttnBlock are the same at every step. A model
 * keeps one wu_cond_memo: wu_cond_gen compares the conditioning of a forward
 * with the last one, bit for bit, and returns the same generation number
 * while it is unchanged (a new one when it changed, 0 when the copy could not
 * be made: nothing is reused then). The blocks keep their text k/v with the
 * generation (and precision) they were computed for. Same bits either way. */
typedef struct {
    float *cond;
    size_t n;
    uint64_t gen;
} wu_cond_memo;

uint64_t wu_cond_gen(wu_cond_memo *m, const float *cond, size_t n);
void wu_cond_memo_free(wu_cond_memo *m);

/* ---- AttnBlock (self + cross attention in one softmax) ---- */
typedef struct {
    float *kv;     /* [B, 2, L, c]: the k rows of image b, then its v rows */
    int64_t B, L;
    uint64_t gen;  /* wu_cond_gen of the conditioning they came from, 0: none */
    int precision; /* ld_precision they were computed in */
} wu_text_kv;

typedef struct {
    int64_t c, c_cond, nhead;
    ld_tensor kv_w, kv_b;   /* kv_mapper.1 (after SiLU) */
    ld_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* attention.to_{q,k,v,out.0} */
    wu_text_kv *text;       /* [WU_LANES]: each lane's text k/v of its last forward (owned) */
} wu_attn_block;

ld_status wu_attn_block_build(ld_ctx *ctx, ld_weights *ws, wu_attn_block *ab, const char *prefix, int64_t c,
                              int64_t c_cond, int64_t nhead);
void wu_attn_block_free(wu_attn_block *ab);
/* x [B, c, H*W] in place; cond [B, L, c_cond]:
 * kv = Linear(SiLU(cond)); n = LN2d(x); x += MHA(n, [n; kv], [n; kv]).
 * cond_gen: wu_cond_gen of cond in the memo of lane (0: compute the text k/v
 * afresh). */
ld_status wu_attn_block_forward(ld_ctx *ctx, ld_arena *a, const wu_attn_block *ab, float *x, int64_t B,
                                int64_t HW, const float *cond, int64_t L, uint64_t cond_gen, int lane);

#endif
