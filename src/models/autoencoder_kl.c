/* AutoencoderKL: config, build, decoder and encoder forward (see
 * autoencoder_kl.h). Tiled decoding lives in autoencoder_kl_tiled.c.
 *
 *   decode: z -> post_quant_conv -> conv_in -> mid (resnet, attention, resnet)
 *           -> up_blocks (resnets, nearest x2 + conv) -> GN, SiLU, conv_out
 *   encode: x -> conv_in -> down_blocks (resnets, pad + conv stride 2)
 *           -> mid -> GN, SiLU, conv_out -> quant_conv = [mean | logvar]
 * Every VAE GroupNorm uses eps 1e-6; ResNets have no time embedding. */
#include "models/autoencoder_kl_internal.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f

/* ---- config ---- */

static ld_status parse_block_types(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key,
                                   const char *want, int n) {
    const char *names[VAE_MAX_BLOCKS];
    int got = 0;
    LD_TRY(ld_json_str_list(ctx, where, cfg, key, names, VAE_MAX_BLOCKS, &got));
    if (got == 0) return LD_OK; /* absent: block_out_channels alone defines the blocks */
    if (got != n)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %s has %d entries but block_out_channels has %d", where, key, got, n);
    for (int i = 0; i < n; i++)
        if (!names[i] || strcmp(names[i], want) != 0)
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s[%d] = \"%s\" is not supported (only %s)", where, key, i,
                           names[i] ? names[i] : "null", want);
    return LD_OK;
}

static ld_status require_null(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key) {
    if (ld_json_missing(cfg, key)) return LD_OK;
    return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: %s is set; only null is supported", where, key);
}

static ld_status parse_config(ld_ctx *ctx, const char *where, const json_t *cfg, vae_config *c) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(cfg)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: the config is not a JSON object", where);
    int64_t v, boc[VAE_MAX_BLOCKS];
    double d;
    int n = 0;
    LD_TRY(ld_json_int_list(ctx, where, cfg, "block_out_channels", boc, VAE_MAX_BLOCKS, 0, &n));
    if (n < 1) return ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels is missing or empty", where);
    c->nblocks = n;
    for (int i = 0; i < n; i++) {
        if (boc[i] < 1 || boc[i] > 65536)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: block_out_channels[%d] = %lld is out of range", where, i,
                           (long long)boc[i]);
        c->block_out_channels[i] = (int)boc[i];
    }
    LD_TRY(parse_block_types(ctx, where, cfg, "down_block_types", "DownEncoderBlock2D", n));
    LD_TRY(parse_block_types(ctx, where, cfg, "up_block_types", "UpDecoderBlock2D", n));
    const char *act;
    LD_TRY(ld_json_str(ctx, where, cfg, "act_fn", "silu", &act));
    if (strcmp(act, "silu") != 0)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: act_fn = \"%s\" is not supported (only silu)", where, act);
    LD_TRY(require_null(ctx, where, cfg, "shift_factor"));
    LD_TRY(require_null(ctx, where, cfg, "latents_mean"));
    LD_TRY(require_null(ctx, where, cfg, "latents_std"));
    LD_TRY(ld_json_int(ctx, where, cfg, "in_channels", 3, &v));
    if (v < 1 || v > 64) return ld_fail(ctx, LD_ERR_MODEL, "%s: in_channels = %lld is out of range", where, (long long)v);
    c->in_channels = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "out_channels", 3, &v));
    if (v < 1 || v > 64) return ld_fail(ctx, LD_ERR_MODEL, "%s: out_channels = %lld is out of range", where, (long long)v);
    c->out_channels = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "latent_channels", 4, &v));
    if (v < 1 || v > 1024)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: latent_channels = %lld is out of range", where, (long long)v);
    c->latent_channels = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "layers_per_block", 1, &v));
    if (v < 1 || v + 1 > VAE_MAX_LAYERS)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: layers_per_block = %lld is out of range", where, (long long)v);
    c->layers_per_block = (int)v;
    LD_TRY(ld_json_int(ctx, where, cfg, "norm_num_groups", 32, &v));
    if (v < 1 || v > 65536)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: norm_num_groups = %lld is out of range", where, (long long)v);
    c->groups = (int)v;
    LD_TRY(ld_json_num(ctx, where, cfg, "scaling_factor", 0.18215, &d));
    if (!(d > 0)) return ld_fail(ctx, LD_ERR_MODEL, "%s: scaling_factor must be positive", where);
    c->scaling_factor = (float)d;
    LD_TRY(ld_json_bool(ctx, where, cfg, "force_upcast", 1, &c->force_upcast));
    LD_TRY(ld_json_bool(ctx, where, cfg, "use_quant_conv", 1, &c->use_quant_conv));
    LD_TRY(ld_json_bool(ctx, where, cfg, "use_post_quant_conv", 1, &c->use_post_quant_conv));
    LD_TRY(ld_json_bool(ctx, where, cfg, "mid_block_add_attention", 1, &c->mid_attention));
    return LD_OK;
}

/* ---- build ---- */

/* Mid-block attention linear: current name or legacy name, [C,C] or [C,C,1,1]. */
static ld_status attn_linear(ld_ctx *ctx, ld_weights *ws, ld_wb *l, const char *prefix, const char *name,
                             const char *legacy, int C) {
    char full[256];
    if (!ld_weights_is_recorder(ws) && !ld_weights_has(ws, "%s%s.weight", prefix, name) &&
        ld_weights_has(ws, "%s%s.weight", prefix, legacy))
        name = legacy;
    snprintf(full, sizeof full, "%s%s.weight", prefix, name);
    const ld_tensor *t = ld_weights_find(ws, full);
    if (t && t->ndim == 4) return ld_get_conv1x1_as_linear(ctx, ws, l, prefix, name, C, C);
    return ld_get_linear(ctx, ws, l, prefix, name, C, C, 1);
}

static ld_status build_mid(ld_ctx *ctx, ld_weights *ws, const vae_config *c, const char *part, vae_mid *m) {
    const int C = c->block_out_channels[c->nblocks - 1];
    char p[128];
    for (int j = 0; j < 2; j++) {
        snprintf(p, sizeof p, "%s.mid_block.resnets.%d.", part, j);
        LD_TRY(ld_resnet_build(ctx, ws, p, &m->resnets[j], C, C, 0, c->groups, VAE_EPS, 1.0f));
    }
    m->has_attention = c->mid_attention;
    if (!m->has_attention) return LD_OK;
    if (C % c->groups)
        return ld_fail(ctx, LD_ERR_MODEL, "%s.mid_block: %d channels are not divisible by norm_num_groups %d", part, C,
                       c->groups);
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.", part);
    m->channels = C;
    LD_TRY(ld_get_norm(ctx, ws, &m->group_norm, p, "group_norm", C));
    LD_TRY(attn_linear(ctx, ws, &m->to_q, p, "to_q", "query", C));
    LD_TRY(attn_linear(ctx, ws, &m->to_k, p, "to_k", "key", C));
    LD_TRY(attn_linear(ctx, ws, &m->to_v, p, "to_v", "value", C));
    return attn_linear(ctx, ws, &m->to_out, p, "to_out.0", "proj_attn", C);
}

static ld_status build_encoder(ld_ctx *ctx, ld_weights *ws, ld_vae *v) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks, clast = c->block_out_channels[n - 1];
    char p[128];
    LD_TRY(ld_get_conv(ctx, ws, &v->enc_conv_in, "encoder.", "conv_in", c->block_out_channels[0], c->in_channels, 3));
    for (int i = 0; i < n; i++) {
        vae_block *b = &v->enc_down[i];
        int cin = c->block_out_channels[i == 0 ? 0 : i - 1];
        b->cout = c->block_out_channels[i];
        b->nlayers = c->layers_per_block;
        for (int j = 0; j < b->nlayers; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d.", i, j);
            LD_TRY(ld_resnet_build(ctx, ws, p, &b->resnets[j], j == 0 ? cin : b->cout, b->cout, 0, c->groups, VAE_EPS,
                                   1.0f));
        }
        b->has_sampler = i != n - 1;
        if (b->has_sampler) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.", i);
            LD_TRY(ld_downsample_build(ctx, ws, p, &b->down, b->cout, 0));
        }
    }
    LD_TRY(build_mid(ctx, ws, c, "encoder", &v->enc_mid));
    LD_TRY(ld_get_norm(ctx, ws, &v->enc_norm_out, "encoder.", "conv_norm_out", clast));
    LD_TRY(ld_get_conv(ctx, ws, &v->enc_conv_out, "encoder.", "conv_out", 2 * c->latent_channels, clast, 3));
    if (c->use_quant_conv)
        LD_TRY(ld_get_conv(ctx, ws, &v->quant_conv, "", "quant_conv", 2 * c->latent_channels, 2 * c->latent_channels,
                           1));
    return LD_OK;
}

static ld_status build_decoder(ld_ctx *ctx, ld_weights *ws, ld_vae *v) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks, c0 = c->block_out_channels[0], clast = c->block_out_channels[n - 1];
    char p[128];
    if (c->use_post_quant_conv)
        LD_TRY(ld_get_conv(ctx, ws, &v->post_quant_conv, "", "post_quant_conv", c->latent_channels,
                           c->latent_channels, 1));
    LD_TRY(ld_get_conv(ctx, ws, &v->dec_conv_in, "decoder.", "conv_in", clast, c->latent_channels, 3));
    LD_TRY(build_mid(ctx, ws, c, "decoder", &v->dec_mid));
    for (int i = 0; i < n; i++) {
        vae_block *b = &v->dec_up[i];
        int cin = c->block_out_channels[i == 0 ? n - 1 : n - i]; /* previous up block's output */
        b->cout = c->block_out_channels[n - 1 - i];
        b->nlayers = c->layers_per_block + 1;
        for (int j = 0; j < b->nlayers; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d.", i, j);
            LD_TRY(ld_resnet_build(ctx, ws, p, &b->resnets[j], j == 0 ? cin : b->cout, b->cout, 0, c->groups, VAE_EPS,
                                   1.0f));
        }
        b->has_sampler = i != n - 1;
        if (b->has_sampler) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.", i);
            LD_TRY(ld_upsample_build(ctx, ws, p, &b->up, b->cout));
        }
    }
    LD_TRY(ld_get_norm(ctx, ws, &v->dec_norm_out, "decoder.", "conv_norm_out", c0));
    return ld_get_conv(ctx, ws, &v->dec_conv_out, "decoder.", "conv_out", c->out_channels, c0, 3);
}

static ld_status build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, int own_ws,
                       ld_vae **out) {
    *out = NULL;
    ld_vae *v;
    LD_TRY(ld_calloc(ctx, (void **)&v, 1, sizeof *v, "AutoencoderKL"));
    ld_arena_init(&v->arena, 0);
    v->tile = 72;
    v->overlap = 16;
    ld_status st = parse_config(ctx, where, config, &v->cfg);
    if (st == LD_OK) {
        st = build_decoder(ctx, ws, v);
        /* The encoder is optional in a file (text-to-image needs only the decoder). */
        v->has_encoder = ld_weights_is_recorder(ws) || ld_weights_has(ws, "encoder.conv_in.weight");
        if (st == LD_OK && v->has_encoder) st = build_encoder(ctx, ws, v);
        if (st != LD_OK) ld_prefix_error(ctx, "%s: ", where);
    }
    if (st != LD_OK) {
        ld_vae_free(v);
        return st;
    }
    v->ws = ws;
    v->owns_ws = own_ws;
    *out = v;
    return LD_OK;
}

ld_status ld_vae_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_vae **out) {
    return build(ctx, where, config, ws, 0, out);
}

void ld_vae_own_weights(ld_vae *v) { v->owns_ws = 1; }

ld_status ld_vae_load(ld_ctx *ctx, const char *vae_dir, const char *variant, ld_vae **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, vae_dir, variant, &f));
    ld_status st = build(ctx, f.where, f.config, f.ws, 1, out); /* the model owns the weights */
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

ld_status ld_vae_record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_vae *v;
    LD_TRY(build(ctx, where, config, recorder, 0, &v));
    ld_vae_free(v);
    return LD_OK;
}

const ld_model_type ld_vae_model_type = {
    .class_name = "AutoencoderKL",
    .weights_file = "diffusion_pytorch_model.safetensors",
    .record = ld_vae_record,
};

void ld_vae_free(ld_vae *v) {
    if (!v) return;
    if (v->owns_ws) ld_weights_free(v->ws);
    ld_arena_free(&v->arena);
    free(v);
}

float ld_vae_scaling_factor(const ld_vae *v) { return v->cfg.scaling_factor; }
int ld_vae_force_upcast(const ld_vae *v) { return v->cfg.force_upcast; }
int ld_vae_latent_channels(const ld_vae *v) { return v->cfg.latent_channels; }
int ld_vae_out_channels(const ld_vae *v) { return v->cfg.out_channels; }
int ld_vae_in_channels(const ld_vae *v) { return v->cfg.in_channels; }
int ld_vae_downscale(const ld_vae *v) { return 1 << (v->cfg.nblocks - 1); }
int ld_vae_has_encoder(const ld_vae *v) { return v->has_encoder; }
size_t ld_vae_activation_bytes(const ld_vae *v) { return v->arena.peak; }

ld_status ld_vae_set_tiling(ld_ctx *ctx, ld_vae *v, int tile, int overlap) {
    if (tile < 4 || tile > 4096 || overlap < 0 || overlap >= tile)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae tiling: need 4 <= tile <= 4096 and 0 <= overlap < tile, "
                                                     "got tile %d overlap %d", tile, overlap);
    v->tile = tile;
    v->overlap = overlap;
    return LD_OK;
}

/* ---- forward (one sample at a time: B = 1 inside) ---- */

/* x [C, HW] += to_out(attention(GN(x))) with one head of width C. */
static ld_status mid_attention(ld_ctx *ctx, ld_arena *a, const vae_mid *m, float *x, int64_t HW, int groups) {
    const int64_t C = m->channels;
    size_t mark = ld_arena_mark(a);
    float *t, *q, *k, *vv, *o;
    LD_ARENA_F32(t, ctx, a, C * HW);
    LD_ARENA_F32(q, ctx, a, C * HW);
    LD_ARENA_F32(k, ctx, a, C * HW);
    LD_ARENA_F32(vv, ctx, a, C * HW);
    LD_ARENA_F32(o, ctx, a, C * HW);
    ld_group_norm(o, x, 1, C, HW, groups, VAE_EPS, &m->group_norm.w, &m->group_norm.b);
    ld_nchw_to_nhwc(t, o, 1, C, HW);
    ld_linear(q, t, HW, &m->to_q.w, &m->to_q.b);
    ld_linear(k, t, HW, &m->to_k.w, &m->to_k.b);
    ld_linear(vv, t, HW, &m->to_v.w, &m->to_v.b);
    ld_attn_params p = {.scale = 1.0f / sqrtf((float)C)};
    LD_TRY(ld_attention_checked(ctx, "VAE", 0, o, C, q, C, k, C, vv, C, 1, 1, HW, HW, C, &p));
    ld_linear(t, o, HW, &m->to_out.w, &m->to_out.b);
    ld_nhwc_to_nchw(q, t, 1, C, HW);
    ld_add(x, x, q, C * HW);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* out = resnet_1(attention(resnet_0(x))); tmp is scratch of the same size
 * (must not alias x or out; out may alias x). */
static ld_status mid_forward(ld_ctx *ctx, ld_arena *a, const vae_mid *m, float *out, float *tmp, const float *x, int H,
                             int W, int groups) {
    LD_TRY(ld_resnet_forward(ctx, a, &m->resnets[0], tmp, x, 1, H, W, NULL));
    LD_TRY(ld_check_cancel(ctx, "VAE"));
    if (m->has_attention) LD_TRY(mid_attention(ctx, a, m, tmp, (int64_t)H * W, groups));
    LD_TRY(ld_resnet_forward(ctx, a, &m->resnets[1], out, tmp, 1, H, W, NULL));
    return ld_check_cancel(ctx, "VAE");
}

/* GN, SiLU, conv 3x3 (the output head of encoder and decoder). */
static ld_status head_forward(ld_ctx *ctx, ld_arena *a, const ld_wb *norm, const ld_wb *conv, int groups, float *out,
                              const float *x, int C, int H, int W) {
    size_t mark = ld_arena_mark(a);
    float *t;
    LD_ARENA_F32(t, ctx, a, (int64_t)C * H * W);
    ld_group_norm_silu(t, x, 1, C, (int64_t)H * W, groups, VAE_EPS, &norm->w, &norm->b);
    ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    ld_conv2d(out, t, 1, C, H, W, &conv->w, &conv->b, &p);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* Largest activation of a decode: any block's channels at its output resolution. */
static int64_t decode_max_floats(const ld_vae *v, int h, int w) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks;
    int64_t maxn = (int64_t)c->block_out_channels[n - 1] * h * w;
    for (int i = 0, f = 1; i < n; i++) {
        const vae_block *b = &v->dec_up[i];
        int64_t cin = b->resnets[0].cin;
        int64_t m = (cin > b->cout ? cin : b->cout) * (int64_t)h * f * w * f;
        if (m > maxn) maxn = m;
        if (b->has_sampler) f *= 2;
        m = (int64_t)b->cout * h * f * w * f;
        if (m > maxn) maxn = m;
    }
    return maxn;
}

double ld_vae_decode_one_floats(const ld_vae *v, int h, int w) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks, clast = c->block_out_channels[n - 1];
    const int64_t hw = (int64_t)h * w;
    /* the two ping-pong buffers, then the largest scratch on top of them */
    double scratch = (double)ld_resnet_scratch_floats(&v->dec_mid.resnets[0], 1, hw);
    if (v->dec_mid.has_attention && 5.0 * clast * hw > scratch) scratch = 5.0 * clast * hw;
    int H = h, W = w, C = clast;
    for (int i = 0; i < n; i++) {
        const vae_block *b = &v->dec_up[i];
        for (int j = 0; j < b->nlayers; j++) {
            const double s = (double)ld_resnet_scratch_floats(&b->resnets[j], 1, (int64_t)H * W);
            if (s > scratch) scratch = s;
            C = b->cout;
        }
        if (b->has_sampler) {
            H *= 2;
            W *= 2;
            if ((double)C * H * W > scratch) scratch = (double)C * H * W;
        }
    }
    if ((double)C * H * W > scratch) scratch = (double)C * H * W; /* the output head */
    return 2.0 * (double)decode_max_floats(v, h, w) + scratch;
}

ld_status ld_vae_decode_one(ld_ctx *ctx, ld_vae *v, const float *z, int h, int w, float *image) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks, clast = c->block_out_channels[n - 1];
    ld_arena *a = &v->arena;
    size_t mark = ld_arena_mark(a);
    const int64_t maxn = decode_max_floats(v, h, w);
    float *pp[2];
    LD_ARENA_F32(pp[0], ctx, a, maxn);
    LD_ARENA_F32(pp[1], ctx, a, maxn);

    /* z -> post_quant_conv -> conv_in */
    const float *x = z;
    if (c->use_post_quant_conv) {
        ld_conv2d_params p1 = ld_conv2d_params_make(1, 0);
        ld_conv2d(pp[1], z, 1, c->latent_channels, h, w, &v->post_quant_conv.w, &v->post_quant_conv.b, &p1);
        x = pp[1];
    }
    ld_conv2d_params p3 = ld_conv2d_params_make(1, 1);
    ld_conv2d(pp[0], x, 1, c->latent_channels, h, w, &v->dec_conv_in.w, &v->dec_conv_in.b, &p3);

    /* mid block */
    LD_TRY(mid_forward(ctx, a, &v->dec_mid, pp[0], pp[1], pp[0], h, w, c->groups));
    int cur = 0, C = clast, H = h, W = w;

    /* up blocks */
    for (int i = 0; i < n; i++) {
        const vae_block *b = &v->dec_up[i];
        for (int j = 0; j < b->nlayers; j++) {
            LD_TRY(ld_resnet_forward(ctx, a, &b->resnets[j], pp[cur ^ 1], pp[cur], 1, H, W, NULL));
            LD_TRY(ld_check_cancel(ctx, "VAE"));
            cur ^= 1;
            C = b->cout;
        }
        if (b->has_sampler) {
            LD_TRY(ld_upsample_forward(ctx, a, &b->up, pp[cur ^ 1], pp[cur], 1, H, W, 2 * H, 2 * W));
            LD_TRY(ld_check_cancel(ctx, "VAE"));
            cur ^= 1;
            H *= 2;
            W *= 2;
        }
    }
    LD_TRY(head_forward(ctx, a, &v->dec_norm_out, &v->dec_conv_out, c->groups, image, pp[cur], C, H, W));
    ld_arena_reset(a, mark);
    return LD_OK;
}

static ld_status encode_one(ld_ctx *ctx, ld_vae *v, const float *img, int H, int W, float *moments, int *ho,
                            int *wo) {
    const vae_config *c = &v->cfg;
    const int n = c->nblocks, c0 = c->block_out_channels[0];
    ld_arena *a = &v->arena;
    size_t mark = ld_arena_mark(a);
    int64_t maxn = 0;
    for (int i = 0; i < n; i++) {
        int64_t m = (int64_t)c->block_out_channels[i] * H * W; /* bound: full resolution */
        if (m > maxn) maxn = m;
    }
    float *pp[2];
    LD_ARENA_F32(pp[0], ctx, a, maxn);
    LD_ARENA_F32(pp[1], ctx, a, maxn);
    ld_conv2d_params p3 = ld_conv2d_params_make(1, 1);
    ld_conv2d(pp[0], img, 1, c->in_channels, H, W, &v->enc_conv_in.w, &v->enc_conv_in.b, &p3);
    int cur = 0, C = c0;
    for (int i = 0; i < n; i++) {
        const vae_block *b = &v->enc_down[i];
        for (int j = 0; j < b->nlayers; j++) {
            LD_TRY(ld_resnet_forward(ctx, a, &b->resnets[j], pp[cur ^ 1], pp[cur], 1, H, W, NULL));
            LD_TRY(ld_check_cancel(ctx, "VAE"));
            cur ^= 1;
            C = b->cout;
        }
        if (b->has_sampler) {
            int Ho, Wo;
            ld_downsample_out_size(&b->down, H, W, &Ho, &Wo);
            LD_TRY(ld_downsample_forward(ctx, a, &b->down, pp[cur ^ 1], pp[cur], 1, H, W));
            LD_TRY(ld_check_cancel(ctx, "VAE"));
            cur ^= 1;
            H = Ho;
            W = Wo;
        }
    }
    LD_TRY(mid_forward(ctx, a, &v->enc_mid, pp[cur], pp[cur ^ 1], pp[cur], H, W, c->groups));
    const int zc = 2 * c->latent_channels;
    float *head = moments;
    if (c->use_quant_conv) LD_ARENA_F32(head, ctx, a, (int64_t)zc * H * W);
    LD_TRY(head_forward(ctx, a, &v->enc_norm_out, &v->enc_conv_out, c->groups, head, pp[cur], C, H, W));
    if (c->use_quant_conv) {
        ld_conv2d_params p1 = ld_conv2d_params_make(1, 0);
        ld_conv2d(moments, head, 1, zc, H, W, &v->quant_conv.w, &v->quant_conv.b, &p1);
    }
    *ho = H;
    *wo = W;
    ld_arena_reset(a, mark);
    return LD_OK;
}

ld_status ld_vae_encode(ld_ctx *ctx, ld_vae *v, const float *image, int B, int H, int W, float *moments) {
    if (ld_weights_is_recorder(v->ws))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae encode: the model was built for recording only");
    if (!v->has_encoder)
        return ld_fail(ctx, LD_ERR_MODEL, "vae encode: %s has no encoder weights (encoder.conv_in.weight)",
                       ld_weights_where(v->ws));
    if (B < 1 || H < 1 || W < 1 || B > 4096 || H > 65536 || W > 65536)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "vae encode: bad sizes B=%d H=%d W=%d", B, H, W);
    /* output size: each downsampler pads one row/column at the end, then stride 2 */
    int ho = H, wo = W;
    for (int i = 0; i < v->cfg.nblocks; i++)
        if (v->enc_down[i].has_sampler) ld_downsample_out_size(&v->enc_down[i].down, ho, wo, &ho, &wo);
    const int64_t in_n = (int64_t)v->cfg.in_channels * H * W;
    const int64_t out_n = (int64_t)2 * v->cfg.latent_channels * ho * wo;
    ld_status st = LD_OK;
    const size_t mark = ld_arena_mark(&v->arena);
    for (int b = 0; b < B && st == LD_OK; b++) {
        int eh, ew;
        st = encode_one(ctx, v, image + b * in_n, H, W, moments + b * out_n, &eh, &ew);
    }
    ld_arena_reset(&v->arena, mark); /* also after a failure (a cancel) half-way through */
    if (st == LD_OK) st = ld_arena_reserve(ctx, &v->arena, v->arena.peak);
    return st;
}
