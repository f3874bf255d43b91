/* ResnetBlock2D, Downsample2D, Upsample2D and Transformer2DModel for the
 * U-Net and the VAE (see unet2d_blocks.h). */
#include "models/unet2d_blocks.h"

#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Rows of tokens the feed-forward processes at a time: bounds its
 * [rows, 8C] intermediate (the largest activation of a transformer block). */
#define FF_CHUNK_ROWS 4096

static ld_status get_w(ld_ctx *ctx, ld_weights *ws, ld_tensor *t, const char *prefix, const char *name, int ndim,
                       int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return ld_weights_get(ctx, ws, t, ndim, shape, "%s%s", prefix, name);
}

ld_status ld_get_norm(ld_ctx *ctx, ld_weights *ws, ld_wb *n, const char *prefix, const char *name, int64_t c) {
    char full[256];
    snprintf(full, sizeof full, "%s.weight", name);
    LD_TRY(get_w(ctx, ws, &n->w, prefix, full, 1, c, 0, 0, 0));
    snprintf(full, sizeof full, "%s.bias", name);
    return get_w(ctx, ws, &n->b, prefix, full, 1, c, 0, 0, 0);
}

/* Conv2d weight [cout, cin, k, k] + bias [cout]. */
ld_status ld_get_conv(ld_ctx *ctx, ld_weights *ws, ld_wb *c, const char *prefix, const char *name, int64_t cout,
                          int64_t cin, int64_t k) {
    char full[256];
    snprintf(full, sizeof full, "%s.weight", name);
    LD_TRY(get_w(ctx, ws, &c->w, prefix, full, 4, cout, cin, k, k));
    snprintf(full, sizeof full, "%s.bias", name);
    return get_w(ctx, ws, &c->b, prefix, full, 1, cout, 0, 0, 0);
}

/* Linear weight [out, in] (+ bias [out] when with_bias). */
ld_status ld_get_linear(ld_ctx *ctx, ld_weights *ws, ld_wb *l, const char *prefix, const char *name, int64_t out,
                            int64_t in, int with_bias) {
    char full[256];
    snprintf(full, sizeof full, "%s.weight", name);
    LD_TRY(get_w(ctx, ws, &l->w, prefix, full, 2, out, in, 0, 0));
    if (!with_bias) return LD_OK;
    snprintf(full, sizeof full, "%s.bias", name);
    return get_w(ctx, ws, &l->b, prefix, full, 1, out, 0, 0, 0);
}

/* A 1x1 conv [out, in, 1, 1] seen as a linear [out, in] (same data). */
ld_status ld_get_conv1x1_as_linear(ld_ctx *ctx, ld_weights *ws, ld_wb *l, const char *prefix, const char *name,
                                       int64_t out, int64_t in) {
    LD_TRY(ld_get_conv(ctx, ws, l, prefix, name, out, in, 1));
    l->w.ndim = 2;
    return LD_OK;
}

static const ld_tensor *opt(const ld_tensor *t) { return t->ndim ? t : NULL; }

void ld_add_per_sample_channel(float *x, const float *tb, int B, int C, int64_t HW) {
    for (int b = 0; b < B; b++) ld_add_channel_bias(x + (int64_t)b * C * HW, 1, C, HW, tb + (int64_t)b * C);
}

/* ---- ResnetBlock2D ---- */

ld_status ld_resnet_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_resnet *r, int cin, int cout,
                          int temb_dim, int groups, float eps, float out_scale) {
    *r = (ld_resnet){.cin = cin, .cout = cout, .groups = groups, .eps = eps, .out_scale = out_scale};
    if (cin % groups || cout % groups)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: channels %d -> %d are not divisible by norm_num_groups %d", prefix, cin,
                       cout, groups);
    LD_TRY(ld_get_norm(ctx, ws, &r->norm1, prefix, "norm1", cin));
    LD_TRY(ld_get_conv(ctx, ws, &r->conv1, prefix, "conv1", cout, cin, 3));
    if (temb_dim > 0) LD_TRY(ld_get_linear(ctx, ws, &r->time_emb_proj, prefix, "time_emb_proj", cout, temb_dim, 1));
    LD_TRY(ld_get_norm(ctx, ws, &r->norm2, prefix, "norm2", cout));
    LD_TRY(ld_get_conv(ctx, ws, &r->conv2, prefix, "conv2", cout, cout, 3));
    if (cin != cout) LD_TRY(ld_get_conv(ctx, ws, &r->conv_shortcut, prefix, "conv_shortcut", cout, cin, 1));
    return LD_OK;
}

/* The scratch sizes below mirror the arena requests of the forwards next to them. */
int64_t ld_resnet_scratch_floats(const ld_resnet *r, int B, int64_t HW) {
    return (int64_t)B * (r->cout + r->cin) * HW + (r->time_emb_proj.w.ndim ? (int64_t)B * r->cout : 0);
}

ld_status ld_resnet_forward(ld_ctx *ctx, ld_arena *a, const ld_resnet *r, float *out, const float *x, int B, int H,
                            int W, const float *temb_act) {
    const int64_t HW = (int64_t)H * W;
    const ld_conv2d_params p3 = ld_conv2d_params_make(1, 1), p1 = ld_conv2d_params_make(1, 0);
    size_t mark = ld_arena_mark(a);
    float *h, *t;
    LD_ARENA_F32(h, ctx, a, (int64_t)B * r->cout * HW);
    LD_ARENA_F32(t, ctx, a, (int64_t)B * r->cin * HW);

    /* h = conv1(SiLU(norm1(x))) */
    ld_group_norm_silu(t, x, B, r->cin, HW, r->groups, r->eps, &r->norm1.w, &r->norm1.b);
    ld_conv2d(h, t, B, r->cin, H, W, &r->conv1.w, &r->conv1.b, &p3);
    LD_TRY(ld_check_cancel(ctx, "model forward")); /* a 3x3 conv over a huge image can take a second */

    /* h += time_emb_proj(SiLU(emb))[:, :, None, None] */
    if (temb_act && r->time_emb_proj.w.ndim) {
        float *tb;
        LD_ARENA_F32(tb, ctx, a, (int64_t)B * r->cout);
        ld_linear(tb, temb_act, B, &r->time_emb_proj.w, &r->time_emb_proj.b);
        ld_add_per_sample_channel(h, tb, B, r->cout, HW);
    }

    /* out = conv2(SiLU(norm2(h))) */
    ld_group_norm_silu(h, h, B, r->cout, HW, r->groups, r->eps, &r->norm2.w, &r->norm2.b);
    ld_conv2d(out, h, B, r->cout, H, W, &r->conv2.w, &r->conv2.b, &p3);
    LD_TRY(ld_check_cancel(ctx, "model forward"));

    /* out = (shortcut(x) + out) / out_scale */
    const int64_t n = (int64_t)B * r->cout * HW;
    if (r->conv_shortcut.w.ndim) {
        ld_conv2d(h, x, B, r->cin, H, W, &r->conv_shortcut.w, &r->conv_shortcut.b, &p1);
        ld_add(out, out, h, n);
    } else {
        ld_add(out, out, x, n);
    }
    if (r->out_scale != 1.0f) ld_scale(out, n, 1.0f / r->out_scale);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* ---- Downsample2D / Upsample2D ---- */

ld_status ld_downsample_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_downsample *d, int channels,
                              int padding) {
    *d = (ld_downsample){.channels = channels, .padding = padding};
    if (padding != 0 && padding != 1)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: downsample padding %d is not supported (0 or 1)", prefix, padding);
    return ld_get_conv(ctx, ws, &d->conv, prefix, "conv", channels, channels, 3);
}

void ld_downsample_out_size(const ld_downsample *d, int H, int W, int *Ho, int *Wo) {
    /* padding 0: one zero row/column is appended first, then no padding */
    if (d->padding == 1) {
        *Ho = (int)ld_conv2d_out_dim(H, 3, 2, 1, 1);
        *Wo = (int)ld_conv2d_out_dim(W, 3, 2, 1, 1);
    } else {
        *Ho = (int)ld_conv2d_out_dim(H + 1, 3, 2, 0, 1);
        *Wo = (int)ld_conv2d_out_dim(W + 1, 3, 2, 0, 1);
    }
}

int64_t ld_downsample_scratch_floats(const ld_downsample *d, int B, int H, int W) {
    return d->padding == 1 ? 0 : (int64_t)B * d->channels * (H + 1) * (W + 1);
}

ld_status ld_downsample_forward(ld_ctx *ctx, ld_arena *a, const ld_downsample *d, float *out, const float *x, int B,
                                int H, int W) {
    const int C = d->channels;
    if (d->padding == 1) {
        ld_conv2d_params p = ld_conv2d_params_make(2, 1);
        ld_conv2d(out, x, B, C, H, W, &d->conv.w, &d->conv.b, &p);
        return LD_OK;
    }
    /* F.pad(x, (0, 1, 0, 1)) then a stride-2 conv without padding */
    size_t mark = ld_arena_mark(a);
    const int Hp = H + 1, Wp = W + 1;
    float *xp;
    LD_ARENA_F32(xp, ctx, a, (int64_t)B * C * Hp * Wp);
    for (int64_t bc = 0; bc < (int64_t)B * C; bc++) {
        const float *src = x + bc * H * W;
        float *dst = xp + bc * Hp * Wp;
        for (int y = 0; y < H; y++) {
            memcpy(dst + (int64_t)y * Wp, src + (int64_t)y * W, sizeof(float) * W);
            dst[(int64_t)y * Wp + W] = 0.0f;
        }
        memset(dst + (int64_t)H * Wp, 0, sizeof(float) * Wp);
    }
    ld_conv2d_params p = ld_conv2d_params_make(2, 0);
    ld_conv2d(out, xp, B, C, Hp, Wp, &d->conv.w, &d->conv.b, &p);
    ld_arena_reset(a, mark);
    return LD_OK;
}

ld_status ld_upsample_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_upsample *u, int channels) {
    *u = (ld_upsample){.channels = channels};
    return ld_get_conv(ctx, ws, &u->conv, prefix, "conv", channels, channels, 3);
}

ld_status ld_upsample_forward(ld_ctx *ctx, ld_arena *a, const ld_upsample *u, float *out, const float *x, int B,
                              int H, int W, int Ho, int Wo) {
    size_t mark = ld_arena_mark(a);
    float *up;
    LD_ARENA_F32(up, ctx, a, (int64_t)B * u->channels * Ho * Wo);
    ld_upsample_nearest(up, x, B, u->channels, H, W, Ho, Wo);
    ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    ld_conv2d(out, up, B, u->channels, Ho, Wo, &u->conv.w, &u->conv.b, &p);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* ---- Transformer2DModel ---- */

static ld_status tblock_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_tblock *b, int C, int ctx_dim,
                              int inner) {
    LD_TRY(ld_get_norm(ctx, ws, &b->norm1, prefix, "norm1", C));
    LD_TRY(get_w(ctx, ws, &b->attn1_q, prefix, "attn1.to_q.weight", 2, C, C, 0, 0));
    LD_TRY(get_w(ctx, ws, &b->attn1_k, prefix, "attn1.to_k.weight", 2, C, C, 0, 0));
    LD_TRY(get_w(ctx, ws, &b->attn1_v, prefix, "attn1.to_v.weight", 2, C, C, 0, 0));
    LD_TRY(ld_get_linear(ctx, ws, &b->attn1_out, prefix, "attn1.to_out.0", C, C, 1));
    LD_TRY(ld_get_norm(ctx, ws, &b->norm2, prefix, "norm2", C));
    LD_TRY(get_w(ctx, ws, &b->attn2_q, prefix, "attn2.to_q.weight", 2, C, C, 0, 0));
    LD_TRY(get_w(ctx, ws, &b->attn2_k, prefix, "attn2.to_k.weight", 2, C, ctx_dim, 0, 0));
    LD_TRY(get_w(ctx, ws, &b->attn2_v, prefix, "attn2.to_v.weight", 2, C, ctx_dim, 0, 0));
    LD_TRY(ld_get_linear(ctx, ws, &b->attn2_out, prefix, "attn2.to_out.0", C, C, 1));
    LD_TRY(ld_get_norm(ctx, ws, &b->norm3, prefix, "norm3", C));
    LD_TRY(ld_get_linear(ctx, ws, &b->ff_in, prefix, "ff.net.0.proj", 2 * (int64_t)inner, C, 1));
    return ld_get_linear(ctx, ws, &b->ff_out, prefix, "ff.net.2", C, inner, 1);
}

ld_status ld_transformer2d_build(ld_ctx *ctx, ld_weights *ws, const char *prefix, ld_transformer2d *t, int channels,
                                 int heads, int depth, int ctx_dim, int groups, int linear_projection) {
    *t = (ld_transformer2d){.channels = channels, .heads = heads, .depth = depth, .ctx_dim = ctx_dim,
                            .groups = groups, .ff_inner = 4 * channels};
    if (heads <= 0 || channels % heads)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %d channels cannot be split into %d attention heads", prefix, channels,
                       heads);
    if (channels % groups)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: %d channels are not divisible by norm_num_groups %d", prefix, channels,
                       groups);
    t->head_dim = channels / heads;
    LD_TRY(ld_get_norm(ctx, ws, &t->norm, prefix, "norm", channels));
    if (linear_projection) {
        LD_TRY(ld_get_linear(ctx, ws, &t->proj_in, prefix, "proj_in", channels, channels, 1));
        LD_TRY(ld_get_linear(ctx, ws, &t->proj_out, prefix, "proj_out", channels, channels, 1));
    } else {
        LD_TRY(ld_get_conv1x1_as_linear(ctx, ws, &t->proj_in, prefix, "proj_in", channels, channels));
        LD_TRY(ld_get_conv1x1_as_linear(ctx, ws, &t->proj_out, prefix, "proj_out", channels, channels));
    }
    if (depth > 0) {
        LD_TRY(ld_calloc(ctx, (void **)&t->blocks, (size_t)depth, sizeof *t->blocks, "transformer blocks"));
        for (int k = 0; k < depth; k++) {
            char p[256];
            snprintf(p, sizeof p, "%stransformer_blocks.%d.", prefix, k);
            LD_TRY(tblock_build(ctx, ws, p, &t->blocks[k], channels, ctx_dim, t->ff_inner));
        }
    }
    return LD_OK;
}

void ld_transformer2d_free(ld_transformer2d *t) {
    if (!t) return;
    free(t->blocks);
    t->blocks = NULL;
}

/* hs += to_out(attention(q = LN(hs) Wq, k, v)) for one attention layer.
 * kv_src [B * Lk, kv_dim] is the normed tokens (self) or the context (cross). */
static ld_status attention_layer(ld_ctx *ctx, ld_arena *a, const ld_transformer2d *t, float *hs, const float *normed,
                                 int B, int64_t Lq, const float *kv_src, int64_t Lk, const ld_tensor *wq,
                                 const ld_tensor *wk, const ld_tensor *wv, const ld_wb *out) {
    const int64_t C = t->channels, N = (int64_t)B * Lq;
    size_t mark = ld_arena_mark(a);
    float *q, *k, *v, *o;
    LD_ARENA_F32(q, ctx, a, N * C);
    LD_ARENA_F32(k, ctx, a, (int64_t)B * Lk * C);
    LD_ARENA_F32(v, ctx, a, (int64_t)B * Lk * C);
    ld_linear(q, normed, N, wq, NULL);
    ld_linear(k, kv_src, (int64_t)B * Lk, wk, NULL);
    ld_linear(v, kv_src, (int64_t)B * Lk, wv, NULL);
    ld_attn_params p = {.scale = 1.0f / sqrtf((float)t->head_dim)};
    LD_ARENA_F32(o, ctx, a, N * C);
    LD_TRY(ld_attention_checked(ctx, "U-Net forward", 0, o, C, q, C, k, C, v, C, B, t->heads, Lq, Lk, t->head_dim,
                                &p));
    ld_linear_add(hs, o, N, &out->w, opt(&out->b));
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* hs += ff.net.2(GEGLU(ff.net.0.proj(normed))), FF_CHUNK_ROWS rows at a time. */
static ld_status feed_forward(ld_ctx *ctx, ld_arena *a, const ld_transformer2d *t, const ld_tblock *blk, float *hs,
                              const float *normed, int64_t N) {
    const int64_t C = t->channels, I = t->ff_inner;
    const int64_t R = N < FF_CHUNK_ROWS ? N : FF_CHUNK_ROWS;
    size_t mark = ld_arena_mark(a);
    float *proj, *gated;
    LD_ARENA_F32(proj, ctx, a, R * 2 * I);
    LD_ARENA_F32(gated, ctx, a, R * I);
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t rows = N - r0 < R ? N - r0 : R;
        ld_linear(proj, normed + r0 * C, rows, &blk->ff_in.w, &blk->ff_in.b);
        ld_geglu(gated, proj, rows, I);
        ld_linear_add(hs + r0 * C, gated, rows, &blk->ff_out.w, &blk->ff_out.b);
    }
    ld_arena_reset(a, mark);
    return LD_OK;
}

int64_t ld_transformer2d_scratch_floats(const ld_transformer2d *t, int B, int64_t HW, int L) {
    const int64_t C = t->channels, N = (int64_t)B * HW, R = N < FF_CHUNK_ROWS ? N : FF_CHUNK_ROWS;
    const int64_t self = 2 * N * C + 2 * N * C, cross = 2 * N * C + 2 * (int64_t)B * L * C;
    const int64_t ff = R * 3 * (int64_t)t->ff_inner;
    int64_t layer = self > cross ? self : cross;
    if (ff > layer) layer = ff;
    return 3 * N * C + layer; /* tmp, hs, normed, then the largest layer */
}

ld_status ld_transformer2d_forward(ld_ctx *ctx, ld_arena *a, const ld_transformer2d *t, float *x, int B, int64_t HW,
                                   const float *context, int L) {
    const int64_t C = t->channels, N = (int64_t)B * HW;
    size_t mark = ld_arena_mark(a);
    float *tmp, *hs, *normed;
    LD_ARENA_F32(tmp, ctx, a, N * C);
    LD_ARENA_F32(hs, ctx, a, N * C);
    LD_ARENA_F32(normed, ctx, a, N * C);

    /* hs = proj_in(GN(x)) as [B, HW, C] tokens; the residual r is x itself */
    ld_group_norm(tmp, x, B, C, HW, t->groups, 1e-6f, &t->norm.w, &t->norm.b);
    ld_nchw_to_nhwc(normed, tmp, B, C, HW);
    ld_linear(hs, normed, N, &t->proj_in.w, &t->proj_in.b);

    for (int k = 0; k < t->depth; k++) {
        const ld_tblock *b = &t->blocks[k];
        ld_layer_norm(normed, hs, N, C, 1e-5f, &b->norm1.w, &b->norm1.b);
        LD_TRY(attention_layer(ctx, a, t, hs, normed, B, HW, normed, HW, &b->attn1_q, &b->attn1_k, &b->attn1_v,
                               &b->attn1_out));
        ld_layer_norm(normed, hs, N, C, 1e-5f, &b->norm2.w, &b->norm2.b);
        LD_TRY(attention_layer(ctx, a, t, hs, normed, B, HW, context, L, &b->attn2_q, &b->attn2_k, &b->attn2_v,
                               &b->attn2_out));
        ld_layer_norm(normed, hs, N, C, 1e-5f, &b->norm3.w, &b->norm3.b);
        LD_TRY(feed_forward(ctx, a, t, b, hs, normed, N));
        LD_TRY(ld_check_cancel(ctx, "U-Net forward"));
    }

    /* x += proj_out(hs), written straight into NCHW */
    for (int b = 0; b < B; b++)
        ld_linear_to_channels(x + (int64_t)b * C * HW, 1.0f, hs + (int64_t)b * HW * C, HW, &t->proj_out.w,
                              &t->proj_out.b);
    ld_arena_reset(a, mark);
    return LD_OK;
}
