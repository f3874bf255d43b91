/* AutoencoderTiny (see autoencoder_tiny.h): the layer list of diffusers'
 * EncoderTiny / DecoderTiny built from the config, and a forward that runs it
 * over three activation buffers (the current tensor and two scratch ones,
 * each the largest activation of the stack), one image of the batch at a time. */
#include "models/autoencoder_tiny.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ld_status add_layer(ld_ctx *ctx, const char *where, ld_vae_tiny_stack *s, ld_vae_tiny_layer **out) {
    if (s->n >= LD_VAE_TINY_MAX_LAYERS)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: more than %d layers", where, LD_VAE_TINY_MAX_LAYERS);
    *out = &s->l[s->n++];
    memset(*out, 0, sizeof **out);
    return LD_OK;
}

static ld_status conv(ld_ctx *ctx, const char *where, ld_weights *ws, ld_vae_tiny_stack *s, const char *half,
                      int64_t cin, int64_t cout, int stride, int bias) {
    ld_vae_tiny_layer *l = NULL;
    LD_TRY(add_layer(ctx, where, s, &l));
    l->kind = TINY_CONV;
    l->cin = cin;
    l->cout = cout;
    l->stride = stride;
    int64_t sw[4] = {cout, cin, 3, 3}, sb[1] = {cout};
    LD_TRY(ld_weights_get(ctx, ws, &l->w, 4, sw, "%s.layers.%d.weight", half, s->n - 1));
    if (bias) LD_TRY(ld_weights_get(ctx, ws, &l->b, 1, sb, "%s.layers.%d.bias", half, s->n - 1));
    return LD_OK;
}

static ld_status block(ld_ctx *ctx, const char *where, ld_weights *ws, ld_vae_tiny_stack *s, const char *half,
                       int64_t cin, int64_t cout) {
    ld_vae_tiny_layer *l = NULL;
    LD_TRY(add_layer(ctx, where, s, &l));
    l->kind = TINY_BLOCK;
    l->cin = cin;
    l->cout = cout;
    const int idx = s->n - 1;
    for (int k = 0; k < 3; k++) {
        int64_t sw[4] = {cout, k ? cout : cin, 3, 3}, sb[1] = {cout};
        LD_TRY(ld_weights_get(ctx, ws, &l->cw[k], 4, sw, "%s.layers.%d.conv.%d.weight", half, idx, 2 * k));
        LD_TRY(ld_weights_get(ctx, ws, &l->cb[k], 1, sb, "%s.layers.%d.conv.%d.bias", half, idx, 2 * k));
    }
    if (cin != cout) {
        int64_t sk[4] = {cout, cin, 1, 1};
        LD_TRY(ld_weights_get(ctx, ws, &l->skip_w, 4, sk, "%s.layers.%d.skip.weight", half, idx));
    }
    return LD_OK;
}

static ld_status simple(ld_ctx *ctx, const char *where, ld_vae_tiny_stack *s, int kind, int64_t c) {
    ld_vae_tiny_layer *l = NULL;
    LD_TRY(add_layer(ctx, where, s, &l));
    l->kind = kind;
    l->cin = l->cout = c;
    return LD_OK;
}

/* Reads a per-level list (channels or block counts) of n entries. */
static ld_status level_list(ld_ctx *ctx, const char *where, const json_t *cfg, const char *key, const int64_t *dflt,
                            int64_t *out, int *n) {
    LD_TRY(ld_json_int_list(ctx, where, cfg, key, out, LD_VAE_TINY_MAX_LEVELS, 0, n));
    if (*n == 0) {
        memcpy(out, dflt, 4 * sizeof *out);
        *n = 4;
    }
    for (int i = 0; i < *n; i++)
        if (out[i] < 0 || out[i] > 4096)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s[%d] = %lld is out of range", where, key, i, (long long)out[i]);
    return LD_OK;
}

static ld_status build_all(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws, ld_vae_tiny *t) {
    static const int64_t d_ch[4] = {64, 64, 64, 64}, d_enc[4] = {1, 3, 3, 3}, d_dec[4] = {3, 3, 3, 1};
    int64_t ech[LD_VAE_TINY_MAX_LEVELS], dch[LD_VAE_TINY_MAX_LEVELS], enb[LD_VAE_TINY_MAX_LEVELS],
        dnb[LD_VAE_TINY_MAX_LEVELS], up = 2;
    int ne, nd, nen, ndn;
    const char *act = NULL, *upfn = NULL;
    double sf = 1.0;
    LD_TRY(ld_json_int(ctx, where, cfg, "in_channels", 3, &t->in_channels));
    LD_TRY(ld_json_int(ctx, where, cfg, "out_channels", 3, &t->out_channels));
    LD_TRY(ld_json_int(ctx, where, cfg, "latent_channels", 4, &t->latent_channels));
    LD_TRY(ld_json_int(ctx, where, cfg, "upsampling_scaling_factor", 2, &up));
    LD_TRY(ld_json_num(ctx, where, cfg, "scaling_factor", 1.0, &sf));
    LD_TRY(ld_json_str(ctx, where, cfg, "act_fn", "relu", &act));
    LD_TRY(ld_json_str(ctx, where, cfg, "upsample_fn", "nearest", &upfn));
    LD_TRY(level_list(ctx, where, cfg, "encoder_block_out_channels", d_ch, ech, &ne));
    LD_TRY(level_list(ctx, where, cfg, "decoder_block_out_channels", d_ch, dch, &nd));
    LD_TRY(level_list(ctx, where, cfg, "num_encoder_blocks", d_enc, enb, &nen));
    LD_TRY(level_list(ctx, where, cfg, "num_decoder_blocks", d_dec, dnb, &ndn));
    if (strcmp(act, "relu"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: act_fn '%s' is not supported (relu)", where, act);
    if (strcmp(upfn, "nearest"))
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: upsample_fn '%s' is not supported (nearest)", where, upfn);
    if (up != 2) return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: upsampling_scaling_factor %lld is not 2", where, (long long)up);
    if (ne != nen || nd != ndn || ne < 1 || nd < 1)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: the block_out_channels and num_*_blocks lists differ in length", where);
    if (ne != nd)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: encoder and decoder have %d and %d levels", where, ne, nd);
    for (int i = 0; i < ne; i++)
        if (ech[i] < 1 || dch[i] < 1) return ld_fail(ctx, LD_ERR_MODEL, "%s: a level has no channels", where);
    struct { const char *k; int64_t v; } pos[] = {{"in_channels", t->in_channels}, {"out_channels", t->out_channels},
                                                 {"latent_channels", t->latent_channels}};
    for (int i = 0; i < 3; i++)
        if (pos[i].v < 1 || pos[i].v > 4096)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s = %lld is out of range", where, pos[i].k, (long long)pos[i].v);
    if (!(sf > 0 && sf < 1e6)) return ld_fail(ctx, LD_ERR_MODEL, "%s: scaling_factor must be positive", where);
    t->scaling_factor = (float)sf;
    t->scale = 1LL << (nd - 1);

    /* DecoderTiny */
    LD_TRY(conv(ctx, where, ws, &t->dec, "decoder", t->latent_channels, dch[0], 1, 1));
    LD_TRY(simple(ctx, where, &t->dec, TINY_RELU, dch[0]));
    int64_t c = dch[0];
    for (int i = 0; i < nd; i++) {
        const int last = i == nd - 1;
        for (int64_t k = 0; k < dnb[i]; k++) {
            LD_TRY(block(ctx, where, ws, &t->dec, "decoder", c, dch[i]));
            c = dch[i];
        }
        if (!last) LD_TRY(simple(ctx, where, &t->dec, TINY_UPSAMPLE, c));
        LD_TRY(conv(ctx, where, ws, &t->dec, "decoder", c, last ? t->out_channels : dch[i], 1, last));
        c = last ? t->out_channels : dch[i];
    }
    /* EncoderTiny (optional: a decoder-only folder loads too) */
    t->has_encoder = ld_weights_is_recorder(ws) || ld_weights_has(ws, "encoder.layers.0.weight");
    if (!t->has_encoder) return LD_OK;
    c = t->in_channels;
    for (int i = 0; i < ne; i++) {
        LD_TRY(conv(ctx, where, ws, &t->enc, "encoder", i ? c : t->in_channels, ech[i], i ? 2 : 1, !i));
        c = ech[i];
        for (int64_t k = 0; k < enb[i]; k++) LD_TRY(block(ctx, where, ws, &t->enc, "encoder", c, ech[i]));
    }
    LD_TRY(conv(ctx, where, ws, &t->enc, "encoder", c, t->latent_channels, 1, 1));
    return LD_OK;
}

ld_status ld_vae_tiny_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws, ld_vae_tiny **out) {
    *out = NULL;
    ld_vae_tiny *t;
    LD_TRY(ld_calloc(ctx, (void **)&t, 1, sizeof *t, "AutoencoderTiny"));
    ld_status st = build_all(ctx, where, cfg, ws, t);
    if (st != LD_OK) {
        free(t);
        return st;
    }
    *out = t;
    return LD_OK;
}

ld_status ld_vae_tiny_load(ld_ctx *ctx, const char *dir, const char *variant, ld_vae_tiny **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, dir, variant, &f));
    ld_status st = ld_vae_tiny_build(ctx, f.where, f.config, f.ws, out);
    if (st == LD_OK) (*out)->ws = f.ws;
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

void ld_vae_tiny_free(ld_vae_tiny *t) {
    if (!t) return;
    ld_weights_free(t->ws);
    free(t);
}

static ld_status record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *rec) {
    ld_vae_tiny *t;
    LD_TRY(ld_vae_tiny_build(ctx, where, config, rec, &t));
    ld_vae_tiny_free(t);
    return LD_OK;
}

const ld_model_type ld_model_vae_tiny = {
    .class_name = "AutoencoderTiny",
    .weights_file = "diffusion_pytorch_model.safetensors",
    .record = record,
};

/* Largest channels x pixels of any activation of the stack from C0 x H x W. */
static size_t stack_max(const ld_vae_tiny_stack *s, int64_t C0, int64_t H, int64_t W) {
    size_t m = (size_t)(C0 * H * W);
    for (int i = 0; i < s->n; i++) {
        const ld_vae_tiny_layer *l = &s->l[i];
        if (l->kind == TINY_UPSAMPLE) H *= 2, W *= 2;
        if (l->kind == TINY_CONV && l->stride == 2) H = (H + 1) / 2, W = (W + 1) / 2;
        size_t v = (size_t)(l->cout * H * W);
        if (v > m) m = v;
    }
    return m;
}

size_t ld_vae_tiny_decode_bytes(const ld_vae_tiny *t, int64_t B, int64_t h, int64_t w) {
    (void)B; /* one image at a time */
    return 3 * sizeof(float) * stack_max(&t->dec, t->latent_channels, h, w);
}

static void relu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

/* Runs the stack on x (C0 x H x W, in buf[0]); the result ends in buf[0]
 * (the buffers rotate), its size in *C, *H, *W. */
static ld_status run_stack(ld_ctx *ctx, const ld_vae_tiny_stack *s, float *buf[3], int64_t *C, int64_t *H,
                           int64_t *W) {
    for (int i = 0; i < s->n; i++) {
        const ld_vae_tiny_layer *l = &s->l[i];
        float *x = buf[0], *y = buf[1], *z = buf[2];
        const int64_t hw = *H * *W;
        if (l->kind == TINY_RELU) {
            relu(x, l->cin * hw);
        } else if (l->kind == TINY_UPSAMPLE) {
            ld_upsample_nearest(y, x, 1, l->cin, *H, *W, 2 * *H, 2 * *W);
            *H *= 2;
            *W *= 2;
            buf[0] = y, buf[1] = x;
        } else if (l->kind == TINY_CONV) {
            ld_conv2d_params p = ld_conv2d_params_make(l->stride, 1);
            ld_conv2d(y, x, 1, l->cin, *H, *W, &l->w, l->b.data ? &l->b : NULL, &p);
            *H = ld_conv2d_out_dim(*H, 3, l->stride, 1, 1);
            *W = ld_conv2d_out_dim(*W, 3, l->stride, 1, 1);
            buf[0] = y, buf[1] = x;
        } else { /* block: y = relu(conv4(relu(conv2(relu(conv0 x)))) + skip(x)) */
            ld_conv2d_params p = ld_conv2d_params_make(1, 1), p1 = ld_conv2d_params_make(1, 0);
            ld_conv2d(y, x, 1, l->cin, *H, *W, &l->cw[0], &l->cb[0], &p);
            relu(y, l->cout * hw);
            ld_conv2d(z, y, 1, l->cout, *H, *W, &l->cw[1], &l->cb[1], &p);
            relu(z, l->cout * hw);
            ld_conv2d(y, z, 1, l->cout, *H, *W, &l->cw[2], &l->cb[2], &p);
            if (l->skip_w.data) {
                ld_conv2d(z, x, 1, l->cin, *H, *W, &l->skip_w, NULL, &p1);
                ld_add(y, y, z, l->cout * hw);
            } else {
                ld_add(y, y, x, l->cout * hw);
            }
            relu(y, l->cout * hw);
            buf[0] = y, buf[1] = x;
        }
        *C = l->cout;
        LD_TRY(ld_check_cancel(ctx, "tiny autoencoder"));
    }
    return LD_OK;
}

static ld_status run_batch(ld_ctx *ctx, const ld_vae_tiny_stack *s, float *dst, const float *src, int64_t B,
                           int64_t C0, int64_t H0, int64_t W0, int decode) {
    const size_t m = stack_max(s, C0, H0, W0);
    float *mem = NULL;
    LD_TRY(ld_malloc(ctx, (void **)&mem, 3 * m * sizeof(float), "AutoencoderTiny activations"));
    size_t out_n = 0;
    for (int64_t b = 0; b < B; b++) {
        float *buf[3] = {mem, mem + m, mem + 2 * m};
        const int64_t n0 = C0 * H0 * W0;
        for (int64_t i = 0; i < n0; i++) {
            const float v = src[b * n0 + i];
            buf[0][i] = decode ? tanhf(v / 3.0f) * 3.0f : (v + 1.0f) / 2.0f;
        }
        int64_t C = C0, H = H0, W = W0;
        ld_status st = run_stack(ctx, s, buf, &C, &H, &W);
        if (st != LD_OK) {
            free(mem);
            return st;
        }
        out_n = (size_t)(C * H * W);
        for (size_t i = 0; i < out_n; i++) dst[(size_t)b * out_n + i] = decode ? buf[0][i] * 2.0f - 1.0f : buf[0][i];
    }
    free(mem);
    return LD_OK;
}

ld_status ld_vae_tiny_decode(ld_ctx *ctx, const ld_vae_tiny *t, float *img, const float *lat, int64_t B, int64_t h,
                             int64_t w) {
    if (B < 1 || h < 1 || w < 1) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "AutoencoderTiny: empty latent");
    return run_batch(ctx, &t->dec, img, lat, B, t->latent_channels, h, w, 1);
}

ld_status ld_vae_tiny_encode(ld_ctx *ctx, const ld_vae_tiny *t, float *lat, const float *img, int64_t B, int64_t H,
                             int64_t W) {
    if (!t->has_encoder) return ld_fail(ctx, LD_ERR_MODEL, "this AutoencoderTiny folder has no encoder weights");
    if (B < 1 || H < t->scale || W < t->scale || H % t->scale || W % t->scale)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "AutoencoderTiny: image %lldx%lld is not a multiple of %lld",
                       (long long)W, (long long)H, (long long)t->scale);
    return run_batch(ctx, &t->enc, lat, img, B, t->in_channels, H, W, 0);
}
