/* Reading unet/config.json into the U-Net's structure (unet2d_internal.h),
 * as diffusers' UNet2DConditionModel.__init__ interprets it, and rejecting
 * every option this engine cannot run with a message naming the field. */
#include "models/unet2d_internal.h"

#include "io/json.h"

#include <stdlib.h>
#include <string.h>

/* Fails unless config[key] is absent, null, or equal to the JSON value `ok`
 * (NULL: only absent/null/false/0 accepted). */
static ld_status require_default(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key,
                                 const char *ok_str) {
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v) || json_is_false(v)) return LD_OK;
    if (json_is_integer(v) && json_integer_value(v) == 0) return LD_OK;
    if (ok_str && json_is_string(v) && strcmp(json_string_value(v), ok_str) == 0) return LD_OK;
    char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    ld_status st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s = %s is not supported (only %s)", where, key,
                           txt ? txt : "?", ok_str ? ok_str : "null/false");
    free(txt);
    return st;
}

/* A bool or a list of bools that must all be false. */
static ld_status require_all_false(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_false(e) && !json_is_null(e))
                return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s[%zu] must be false (not supported)", where, key, i);
        }
        return LD_OK;
    }
    return require_default(ctx, where, cfg, key, NULL);
}

/* An int or a list of n ints (positive). */
static ld_status int_per_block(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key, int n,
                               int64_t dflt, int *out) {
    int64_t v[UNET_MAX_BLOCKS];
    int got = 0;
    LD_TRY(ld_json_int_list(ctx, where, cfg, key, v, UNET_MAX_BLOCKS, n, &got));
    if (got == 0) {
        if (dflt < 0) return ld_fail(ctx, LD_ERR_MODEL, "%s: %s is missing", where, key);
        for (int i = 0; i < n; i++) v[i] = dflt;
        got = n;
    }
    if (got != n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s has %d entries but down_block_types has %d", where, key, got, n);
    for (int i = 0; i < n; i++) {
        if (v[i] < 1 || v[i] > 1 << 20)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d] = %lld is out of range", where, key, i, (long long)v[i]);
        out[i] = (int)v[i];
    }
    return LD_OK;
}

/* One entry of (reverse_)transformer_layers_per_block: an int for every layer
 * of the block, or a list with one depth per layer. */
static ld_status depth_entry(ld_ctx *ctx, const char *where, const char *key, int i, const json_t *e, int nlayers,
                             int *out) {
    if (json_is_integer(e)) {
        for (int j = 0; j < nlayers; j++) out[j] = (int)json_integer_value(e);
    } else if (json_is_array(e)) {
        if ((int)json_array_size(e) != nlayers)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d] has %zu entries, the block has %d layers", where, key, i,
                           json_array_size(e), nlayers);
        for (int j = 0; j < nlayers; j++) {
            const json_t *d = json_array_get(e, (size_t)j);
            if (!json_is_integer(d))
                return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d][%d] must be an integer", where, key, i, j);
            out[j] = (int)json_integer_value(d);
        }
    } else {
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d] must be an integer or a list, got %s", where, key, i,
                       ld_json_type_name(e));
    }
    for (int j = 0; j < nlayers; j++)
        if (out[j] < 0 || out[j] > 1000)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d] depth %d is out of range", where, key, i, out[j]);
    return LD_OK;
}

/* (reverse_)transformer_layers_per_block: an int, or a list of n entries
 * (see depth_entry). nlayers[i] is the number of layers of block i. */
static ld_status depths_per_block(ld_ctx *ctx, const char *where, const json_t *v, const char *key, int n,
                                  const int *nlayers, int out[][UNET_MAX_LAYERS]) {
    if (!v || json_is_integer(v)) {
        int d = v ? (int)json_integer_value(v) : 1;
        if (d < 0 || d > 1000) return ld_fail(ctx, LD_ERR_MODEL, "%s: %s = %d is out of range", where, key, d);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nlayers[i]; j++) out[i][j] = d;
        return LD_OK;
    }
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s must be an integer or a list of %d entries (one per block)", where,
                       key, n);
    for (int i = 0; i < n; i++)
        LD_TRY(depth_entry(ctx, where, key, i, json_array_get(v, (size_t)i), nlayers[i], out[i]));
    return LD_OK;
}

static const json_t *non_null(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    return v && !json_is_null(v) ? v : NULL;
}

static ld_status reject_unsupported(ld_ctx *ctx, const char *where, const json_t *cfg) {
    static const char *const must_be_null[] = {
        "class_embed_type",     "num_class_embeds",    "time_cond_proj_dim",      "encoder_hid_dim",
        "encoder_hid_dim_type", "dual_cross_attention", "resnet_skip_time_act",   "time_embedding_act_fn",
        "timestep_post_act",    "class_embeddings_concat", "cross_attention_norm", "mid_block_only_cross_attention",
    };
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        LD_TRY(require_default(ctx, where, cfg, must_be_null[i], NULL));
    LD_TRY(require_all_false(ctx, where, cfg, "only_cross_attention"));
    LD_TRY(require_default(ctx, where, cfg, "attention_type", "default"));
    LD_TRY(require_default(ctx, where, cfg, "resnet_time_scale_shift", "default"));
    LD_TRY(require_default(ctx, where, cfg, "time_embedding_type", "positional"));
    LD_TRY(require_default(ctx, where, cfg, "act_fn", "silu"));
    LD_TRY(require_default(ctx, where, cfg, "addition_embed_type", "text_time"));
    const json_t *g = json_object_get(cfg, "norm_num_groups");
    if (g && json_is_null(g))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: norm_num_groups = null (no output norm) is not supported", where);
    return LD_OK;
}

static ld_status block_types(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key, const char *plain,
                             const char *cross, int *cross_attn, int *n) {
    const char *names[UNET_MAX_BLOCKS];
    LD_TRY(ld_json_str_list(ctx, where, cfg, key, names, UNET_MAX_BLOCKS, n));
    if (*n < 1) return ld_fail(ctx, LD_ERR_MODEL, "%s: %s is missing or empty", where, key);
    for (int i = 0; i < *n; i++) {
        if (names[i] && !strcmp(names[i], plain)) cross_attn[i] = 0;
        else if (names[i] && !strcmp(names[i], cross)) cross_attn[i] = 1;
        else
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s[%d] = \"%s\" is not supported (%s or %s)", where, key, i,
                           names[i] ? names[i] : "null", plain, cross);
    }
    return LD_OK;
}

/* attention_head_dim / num_attention_heads: diffusers uses
 * num_attention_heads or, when it is null, attention_head_dim (a legacy
 * misnomer: it is the number of heads) as the head count of each block. */
static ld_status head_counts(ld_ctx *ctx, const char *where, const json_t *cfg, int n, int *heads) {
    const char *key = non_null(cfg, "num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    return int_per_block(ctx, where, cfg, key, n, 8, heads);
}

static ld_status cross_attention_dim(ld_ctx *ctx, const char *where, const json_t *cfg, int n, int *out) {
    int dims[UNET_MAX_BLOCKS];
    LD_TRY(int_per_block(ctx, where, cfg, "cross_attention_dim", n, 1280, dims));
    for (int i = 1; i < n; i++)
        if (dims[i] != dims[0])
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: cross_attention_dim differs between blocks (not supported)",
                           where);
    *out = dims[0];
    return LD_OK;
}

ld_status ld_unet2d_parse_config(ld_ctx *ctx, const char *where, const json_t *cfg, unet_config *c) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(cfg)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: the config is not a JSON object", where);
    LD_TRY(reject_unsupported(ctx, where, cfg));
    int64_t v;
    double d;
    LD_TRY(ld_json_int(ctx, where, cfg, "in_channels", 4, &v));
    if (v < 1 || v > 4096) return ld_fail(ctx, LD_ERR_MODEL, "%s: in_channels = %lld is out of range", where, (long long)v);
    c->in_channels = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "out_channels", 4, &v));
    if (v < 1 || v > 4096) return ld_fail(ctx, LD_ERR_MODEL, "%s: out_channels = %lld is out of range", where, (long long)v);
    c->out_channels = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "sample_size", 128, &v));
    if (v < 1 || v > 65536) return ld_fail(ctx, LD_ERR_MODEL, "%s: sample_size = %lld is out of range", where, (long long)v);
    c->sample_size = (int)v;
    LD_TRY(ld_json_bool(ctx, where, cfg, "center_input_sample", 0, &c->center_input_sample));
    LD_TRY(ld_json_bool(ctx, where, cfg, "flip_sin_to_cos", 1, &c->flip_sin_to_cos));
    LD_TRY(ld_json_num(ctx, where, cfg, "freq_shift", 0, &d));
    c->freq_shift = (float)d;

    int n, nup;
    LD_TRY(block_types(ctx, where, cfg, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D", c->down_cross_attn,
                       &n));
    LD_TRY(block_types(ctx, where, cfg, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D", c->up_cross_attn, &nup));
    if (nup != n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: up_block_types has %d entries but down_block_types has %d", where, nup,
                       n);
    c->nblocks = n;
    int64_t boc[UNET_MAX_BLOCKS];
    int nb = 0;
    LD_TRY(ld_json_int_list(ctx, where, cfg, "block_out_channels", boc, UNET_MAX_BLOCKS, 0, &nb));
    if (nb != n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels has %d entries but down_block_types has %d", where,
                       nb, n);
    for (int i = 0; i < n; i++) {
        if (boc[i] < 1 || boc[i] > 65536)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels[%d] = %lld is out of range", where, i,
                           (long long)boc[i]);
        c->block_out_channels[i] = (int)boc[i];
    }
    LD_TRY(int_per_block(ctx, where, cfg, "layers_per_block", n, 2, c->layers_per_block));
    for (int i = 0; i < n; i++)
        if (c->layers_per_block[i] + 1 > UNET_MAX_LAYERS)
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: layers_per_block[%d] = %d is too large (max %d)", where, i,
                           c->layers_per_block[i], UNET_MAX_LAYERS - 1);
    LD_TRY(head_counts(ctx, where, cfg, n, c->heads));
    LD_TRY(cross_attention_dim(ctx, where, cfg, n, &c->cross_attention_dim));
    LD_TRY(ld_json_bool(ctx, where, cfg, "use_linear_projection", 0, &c->linear_projection));

    /* Transformer depths: down block i uses entry i, the mid block the last
     * entry, up block i entry i of the reverse list (default: reversed). */
    int up_layers[UNET_MAX_BLOCKS];
    for (int i = 0; i < n; i++) up_layers[i] = c->layers_per_block[n - 1 - i] + 1;
    const json_t *tl = non_null(cfg, "transformer_layers_per_block");
    LD_TRY(depths_per_block(ctx, where, tl, "transformer_layers_per_block", n, c->layers_per_block, c->down_depth));
    const json_t *rtl = non_null(cfg, "reverse_transformer_layers_per_block");
    if (rtl) {
        LD_TRY(depths_per_block(ctx, where, rtl, "reverse_transformer_layers_per_block", n, up_layers, c->up_depth));
    } else if (tl && json_is_array(tl)) {
        /* reversed(list): entry i of the up path is entry n-1-i, spread over its layers */
        for (int i = 0; i < n; i++) {
            const json_t *e = json_array_get(tl, (size_t)(n - 1 - i));
            if (!json_is_integer(e))
                return ld_fail(ctx, LD_ERR_MODEL,
                               "%s: transformer_layers_per_block has per-layer lists; reverse_transformer_layers_per_block is required",
                               where);
            for (int j = 0; j < up_layers[i]; j++) c->up_depth[i][j] = (int)json_integer_value(e);
        }
    } else {
        LD_TRY(depths_per_block(ctx, where, tl, "transformer_layers_per_block", n, up_layers, c->up_depth));
    }
    c->mid_depth = c->down_depth[n - 1][0];

    const json_t *mid = json_object_get(cfg, "mid_block_type");
    if (!mid) {
        c->has_mid = 1; /* diffusers' default */
    } else if (json_is_null(mid)) {
        c->has_mid = 0;
    } else if (json_is_string(mid) && !strcmp(json_string_value(mid), "UNetMidBlock2DCrossAttn")) {
        c->has_mid = 1;
    } else {
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: mid_block_type = %s is not supported (UNetMidBlock2DCrossAttn or null)", where,
                       json_is_string(mid) ? json_string_value(mid) : ld_json_type_name(mid));
    }
    LD_TRY(ld_json_num(ctx, where, cfg, "mid_block_scale_factor", 1.0, &d));
    if (!(d > 0)) return ld_fail(ctx, LD_ERR_MODEL, "%s: mid_block_scale_factor must be positive", where);
    c->mid_scale = (float)d;
    LD_TRY(ld_json_num(ctx, where, cfg, "resnet_out_scale_factor", 1.0, &d));
    if (!(d > 0)) return ld_fail(ctx, LD_ERR_MODEL, "%s: resnet_out_scale_factor must be positive", where);
    c->resnet_out_scale = (float)d;
    LD_TRY(ld_json_int(ctx, where, cfg, "downsample_padding", 1, &v));
    if (v != 0 && v != 1)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: downsample_padding = %lld is not supported (0 or 1)", where,
                       (long long)v);
    c->downsample_padding = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "norm_num_groups", 32, &v));
    if (v < 1 || v > 65536)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: norm_num_groups = %lld is out of range", where, (long long)v);
    c->groups = (int)v;
    LD_TRY(ld_json_num(ctx, where, cfg, "norm_eps", 1e-5, &d));
    if (!(d > 0)) return ld_fail(ctx, LD_ERR_MODEL, "%s: norm_eps must be positive", where);
    c->eps = (float)d;
    LD_TRY(ld_json_int(ctx, where, cfg, "conv_in_kernel", 3, &v));
    if (v < 1 || v > 15 || v % 2 == 0)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: conv_in_kernel = %lld is not an odd size <= 15", where,
                       (long long)v);
    c->conv_in_kernel = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "conv_out_kernel", 3, &v));
    if (v < 1 || v > 15 || v % 2 == 0)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: conv_out_kernel = %lld is not an odd size <= 15", where,
                       (long long)v);
    c->conv_out_kernel = (int)v;

    c->time_in_dim = c->block_out_channels[0];
    LD_TRY(ld_json_int(ctx, where, cfg, "time_embedding_dim", 4 * (int64_t)c->block_out_channels[0], &v));
    if (v < 1 || v > 65536)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: time_embedding_dim = %lld is out of range", where, (long long)v);
    c->temb_dim = (int)v;

    if (non_null(cfg, "addition_embed_type")) { /* text_time (anything else was rejected) */
        LD_TRY(ld_json_int_req(ctx, where, cfg, "addition_time_embed_dim", &v));
        if (v < 1 || v > 65536)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: addition_time_embed_dim = %lld is out of range", where,
                           (long long)v);
        c->add_time_dim = (int)v;
        LD_TRY(ld_json_int_req(ctx, where, cfg, "projection_class_embeddings_input_dim", &v));
        if (v <= 6 * (int64_t)c->add_time_dim || v > 1 << 20)
            return ld_fail(ctx, LD_ERR_MODEL,
                           "%s: projection_class_embeddings_input_dim = %lld leaves no room for text_embeds next to 6 "
                           "time ids x addition_time_embed_dim %d",
                           where, (long long)v, c->add_time_dim);
        c->add_in_dim = (int)v;
        c->text_embeds_dim = c->add_in_dim - 6 * c->add_time_dim;
    }
    return LD_OK;
}
