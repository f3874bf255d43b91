/* CLIP text transformer (see clip_text.h): transformers' CLIPTextTransformer
 * with pre-LN encoder layers, a causal mask (plus optional key padding mask),
 * final_layer_norm, EOS pooling and the optional text_projection. */
#include "text/clip_text.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "models/lora_merge.h"
#include "models/model_registry.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ld_tensor ln1_w, ln1_b;            /* layer_norm1 */
    ld_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* self_attn.{q,k,v,out}_proj */
    ld_tensor ln2_w, ln2_b;            /* layer_norm2 */
    ld_tensor fc1_w, fc1_b, fc2_w, fc2_b; /* mlp.fc1, mlp.fc2 */
} clip_layer;

struct ld_clip_text {
    ld_clip_text_config cfg;
    int64_t eos_token_id; /* config value; 2 (legacy) means "pool at argmax(ids)" */
    ld_weights *owned_ws; /* set by ld_clip_text_load */
    ld_tensor tok_emb, pos_emb; /* text_model.embeddings.{token,position}_embedding.weight */
    clip_layer *layers;
    ld_tensor final_w, final_b; /* text_model.final_layer_norm */
    ld_tensor proj;             /* text_projection.weight [P, D], projection models only */
};

/* ---- config ---- */

static ld_status read_config(ld_ctx *ctx, const char *where, const json_t *cfg, ld_clip_text_config *c,
                             int64_t *eos_token_id) {
    memset(c, 0, sizeof *c);
    const char *arch[4];
    int narch = 0;
    LD_TRY(ld_json_str_list(ctx, where, cfg, "architectures", arch, 4, &narch));
    const char *cls = narch > 0 ? arch[0] : NULL;
    if (!cls) LD_TRY(ld_json_str(ctx, where, cfg, "_class_name", NULL, &cls));
    int with_proj;
    if (cls && !strcmp(cls, "CLIPTextModel"))
        with_proj = 0;
    else if (cls && !strcmp(cls, "CLIPTextModelWithProjection"))
        with_proj = 1;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: architectures must be CLIPTextModel or CLIPTextModelWithProjection, got %s", where,
                       cls ? cls : "nothing");
    LD_TRY(ld_json_int(ctx, where, cfg, "hidden_size", 512, &c->hidden_size));
    LD_TRY(ld_json_int(ctx, where, cfg, "num_hidden_layers", 12, &c->num_layers));
    LD_TRY(ld_json_int(ctx, where, cfg, "num_attention_heads", 8, &c->num_heads));
    LD_TRY(ld_json_int(ctx, where, cfg, "intermediate_size", 2048, &c->intermediate_size));
    LD_TRY(ld_json_int(ctx, where, cfg, "max_position_embeddings", 77, &c->max_positions));
    LD_TRY(ld_json_int(ctx, where, cfg, "vocab_size", 49408, &c->vocab_size));
    LD_TRY(ld_json_int(ctx, where, cfg, "projection_dim", 512, &c->projection_dim));
    LD_TRY(ld_json_int(ctx, where, cfg, "eos_token_id", 2, eos_token_id));
    double eps;
    LD_TRY(ld_json_num(ctx, where, cfg, "layer_norm_eps", 1e-5, &eps));
    c->eps = (float)eps;
    const char *act;
    LD_TRY(ld_json_str(ctx, where, cfg, "hidden_act", "quick_gelu", &act));
    if (!strcmp(act, "quick_gelu"))
        c->act = LD_CLIP_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu"))
        c->act = LD_CLIP_ACT_GELU;
    else
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: hidden_act must be quick_gelu or gelu, got %s", where, act);
    if (!with_proj) c->projection_dim = 0;

    const int64_t big = (int64_t)1 << 20;
    struct {
        const char *name;
        int64_t v;
    } dims[] = {{"hidden_size", c->hidden_size},         {"num_hidden_layers", c->num_layers},
                {"num_attention_heads", c->num_heads},   {"intermediate_size", c->intermediate_size},
                {"max_position_embeddings", c->max_positions}, {"vocab_size", c->vocab_size},
                {"projection_dim", with_proj ? c->projection_dim : 1}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < 1 || dims[i].v > big)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s must be in [1, %lld], got %lld", where, dims[i].name,
                           (long long)big, (long long)dims[i].v);
    if (c->num_layers > 1024)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: num_hidden_layers %lld is absurd", where, (long long)c->num_layers);
    if (c->hidden_size % c->num_heads)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", where,
                       (long long)c->hidden_size, (long long)c->num_heads);
    if (!(eps > 0 && eps < 1)) return ld_fail(ctx, LD_ERR_MODEL, "%s: layer_norm_eps must be in (0, 1)", where);
    return LD_OK;
}

/* ---- weights ---- */

static ld_status get1(ld_ctx *ctx, ld_weights *ws, ld_tensor *t, int64_t n, const char *name, int layer) {
    int64_t shape[1] = {n};
    return ld_weights_get(ctx, ws, t, 1, shape, "text_model.encoder.layers.%d.%s", layer, name);
}

static ld_status get2(ld_ctx *ctx, ld_weights *ws, ld_tensor *t, int64_t rows, int64_t cols, const char *name,
                      int layer) {
    int64_t shape[2] = {rows, cols};
    return ld_weights_get(ctx, ws, t, 2, shape, "text_model.encoder.layers.%d.%s", layer, name);
}

static ld_status build_layer(ld_ctx *ctx, ld_weights *ws, const ld_clip_text_config *c, int l, clip_layer *L) {
    int64_t D = c->hidden_size, I = c->intermediate_size;
    LD_TRY(get1(ctx, ws, &L->ln1_w, D, "layer_norm1.weight", l));
    LD_TRY(get1(ctx, ws, &L->ln1_b, D, "layer_norm1.bias", l));
    LD_TRY(get2(ctx, ws, &L->q_w, D, D, "self_attn.q_proj.weight", l));
    LD_TRY(get1(ctx, ws, &L->q_b, D, "self_attn.q_proj.bias", l));
    LD_TRY(get2(ctx, ws, &L->k_w, D, D, "self_attn.k_proj.weight", l));
    LD_TRY(get1(ctx, ws, &L->k_b, D, "self_attn.k_proj.bias", l));
    LD_TRY(get2(ctx, ws, &L->v_w, D, D, "self_attn.v_proj.weight", l));
    LD_TRY(get1(ctx, ws, &L->v_b, D, "self_attn.v_proj.bias", l));
    LD_TRY(get2(ctx, ws, &L->o_w, D, D, "self_attn.out_proj.weight", l));
    LD_TRY(get1(ctx, ws, &L->o_b, D, "self_attn.out_proj.bias", l));
    LD_TRY(get1(ctx, ws, &L->ln2_w, D, "layer_norm2.weight", l));
    LD_TRY(get1(ctx, ws, &L->ln2_b, D, "layer_norm2.bias", l));
    LD_TRY(get2(ctx, ws, &L->fc1_w, I, D, "mlp.fc1.weight", l));
    LD_TRY(get1(ctx, ws, &L->fc1_b, I, "mlp.fc1.bias", l));
    LD_TRY(get2(ctx, ws, &L->fc2_w, D, I, "mlp.fc2.weight", l));
    LD_TRY(get1(ctx, ws, &L->fc2_b, D, "mlp.fc2.bias", l));
    return LD_OK;
}

static ld_status build(ld_ctx *ctx, ld_weights *ws, ld_clip_text *te) {
    const ld_clip_text_config *c = &te->cfg;
    int64_t D = c->hidden_size;
    int64_t tok[2] = {c->vocab_size, D}, pos[2] = {c->max_positions, D}, vec[1] = {D};
    LD_TRY(ld_weights_get(ctx, ws, &te->tok_emb, 2, tok, "text_model.embeddings.token_embedding.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &te->pos_emb, 2, pos, "text_model.embeddings.position_embedding.weight"));
    LD_TRY(ld_calloc(ctx, (void **)&te->layers, (size_t)c->num_layers, sizeof *te->layers, "CLIP text layers"));
    for (int l = 0; l < c->num_layers; l++) LD_TRY(build_layer(ctx, ws, c, l, &te->layers[l]));
    LD_TRY(ld_weights_get(ctx, ws, &te->final_w, 1, vec, "text_model.final_layer_norm.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &te->final_b, 1, vec, "text_model.final_layer_norm.bias"));
    if (c->projection_dim) {
        int64_t proj[2] = {c->projection_dim, D};
        LD_TRY(ld_weights_get(ctx, ws, &te->proj, 2, proj, "text_projection.weight"));
    }
    return LD_OK;
}

ld_status ld_clip_text_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws,
                             ld_clip_text **out) {
    *out = NULL;
    ld_clip_text *te;
    LD_TRY(ld_calloc(ctx, (void **)&te, 1, sizeof *te, "CLIP text model"));
    ld_status st = read_config(ctx, where, config, &te->cfg, &te->eos_token_id);
    if (st == LD_OK) st = build(ctx, ws, te);
    if (st != LD_OK) {
        ld_clip_text_free(te);
        return st;
    }
    *out = te;
    return LD_OK;
}

ld_status ld_clip_text_load(ld_ctx *ctx, const char *dir, const char *variant, ld_clip_text **out) {
    return ld_clip_text_load_lora(ctx, dir, variant, 0, NULL, 0, out);
}

ld_status ld_clip_text_load_lora(ld_ctx *ctx, const char *dir, const char *variant, int which, const ld_lora_ref *loras,
                                 int nloras, ld_clip_text **out) {
    *out = NULL;
    json_t *cfg;
    LD_TRY(ld_component_config(ctx, dir, &cfg));
    char where[4200];
    snprintf(where, sizeof where, "%s/config.json", dir);
    ld_weights *ws = NULL;
    ld_status st = ld_weights_open_dir(ctx, dir, variant, &ws);
    if (st == LD_OK) st = ld_lora_merge(ctx, ws, which ? LD_LORA_TE2 : LD_LORA_TE1, loras, nloras);
    if (st == LD_OK) st = ld_clip_text_build(ctx, where, cfg, ws, out);
    json_decref(cfg);
    if (st != LD_OK) {
        ld_weights_free(ws);
        return st;
    }
    (*out)->owned_ws = ws;
    return LD_OK;
}

void ld_clip_text_free(ld_clip_text *te) {
    if (!te) return;
    free(te->layers);
    ld_weights_free(te->owned_ws);
    free(te);
}

const ld_clip_text_config *ld_clip_text_get_config(const ld_clip_text *te) { return &te->cfg; }

/* ---- forward ---- */

typedef struct {
    float *h;    /* [BL, D] residual stream */
    float *x;    /* [BL, D] normed input of a sub-block */
    float *qkv;  /* [BL, 3D] */
    float *att;  /* [BL, D] */
    float *mlp;  /* [BL, I] */
    uint8_t *keep; /* [B, L] key padding mask or NULL */
} clip_state;

/* h += out_proj(MHA(LN1(h))), h += fc2(act(fc1(LN2(h)))) */
static void layer_forward(const ld_clip_text *te, const clip_layer *w, clip_state *s, int64_t B, int64_t L) {
    const ld_clip_text_config *c = &te->cfg;
    int64_t D = c->hidden_size, H = c->num_heads, Dh = D / H, BL = B * L;

    ld_layer_norm(s->x, s->h, BL, D, c->eps, &w->ln1_w, &w->ln1_b);
    ld_linear_strided(s->qkv, 3 * D, s->x, D, BL, &w->q_w, &w->q_b);
    ld_linear_strided(s->qkv + D, 3 * D, s->x, D, BL, &w->k_w, &w->k_b);
    ld_linear_strided(s->qkv + 2 * D, 3 * D, s->x, D, BL, &w->v_w, &w->v_b);
    ld_attn_params p = {0};
    p.scale = 1.0f / sqrtf((float)Dh);
    p.causal = 1;
    p.key_keep = s->keep;
    ld_attention(s->att, D, s->qkv, 3 * D, s->qkv + D, 3 * D, s->qkv + 2 * D, 3 * D, B, H, L, L, Dh, &p);
    ld_linear(s->x, s->att, BL, &w->o_w, &w->o_b);
    ld_add(s->h, s->h, s->x, BL * D);

    ld_layer_norm(s->x, s->h, BL, D, c->eps, &w->ln2_w, &w->ln2_b);
    ld_linear(s->mlp, s->x, BL, &w->fc1_w, &w->fc1_b);
    if (c->act == LD_CLIP_ACT_QUICK_GELU)
        ld_quick_gelu(s->mlp, BL * c->intermediate_size);
    else
        ld_gelu_erf(s->mlp, BL * c->intermediate_size);
    ld_linear(s->x, s->mlp, BL, &w->fc2_w, &w->fc2_b);
    ld_add(s->h, s->h, s->x, BL * D);
}

/* The pooled position: argmax(ids) for legacy configs (eos_token_id 2),
 * else the first ids == eos_token_id (0 if none), as transformers does. */
static int64_t pool_position(const ld_clip_text *te, const int64_t *ids, int64_t L) {
    int64_t best = 0;
    for (int64_t i = 0; i < L; i++) {
        if (te->eos_token_id == 2) {
            if (ids[i] > ids[best]) best = i;
        } else if (ids[i] == te->eos_token_id) {
            return i;
        }
    }
    return best;
}

ld_status ld_clip_text_forward(ld_ctx *ctx, const ld_clip_text *te, const int64_t *ids, const int64_t *mask,
                               int64_t B, int64_t L, ld_clip_text_out *out) {
    const ld_clip_text_config *c = &te->cfg;
    int64_t D = c->hidden_size, N = c->num_layers;
    if (!ids || !out) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "CLIP text forward: NULL ids or outputs");
    if (B < 1 || B > 4096 || L < 1 || L > c->max_positions)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "CLIP text forward: batch %lld x length %lld (length must be 1..%lld)", (long long)B,
                       (long long)L, (long long)c->max_positions);
    if (out->text_embeds && !c->projection_dim)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "CLIP text forward: text_embeds asked of a model without "
                                                     "text_projection (CLIPTextModel)");
    int64_t hidden_at = out->hidden_index < 0 ? N + 1 + out->hidden_index : out->hidden_index;
    if (out->hidden && (hidden_at < 0 || hidden_at > N))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "CLIP text forward: hidden_index %d outside [-%lld, %lld]",
                       out->hidden_index, (long long)N + 1, (long long)N);
    for (int64_t i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "CLIP text forward: id %lld at [%lld, %lld] outside [0, %lld)",
                           (long long)ids[i], (long long)(i / L), (long long)(i % L), (long long)c->vocab_size);
    int need_final = out->last_hidden || out->pooled || out->text_embeds;
    int64_t layers_to_run = need_final ? N : (out->hidden ? hidden_at : 0);

    int64_t BL = B * L;
    clip_state s = {0};
    size_t fl = sizeof(float);
    ld_status st = LD_OK;
    if ((st = ld_aligned_alloc(ctx, (void **)&s.h, (size_t)BL * D * fl, "CLIP hidden states")) != LD_OK ||
        (st = ld_aligned_alloc(ctx, (void **)&s.x, (size_t)BL * D * fl, "CLIP hidden states")) != LD_OK ||
        (st = ld_aligned_alloc(ctx, (void **)&s.qkv, (size_t)BL * 3 * D * fl, "CLIP q/k/v")) != LD_OK ||
        (st = ld_aligned_alloc(ctx, (void **)&s.att, (size_t)BL * D * fl, "CLIP attention")) != LD_OK ||
        (st = ld_aligned_alloc(ctx, (void **)&s.mlp, (size_t)BL * c->intermediate_size * fl, "CLIP MLP")) != LD_OK)
        goto done;
    if (mask) {
        if ((st = ld_malloc(ctx, (void **)&s.keep, (size_t)BL, "CLIP attention mask")) != LD_OK) goto done;
        for (int64_t i = 0; i < BL; i++) s.keep[i] = mask[i] != 0;
    }

    /* embeddings: token_embedding[id] + position_embedding[pos] */
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < L; i++) {
            float *row = s.h + (b * L + i) * D;
            ld_convert_to_f32(row, te->tok_emb.data, te->tok_emb.dtype, ids[b * L + i] * D, D);
            ld_convert_to_f32(s.x, te->pos_emb.data, te->pos_emb.dtype, i * D, D);
            ld_add(row, row, s.x, D);
        }
    }
    for (int64_t l = 0; l <= layers_to_run; l++) {
        if (out->hidden && l == hidden_at) memcpy(out->hidden, s.h, (size_t)BL * D * fl);
        if (l < layers_to_run) layer_forward(te, &te->layers[l], &s, B, L);
    }
    if (need_final) {
        ld_layer_norm(s.x, s.h, BL, D, c->eps, &te->final_w, &te->final_b);
        if (out->last_hidden) memcpy(out->last_hidden, s.x, (size_t)BL * D * fl);
        /* pooled rows gathered into s.att [B, D] */
        for (int64_t b = 0; b < B; b++)
            memcpy(s.att + b * D, s.x + (b * L + pool_position(te, ids + b * L, L)) * D, (size_t)D * fl);
        if (out->pooled) memcpy(out->pooled, s.att, (size_t)B * D * fl);
        if (out->text_embeds) ld_linear(out->text_embeds, s.att, B, &te->proj, NULL);
    }
done:
    ld_aligned_free(s.h);
    ld_aligned_free(s.x);
    ld_aligned_free(s.qkv);
    ld_aligned_free(s.att);
    ld_aligned_free(s.mlp);
    free(s.keep);
    return st;
}

/* ---- model registry (init-random) ---- */

static ld_status record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_clip_text *te;
    LD_TRY(ld_clip_text_build(ctx, where, config, recorder, &te));
    ld_clip_text_free(te);
    return LD_OK;
}

const ld_model_type ld_model_clip_text = {"CLIPTextModel", "model.safetensors", record};
const ld_model_type ld_model_clip_text_proj = {"CLIPTextModelWithProjection", "model.safetensors", record};
