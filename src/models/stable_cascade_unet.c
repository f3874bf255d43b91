/* StableCascadeUNet: building from config.json + weights, and the model
 * registry entry (see stable_cascade_unet.h; forward in stable_cascade_forward.c). */
#include "models/stable_cascade_unet.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "models/stability_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GET(t, nd, shp, ...) LD_TRY(ld_weights_get(ctx, ws, (t), (nd), (shp), __VA_ARGS__))

static ld_status get_linear(ld_ctx *ctx, ld_weights *ws, ld_tensor *w, ld_tensor *b, int64_t out, int64_t in,
                            const char *name) {
    int64_t ws_[2] = {out, in}, bs[1] = {out};
    GET(w, 2, ws_, "%s.weight", name);
    GET(b, 1, bs, "%s.bias", name);
    return LD_OK;
}

/* Conv2d(in -> out, k x k) with bias; transposed: weight [in, out, k, k]. */
static ld_status get_conv(ld_ctx *ctx, ld_weights *ws, ld_tensor *w, ld_tensor *b, int64_t out, int64_t in, int64_t k,
                          int transposed, const char *name) {
    int64_t ws_[4] = {transposed ? in : out, transposed ? out : in, k, k}, bs[1] = {out};
    GET(w, 4, ws_, "%s.weight", name);
    GET(b, 1, bs, "%s.bias", name);
    return LD_OK;
}

/* One list of blocks: `layers` repeats of the level's pattern under prefix
 * "down_blocks.L." or "up_blocks.i."; c_skip goes to the first block only. */
static ld_status build_stack(ld_ctx *ctx, ld_weights *ws, const ld_sc_config *c, int L, int64_t layers, int64_t passes,
                             int64_t c_skip, const char *blocks_prefix, const char *maps_prefix, ld_sc_stack *s) {
    const char *conds[LD_SC_MAX_CONDS + 1];
    for (int i = 0; i < c->nconds; i++) conds[i] = c->conds[i];
    conds[c->nconds] = NULL;
    int64_t ch = c->channels[L];
    s->nblocks = (int)(layers * c->ntypes[L]);
    LD_TRY(ld_calloc(ctx, (void **)&s->blocks, (size_t)s->nblocks, sizeof *s->blocks, "StableCascadeUNet blocks"));
    for (int k = 0; k < s->nblocks; k++) {
        ld_sc_block *b = &s->blocks[k];
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s%d.", blocks_prefix, k);
        b->kind = c->types[L][k % c->ntypes[L]];
        if (b->kind == LD_SC_RES)
            LD_TRY(wu_resblock_build(ctx, ws, &b->u.res, prefix, ch, k == 0 ? c_skip : 0, WU_RES_STAGE_B));
        else if (b->kind == LD_SC_TIMESTEP)
            LD_TRY(wu_timestep_block_build(ctx, ws, &b->u.ts, prefix, ch, c->c_r, conds));
        else
            LD_TRY(wu_attn_block_build(ctx, ws, &b->u.attn, prefix, ch, c->cond_dim, c->nhead[L]));
    }
    s->nmaps = (int)(passes - 1);
    if (s->nmaps > 0) {
        LD_TRY(ld_calloc(ctx, (void **)&s->map_w, (size_t)s->nmaps, sizeof *s->map_w, "repeat mappers"));
        LD_TRY(ld_calloc(ctx, (void **)&s->map_b, (size_t)s->nmaps, sizeof *s->map_b, "repeat mappers"));
    }
    for (int j = 0; j < s->nmaps; j++) {
        char name[128];
        snprintf(name, sizeof name, "%s%d", maps_prefix, j);
        LD_TRY(get_conv(ctx, ws, &s->map_w[j], &s->map_b[j], ch, ch, 1, 0, name));
    }
    return LD_OK;
}

static ld_status build_levels(ld_ctx *ctx, ld_weights *ws, ld_sc_unet *m) {
    const ld_sc_config *c = &m->cfg;
    int n = c->levels;
    for (int L = 0; L < n; L++) {
        ld_sc_level *lv = &m->level[L];
        int i = n - 1 - L; /* index of this level on the up path */
        char bp[64], mp[64], name[128];
        snprintf(bp, sizeof bp, "down_blocks.%d.", L);
        snprintf(mp, sizeof mp, "down_repeat_mappers.%d.", L);
        LD_TRY(build_stack(ctx, ws, c, L, c->down_layers[L], c->down_passes[L], 0, bp, mp, &lv->down));
        snprintf(bp, sizeof bp, "up_blocks.%d.", i);
        snprintf(mp, sizeof mp, "up_repeat_mappers.%d.", i);
        LD_TRY(build_stack(ctx, ws, c, L, c->up_layers[L], c->up_passes[L], L < n - 1 ? c->channels[L] : 0, bp, mp,
                           &lv->up));
        if (L == 0) continue;
        if (c->updown_1x1) { /* UpDownBlock2d(enabled=False): [conv, Identity] down, [Identity, conv] up */
            snprintf(name, sizeof name, "down_downscalers.%d.1.blocks.0", L);
            LD_TRY(get_conv(ctx, ws, &lv->down_w, &lv->down_b, c->channels[L], c->channels[L - 1], 1, 0, name));
            snprintf(name, sizeof name, "up_upscalers.%d.1.blocks.1", i);
            LD_TRY(get_conv(ctx, ws, &lv->up_w, &lv->up_b, c->channels[L - 1], c->channels[L], 1, 0, name));
        } else {
            snprintf(name, sizeof name, "down_downscalers.%d.1", L);
            LD_TRY(get_conv(ctx, ws, &lv->down_w, &lv->down_b, c->channels[L], c->channels[L - 1], 2, 0, name));
            snprintf(name, sizeof name, "up_upscalers.%d.1", i);
            LD_TRY(get_conv(ctx, ws, &lv->up_w, &lv->up_b, c->channels[L - 1], c->channels[L], 2, 1, name));
        }
    }
    return LD_OK;
}

static ld_status build_weights(ld_ctx *ctx, ld_weights *ws, ld_sc_unet *m) {
    const ld_sc_config *c = &m->cfg;
    int64_t c0 = c->channels[0], p2 = c->patch_size * c->patch_size;
    LD_TRY(get_conv(ctx, ws, &m->emb_w, &m->emb_b, c0, c->in_channels * p2, 1, 0, "embedding.1"));
    LD_TRY(get_conv(ctx, ws, &m->clf_w, &m->clf_b, c->out_channels * p2, c0, 1, 0, "clf.1"));
    LD_TRY(get_linear(ctx, ws, &m->pooled_w, &m->pooled_b, c->cond_dim * c->clip_seq, c->clip_pooled_in,
                      "clip_txt_pooled_mapper"));
    if (c->clip_text_in)
        LD_TRY(get_linear(ctx, ws, &m->text_w, &m->text_b, c->cond_dim, c->clip_text_in, "clip_txt_mapper"));
    if (c->clip_img_in)
        LD_TRY(get_linear(ctx, ws, &m->img_w, &m->img_b, c->cond_dim * c->clip_seq, c->clip_img_in, "clip_img_mapper"));
    if (c->effnet_in) {
        LD_TRY(get_conv(ctx, ws, &m->effnet_w[0], &m->effnet_b[0], 4 * c0, c->effnet_in, 1, 0, "effnet_mapper.0"));
        LD_TRY(get_conv(ctx, ws, &m->effnet_w[1], &m->effnet_b[1], c0, 4 * c0, 1, 0, "effnet_mapper.2"));
    }
    if (c->pixel_in) {
        LD_TRY(get_conv(ctx, ws, &m->pixels_w[0], &m->pixels_b[0], 4 * c0, c->pixel_in, 1, 0, "pixels_mapper.0"));
        LD_TRY(get_conv(ctx, ws, &m->pixels_w[1], &m->pixels_b[1], c0, 4 * c0, 1, 0, "pixels_mapper.2"));
    }
    return build_levels(ctx, ws, m);
}

/* What the shared blocks implement: 3x3 depthwise convs and self-attention. */
static ld_status check_supported(ld_ctx *ctx, const char *where, const ld_sc_config *c) {
    if (c->kernel_size != 3)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: kernel_size = %lld is not supported (only 3)", where,
                       (long long)c->kernel_size);
    for (int L = 0; L < c->levels; L++)
        if (!c->self_attn[L] && memchr(c->types[L], LD_SC_ATTN, (size_t)c->ntypes[L]))
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: self_attn[%d] = false is not supported", where, L);
    if (c->nconds > WU_MAX_CONDS)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: at most %d timestep_conditioning_type entries are supported",
                       where, WU_MAX_CONDS);
    return LD_OK;
}

ld_status ld_sc_unet_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_sc_unet **out) {
    *out = NULL;
    ld_sc_unet *m;
    LD_TRY(ld_calloc(ctx, (void **)&m, 1, sizeof *m, "StableCascadeUNet"));
    for (int l = 0; l < WU_LANES; l++) ld_arena_init(&m->arena[l], 0);
    ld_status st = ld_sc_config_parse(ctx, where, config, &m->cfg);
    if (st == LD_OK) st = check_supported(ctx, where, &m->cfg);
    if (st == LD_OK) st = build_weights(ctx, ws, m);
    if (st != LD_OK) {
        ld_sc_unet_free(m);
        return st;
    }
    m->ws = ws;
    *out = m;
    return LD_OK;
}

ld_status ld_sc_unet_load(ld_ctx *ctx, const char *dir, const char *variant, const char *weights_file,
                          ld_sc_unet **out) {
    *out = NULL;
    ld_component_files f;
    ld_status st;
    if (weights_file) { /* config from dir, weights from one Stability file, read through aliases */
        memset(&f, 0, sizeof f);
        LD_TRY(ld_component_config(ctx, dir, &f.config));
        snprintf(f.where, sizeof f.where, "%s/config.json", dir);
        st = ld_weights_open_file(ctx, weights_file, &f.ws);
        if (st == LD_OK) st = ld_stability_alias_unet(ctx, f.ws);
    } else {
        st = ld_component_files_open(ctx, dir, variant, &f);
    }
    if (st == LD_OK) st = ld_sc_unet_build(ctx, f.where, f.config, f.ws, out);
    if (st == LD_OK) (*out)->owns_ws = 1;
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

static void free_stack(ld_sc_stack *s) {
    for (int k = 0; s->blocks && k < s->nblocks; k++)
        if (s->blocks[k].kind == LD_SC_ATTN) wu_attn_block_free(&s->blocks[k].u.attn);
    free(s->blocks);
    free(s->map_w);
    free(s->map_b);
}

void ld_sc_unet_free(ld_sc_unet *m) {
    if (!m) return;
    for (int L = 0; L < LD_SC_MAX_LEVELS; L++) {
        free_stack(&m->level[L].down);
        free_stack(&m->level[L].up);
    }
    if (m->owns_ws) ld_weights_free(m->ws);
    for (int l = 0; l < WU_LANES; l++) {
        ld_arena_free(&m->arena[l]);
        wu_cond_memo_free(&m->memo[l]);
    }
    free(m);
}

static ld_status record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_sc_unet *m;
    LD_TRY(ld_sc_unet_build(ctx, where, config, recorder, &m));
    ld_sc_unet_free(m);
    return LD_OK;
}

const ld_model_type ld_model_stable_cascade_unet = {
    .class_name = "StableCascadeUNet",
    .weights_file = "diffusion_pytorch_model.safetensors",
    .record = record,
};
