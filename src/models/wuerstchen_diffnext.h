/* WuerstchenDiffNeXt (Wuerstchen v2 Stage B), built from decoder/config.json
 * (c_hidden, nhead, blocks, level_config, inject_effnet, effnet_embd,
 * clip_embd, patch_size, ...). Spec: specs/wuerstchen.md section 4.2.
 *
 *     ld_wuerstchen_diffnext *d;
 *     LD_TRY(ld_wuerstchen_diffnext_load(ctx, "wuerstchen/decoder", NULL, &d));
 *     LD_TRY(ld_wuerstchen_diffnext_check_size(ctx, d, H, W));  // H, W of the latent
 *     ld_wuerstchen_diffnext_inputs in = {.B = 2, .H = H, .W = W, .sample = x, .r = r,
 *                                         .effnet = e, .eh = he, .ew = we,
 *                                         .clip_text = clip, .text_len = 77};
 *     LD_TRY(ld_wuerstchen_diffnext_forward(ctx, d, &in, eps));   // eps [B, c_out, H, W]
 *     ld_wuerstchen_diffnext_free(d);
 *
 * build borrows the weight source, load owns it. Activations come from an
 * arena owned by the model: the first forward at a size plans it, later
 * forwards at the same or a smaller size allocate nothing. A model runs one
 * forward at a time.
 */
#ifndef LD_MODELS_WUERSTCHEN_DIFFNEXT_H
#define LD_MODELS_WUERSTCHEN_DIFFNEXT_H

#include "models/model_registry.h"
#include "models/wuerstchen_blocks.h"

#define WU_DN_MAX_LEVELS 8

typedef struct {
    char kind; /* 'C' ResBlockStageB, 'T' TimestepBlock, 'A' AttnBlock */
    wu_resblock res;
    wu_timestep_block ts;
    wu_attn_block attn;
} wu_dn_block;

typedef struct {
    int64_t c;             /* channels at this level */
    int n_blocks;
    wu_dn_block *blocks;
    ld_tensor scale_w, scale_b; /* down: the 2x2 stride-2 conv in front (levels > 0);
                                   up: the 2x2 transposed conv at the end (all but level 0) */
} wu_dn_level;

typedef struct {
    int64_t c_in, c_out, c_r, patch, c_cond, effnet_embd, clip_embd;
    int n_levels;
    int64_t c_hidden[WU_DN_MAX_LEVELS];
    int inject[WU_DN_MAX_LEVELS];
    ld_tensor clip_w, clip_b;   /* clip_mapper */
    ld_tensor emb_w, emb_b;     /* embedding.1 */
    ld_tensor clf_w, clf_b;     /* clf.1 */
    ld_tensor eff_w[2 * WU_DN_MAX_LEVELS], eff_b[2 * WU_DN_MAX_LEVELS]; /* effnet_mappers.{slot} */
    wu_dn_level down[WU_DN_MAX_LEVELS]; /* down_blocks.L */
    wu_dn_level up[WU_DN_MAX_LEVELS];   /* up_blocks.i, i = 0 is the deepest level */
    ld_weights *ws;                     /* owned when made by _load */
    ld_arena arena;                     /* activations */
    wu_cond_memo memo;                  /* the clip conditioning of the last forward */
} ld_wuerstchen_diffnext;

ld_status ld_wuerstchen_diffnext_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws,
                                       ld_wuerstchen_diffnext **out);
ld_status ld_wuerstchen_diffnext_load(ld_ctx *ctx, const char *dir, const char *variant,
                                      ld_wuerstchen_diffnext **out);
void ld_wuerstchen_diffnext_free(ld_wuerstchen_diffnext *d);

/* The latent H x W must be divisible by patch_size * 2^(levels-1) (v2 has no
 * resize-to-skip fallback). */
int64_t ld_wuerstchen_diffnext_size_multiple(const ld_wuerstchen_diffnext *d);
ld_status ld_wuerstchen_diffnext_check_size(ld_ctx *ctx, const ld_wuerstchen_diffnext *d, int64_t H, int64_t W);

typedef struct {
    int64_t B, H, W;        /* sample [B, c_in, H, W] */
    const float *sample;
    const float *r;         /* timestep ratio [B] */
    const float *effnet;    /* [B, effnet_embd, eh, ew] */
    int64_t eh, ew;
    const float *clip_text; /* [B, text_len, clip_embd] */
    int64_t text_len;
} ld_wuerstchen_diffnext_inputs;

/* out [B, c_out, H, W] = (sample - a) / b (predicted noise); out must not
 * alias sample. */
ld_status ld_wuerstchen_diffnext_forward(ld_ctx *ctx, ld_wuerstchen_diffnext *d,
                                         const ld_wuerstchen_diffnext_inputs *in, float *out);
/* Bytes of activation memory the forwards so far needed (the arena's peak). */
size_t ld_wuerstchen_diffnext_activation_bytes(const ld_wuerstchen_diffnext *d);

extern const ld_model_type ld_model_wuerstchen_diffnext;

#endif
