/* StableCascadeUNet config.json parsing and validation (see stable_cascade_config.h). */
#include "models/stable_cascade_config.h"

#include "io/json.h"

#include <stdio.h>
#include <string.h>

#define SC_MAX_DIM 65536

static ld_status positive(ld_ctx *ctx, const char *where, const char *key, int64_t v, int64_t max) {
    if (v < 1 || v > max)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s = %lld is out of range (1..%lld)", where, key, (long long)v,
                       (long long)max);
    return LD_OK;
}

/* An optional channel count: absent or null -> 0. */
static ld_status opt_channels(ld_ctx *ctx, const char *where, const json_t *j, const char *key, int64_t *out) {
    LD_TRY(ld_json_int(ctx, where, j, key, 0, out));
    if (!ld_json_missing(j, key)) LD_TRY(positive(ctx, where, key, *out, SC_MAX_DIM));
    return LD_OK;
}

/* A per-level integer list that must have `levels` entries (req: must be present). */
static ld_status level_list(ld_ctx *ctx, const char *where, const json_t *j, const char *key, int levels, int req,
                            int64_t dflt, int64_t *out) {
    int n;
    LD_TRY(ld_json_int_list(ctx, where, j, key, out, LD_SC_MAX_LEVELS, 0, &n));
    if (n == 0 && ld_json_missing(j, key)) {
        if (req) return ld_fail(ctx, LD_ERR_MODEL, "%s: %s is missing", where, key);
        for (int i = 0; i < levels; i++) out[i] = dflt;
        return LD_OK;
    }
    if (n != levels)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s has %d entries but block_out_channels has %d", where, key, n, levels);
    return LD_OK;
}

static void reverse(int64_t *v, int n) {
    for (int i = 0; i < n / 2; i++) {
        int64_t t = v[i];
        v[i] = v[n - 1 - i];
        v[n - 1 - i] = t;
    }
}

static ld_status parse_block_types(ld_ctx *ctx, const char *where, const json_t *j, ld_sc_config *c) {
    const json_t *bt = json_object_get(j, "block_types_per_layer");
    if (!bt || json_is_null(bt)) return ld_fail(ctx, LD_ERR_MODEL, "%s: block_types_per_layer is missing", where);
    if (!json_is_array(bt) || json_array_size(bt) != (size_t)c->levels)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: block_types_per_layer must be a list of %d lists", where, c->levels);
    for (int l = 0; l < c->levels; l++) {
        const json_t *lv = json_array_get(bt, (size_t)l);
        size_t n = json_is_array(lv) ? json_array_size(lv) : 0;
        if (n == 0 || n > LD_SC_MAX_BLOCK_TYPES)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: block_types_per_layer[%d] must be a list of 1..%d block types",
                           where, l, LD_SC_MAX_BLOCK_TYPES);
        c->ntypes[l] = (int)n;
        for (size_t k = 0; k < n; k++) {
            const char *s = json_string_value(json_array_get(lv, k));
            if (s && !strcmp(s, "SDCascadeResBlock"))
                c->types[l][k] = LD_SC_RES;
            else if (s && !strcmp(s, "SDCascadeTimestepBlock"))
                c->types[l][k] = LD_SC_TIMESTEP;
            else if (s && !strcmp(s, "SDCascadeAttnBlock"))
                c->types[l][k] = LD_SC_ATTN;
            else
                return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                               "%s: block_types_per_layer[%d][%zu] = %s is not a known block type", where, l, k,
                               s ? s : "(not a string)");
            if (c->types[l][k] == LD_SC_ATTN) {
                if (c->nhead[l] < 1 || c->channels[l] % c->nhead[l] != 0)
                    return ld_fail(ctx, LD_ERR_MODEL,
                                   "%s: num_attention_heads[%d] = %lld must divide block_out_channels[%d] = %lld for "
                                   "the attention blocks of that level",
                                   where, l, (long long)c->nhead[l], l, (long long)c->channels[l]);
            }
        }
    }
    return LD_OK;
}

static ld_status parse_conds(ld_ctx *ctx, const char *where, const json_t *j, ld_sc_config *c) {
    const char *names[LD_SC_MAX_CONDS];
    int n;
    if (ld_json_missing(j, "timestep_conditioning_type")) { /* diffusers' default */
        c->nconds = 2;
        strcpy(c->conds[0], "sca");
        strcpy(c->conds[1], "crp");
        return LD_OK;
    }
    LD_TRY(ld_json_str_list(ctx, where, j, "timestep_conditioning_type", names, LD_SC_MAX_CONDS, &n));
    c->nconds = n;
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0] || strlen(names[i]) >= sizeof c->conds[i])
            return ld_fail(ctx, LD_ERR_MODEL, "%s: timestep_conditioning_type[%d] must be a short name", where, i);
        strcpy(c->conds[i], names[i]);
    }
    return LD_OK;
}

static ld_status parse_self_attn(ld_ctx *ctx, const char *where, const json_t *j, ld_sc_config *c) {
    const json_t *v = json_object_get(j, "self_attn");
    for (int l = 0; l < c->levels; l++) c->self_attn[l] = 1;
    if (!v || json_is_null(v)) return LD_OK;
    if (json_is_boolean(v)) {
        for (int l = 0; l < c->levels; l++) c->self_attn[l] = json_is_true(v);
        return LD_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != (size_t)c->levels)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: self_attn must be a boolean or a list of %d booleans", where, c->levels);
    for (int l = 0; l < c->levels; l++) {
        const json_t *e = json_array_get(v, (size_t)l);
        if (!json_is_boolean(e)) return ld_fail(ctx, LD_ERR_MODEL, "%s: self_attn[%d] must be a boolean", where, l);
        c->self_attn[l] = json_is_true(e);
    }
    return LD_OK;
}

static ld_status parse_switch_level(ld_ctx *ctx, const char *where, const json_t *j, ld_sc_config *c) {
    const json_t *v = json_object_get(j, "switch_level");
    c->updown_1x1 = 0;
    if (!v || json_is_null(v)) return LD_OK;
    if (!json_is_array(v) || json_array_size(v) != (size_t)(c->levels - 1))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: switch_level must be null or a list of %d booleans (levels - 1)", where,
                       c->levels - 1);
    for (int l = 0; l + 1 < c->levels; l++) {
        const json_t *e = json_array_get(v, (size_t)l);
        if (!json_is_boolean(e)) return ld_fail(ctx, LD_ERR_MODEL, "%s: switch_level[%d] must be a boolean", where, l);
        if (json_is_true(e))
            return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                           "%s: switch_level[%d] = true (resampling UpDownBlock2d) is not supported; released "
                           "checkpoints use false",
                           where, l);
    }
    c->updown_1x1 = 1;
    return LD_OK;
}

ld_status ld_sc_config_parse(ld_ctx *ctx, const char *where, const json_t *j, ld_sc_config *c) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(j)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: config must be a JSON object", where);
    LD_TRY(ld_json_int(ctx, where, j, "in_channels", 16, &c->in_channels));
    LD_TRY(positive(ctx, where, "in_channels", c->in_channels, 4096));
    LD_TRY(ld_json_int(ctx, where, j, "out_channels", 16, &c->out_channels));
    LD_TRY(positive(ctx, where, "out_channels", c->out_channels, 4096));
    LD_TRY(ld_json_int(ctx, where, j, "patch_size", 1, &c->patch_size));
    LD_TRY(positive(ctx, where, "patch_size", c->patch_size, 16));
    LD_TRY(ld_json_int(ctx, where, j, "timestep_ratio_embedding_dim", 64, &c->c_r));
    LD_TRY(positive(ctx, where, "timestep_ratio_embedding_dim", c->c_r, 4096));
    if (c->c_r < 4) return ld_fail(ctx, LD_ERR_MODEL, "%s: timestep_ratio_embedding_dim must be at least 4", where);
    LD_TRY(ld_json_int(ctx, where, j, "conditioning_dim", 2048, &c->cond_dim));
    LD_TRY(positive(ctx, where, "conditioning_dim", c->cond_dim, SC_MAX_DIM));
    LD_TRY(ld_json_int(ctx, where, j, "clip_seq", 4, &c->clip_seq));
    LD_TRY(positive(ctx, where, "clip_seq", c->clip_seq, 1024));
    LD_TRY(ld_json_int(ctx, where, j, "clip_text_pooled_in_channels", 1280, &c->clip_pooled_in));
    LD_TRY(positive(ctx, where, "clip_text_pooled_in_channels", c->clip_pooled_in, SC_MAX_DIM));
    LD_TRY(opt_channels(ctx, where, j, "clip_text_in_channels", &c->clip_text_in));
    LD_TRY(opt_channels(ctx, where, j, "clip_image_in_channels", &c->clip_img_in));
    LD_TRY(opt_channels(ctx, where, j, "effnet_in_channels", &c->effnet_in));
    LD_TRY(opt_channels(ctx, where, j, "pixel_mapper_in_channels", &c->pixel_in));
    LD_TRY(ld_json_int(ctx, where, j, "kernel_size", 3, &c->kernel_size));
    LD_TRY(positive(ctx, where, "kernel_size", c->kernel_size, 31));
    if (c->kernel_size % 2 == 0)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: kernel_size = %lld must be odd", where, (long long)c->kernel_size);

    int n;
    LD_TRY(ld_json_int_list(ctx, where, j, "block_out_channels", c->channels, LD_SC_MAX_LEVELS, 0, &n));
    if (n == 0) return ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels is missing or empty", where);
    c->levels = n;
    for (int l = 0; l < n; l++) {
        char key[64];
        snprintf(key, sizeof key, "block_out_channels[%d]", l);
        LD_TRY(positive(ctx, where, key, c->channels[l], SC_MAX_DIM));
    }
    /* num_attention_heads may hold 0 or -1 on levels without attention. */
    LD_TRY(level_list(ctx, where, j, "num_attention_heads", n, 1, 0, c->nhead));
    LD_TRY(level_list(ctx, where, j, "down_num_layers_per_block", n, 1, 0, c->down_layers));
    LD_TRY(level_list(ctx, where, j, "up_num_layers_per_block", n, 1, 0, c->up_layers));
    LD_TRY(level_list(ctx, where, j, "down_blocks_repeat_mappers", n, 0, 1, c->down_passes));
    LD_TRY(level_list(ctx, where, j, "up_blocks_repeat_mappers", n, 0, 1, c->up_passes));
    reverse(c->up_layers, n);
    reverse(c->up_passes, n);
    for (int l = 0; l < n; l++) {
        char key[64];
        snprintf(key, sizeof key, "down_num_layers_per_block[%d]", l);
        LD_TRY(positive(ctx, where, key, c->down_layers[l], 1024));
        snprintf(key, sizeof key, "up_num_layers_per_block[%d]", n - 1 - l);
        LD_TRY(positive(ctx, where, key, c->up_layers[l], 1024));
        snprintf(key, sizeof key, "down_blocks_repeat_mappers[%d]", l);
        LD_TRY(positive(ctx, where, key, c->down_passes[l], 64));
        snprintf(key, sizeof key, "up_blocks_repeat_mappers[%d]", n - 1 - l);
        LD_TRY(positive(ctx, where, key, c->up_passes[l], 64));
    }
    LD_TRY(parse_block_types(ctx, where, j, c));
    LD_TRY(parse_self_attn(ctx, where, j, c));
    LD_TRY(parse_conds(ctx, where, j, c));
    LD_TRY(parse_switch_level(ctx, where, j, c));
    if (!!c->clip_text_in != !!c->clip_img_in)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: clip_text_in_channels and clip_image_in_channels must be given together (the prior) or "
                       "both be null (the decoder)",
                       where);
    return LD_OK;
}

void ld_sc_config_deepest_size(const ld_sc_config *cfg, int64_t h, int64_t w, int64_t *dh, int64_t *dw) {
    for (int l = 1; l < cfg->levels && !cfg->updown_1x1; l++) {
        h /= 2;
        w /= 2;
    }
    *dh = h;
    *dw = w;
}
