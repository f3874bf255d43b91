/* CLIP text transformer (transformers CLIPTextModel and
 * CLIPTextModelWithProjection), built from the component's config.json and
 * its weights by their checkpoint names (text_model.*, text_projection.weight).
 *
 *     ld_clip_text *te;
 *     LD_TRY(ld_clip_text_load(ctx, "model/text_encoder_2", "fp16", &te));
 *     ld_clip_text_out o = {0};
 *     o.hidden_index = -2;        o.hidden = penultimate;   // [B, L, D]
 *     o.text_embeds = pooled_proj;                          // [B, P]
 *     LD_TRY(ld_clip_text_forward(ctx, te, ids, NULL, B, LD_CLIP_CONTEXT, &o));
 *     ld_clip_text_free(te);
 *
 * Layer (pre-LN): h += out_proj(MHA(LN1(h))) with a causal mask (plus the
 * optional key-padding mask), h += fc2(act(fc1(LN2(h)))), act = quick_gelu or
 * exact gelu per hidden_act. The model is read-only after loading.
 */
#ifndef LD_TEXT_CLIP_TEXT_H
#define LD_TEXT_CLIP_TEXT_H

#include "io/weights.h"
#include <jansson.h>

typedef enum { LD_CLIP_ACT_QUICK_GELU = 0, LD_CLIP_ACT_GELU } ld_clip_act;

typedef struct {
    int64_t hidden_size;       /* D */
    int64_t num_layers;        /* num_hidden_layers */
    int64_t num_heads;         /* num_attention_heads */
    int64_t intermediate_size; /* I */
    int64_t max_positions;     /* max_position_embeddings (77) */
    int64_t vocab_size;
    int64_t projection_dim;    /* P, 0 without projection */
    ld_clip_act act;
    float eps;                 /* layer_norm_eps */
} ld_clip_text_config;

typedef struct ld_clip_text ld_clip_text;

/* Reads <dir>/config.json and the weights (variant "fp16", "bf16" or NULL). */
ld_status ld_clip_text_load(ld_ctx *ctx, const char *text_encoder_dir, const char *variant, ld_clip_text **out);
/* The same with LoRA files merged into its weights: which 0 takes the
 * files' text_encoder / lora_te1 keys, 1 their text_encoder_2 / lora_te2 keys. */
ld_status ld_clip_text_load_lora(ld_ctx *ctx, const char *text_encoder_dir, const char *variant, int which,
                                 const ld_lora_ref *loras, int nloras, ld_clip_text **out);
/* Builds from a parsed config and a weight source (a recorder for
 * init-random). where names the config for messages. The model keeps a
 * reference to ws but does not own it. */
ld_status ld_clip_text_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws,
                             ld_clip_text **out);
void ld_clip_text_free(ld_clip_text *te);
const ld_clip_text_config *ld_clip_text_get_config(const ld_clip_text *te);

/* What a forward call computes; every pointer may be NULL (not wanted). */
typedef struct {
    /* Index into transformers' hidden_states tuple (embeddings, layer 0
     * output, ..., layer N-1 output): 0 = embeddings, k = output of layer
     * k-1; negative counts from the end: -1 = last layer (before
     * final_layer_norm), -2 = penultimate (SDXL). */
    int hidden_index;
    float *hidden;      /* [B, L, D] hidden_states[hidden_index] */
    float *last_hidden; /* [B, L, D] last_hidden_state (after final_layer_norm) */
    float *pooled;      /* [B, D] last_hidden_state at argmax(ids) (the first EOS) */
    float *text_embeds; /* [B, P] pooled @ text_projection^T (projection models only) */
} ld_clip_text_out;

/* ids: [B, L] token ids (0 <= id < vocab_size, L <= max_positions).
 * attention_mask: [B, L] or NULL; 0 marks a padding key that no query attends
 * to (on top of the causal mask), as transformers does when it is passed. */
ld_status ld_clip_text_forward(ld_ctx *ctx, const ld_clip_text *te, const int64_t *ids,
                               const int64_t *attention_mask, int64_t B, int64_t L, ld_clip_text_out *out);

#endif
