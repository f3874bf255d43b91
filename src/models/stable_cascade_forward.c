/* StableCascadeUNet forward pass (spec wuerstchen.md §5.1; API in
 * stable_cascade_unet.h). Reads top to bottom like diffusers' forward:
 * conditioning, embedding, down path, up path, clf. Activations come from the
 * model's arena: level outputs stay there for the up path's skips, the up
 * path alternates between two buffers, other temporaries are released (to
 * the arena mark) as soon as possible. */
#include "models/stable_cascade_unet.h"

#include "tensor/ops.h"

#include <string.h>

/* 1x1 convolution (or k x k, stride k when k > 1) of x [B, Cin, H, W]. */
static void conv(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                 const ld_tensor *b, int k) {
    ld_conv2d_params p = ld_conv2d_params_make(k, 0);
    ld_conv2d(y, x, B, Cin, H, W, w, b, &p);
}

/* t_emb [B, c_r * (1 + nconds)]: emb(r) then emb(0) for every extra cond
 * (the pipelines never pass sca / crp values). */
static ld_status timestep_embedding(ld_ctx *ctx, ld_arena *a, const ld_sc_config *c, const float *r, int64_t B,
                                    float **out) {
    int64_t width = c->c_r * (1 + c->nconds);
    float *t, *zeros;
    LD_ARENA_F32(t, ctx, a, B * width);
    size_t mark = ld_arena_mark(a);
    LD_ARENA_F32(zeros, ctx, a, B);
    memset(zeros, 0, (size_t)B * sizeof(float));
    wu_r_embedding(t, width, r, B, c->c_r);
    for (int i = 0; i < c->nconds; i++) wu_r_embedding(t + c->c_r * (1 + i), width, zeros, B, c->c_r);
    ld_arena_reset(a, mark);
    *out = t;
    return LD_OK;
}

/* clip [B, Lc, D] = clip_norm(cat(text_mapper(text), pooled_mapper(pooled).view, img_mapper(img).view)). */
static ld_status clip_embedding(ld_ctx *ctx, ld_arena *a, const ld_sc_unet *m, const ld_sc_inputs *in, float **out,
                                int64_t *Lc) {
    const ld_sc_config *c = &m->cfg;
    int64_t D = c->cond_dim, S = c->clip_seq, B = in->B;
    int prior = in->clip_text && in->clip_img;
    int64_t Lt = prior ? in->text_len : 0, Lp = in->pooled_len * S, Li = prior ? S : 0;
    *Lc = Lt + Lp + Li;
    float *clip;
    LD_ARENA_F32(clip, ctx, a, B * *Lc * D);
    for (int64_t b = 0; b < B; b++) {
        float *dst = clip + b * *Lc * D;
        if (prior) ld_linear(dst, in->clip_text + b * Lt * c->clip_text_in, Lt, &m->text_w, &m->text_b);
        /* Linear(pooled) rows are clip_seq * D wide: viewed as clip_seq tokens. */
        ld_linear(dst + Lt * D, in->clip_text_pooled + b * in->pooled_len * c->clip_pooled_in, in->pooled_len,
                  &m->pooled_w, &m->pooled_b);
        if (prior) ld_linear(dst + (Lt + Lp) * D, in->clip_img + b * c->clip_img_in, 1, &m->img_w, &m->img_b);
    }
    ld_layer_norm(clip, clip, B * *Lc, D, 1e-6f, NULL, NULL);
    *out = clip;
    return LD_OK;
}

/* mapper = [Conv1x1(cin -> 4c0), GELU, Conv1x1(4c0 -> c0), LN2d] on x [B, cin, HW]; y [B, c0, HW]. */
static ld_status mapper(ld_ctx *ctx, ld_arena *a, const ld_tensor *w, const ld_tensor *b, float *y, const float *x,
                        int64_t B, int64_t cin, int64_t H, int64_t W) {
    int64_t hid = w[0].shape[0], c0 = w[1].shape[0];
    size_t mark = ld_arena_mark(a);
    float *h;
    LD_ARENA_F32(h, ctx, a, B * hid * H * W);
    conv(h, x, B, cin, H, W, &w[0], &b[0], 1);
    ld_gelu_erf(h, B * hid * H * W);
    conv(y, h, B, hid, H, W, &w[1], &b[1], 1);
    wu_layer_norm2d(y, y, B, c0, H * W);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* Decoder conditioning added to the embedded x [B, c0, H, W]. */
static ld_status add_image_conditioning(ld_ctx *ctx, ld_arena *a, const ld_sc_unet *m, const ld_sc_inputs *in,
                                        float *x, int64_t H, int64_t W) {
    const ld_sc_config *c = &m->cfg;
    int64_t B = in->B, c0 = c->channels[0], HW = H * W;
    size_t mark = ld_arena_mark(a);
    if (c->effnet_in && in->effnet) {
        float *e, *y;
        LD_ARENA_F32(e, ctx, a, B * c->effnet_in * HW);
        LD_ARENA_F32(y, ctx, a, B * c0 * HW);
        ld_resize_bilinear_ac(e, in->effnet, B, c->effnet_in, in->eh, in->ew, H, W);
        LD_TRY(mapper(ctx, a, m->effnet_w, m->effnet_b, y, e, B, c->effnet_in, H, W));
        ld_add(x, x, y, B * c0 * HW);
        ld_arena_reset(a, mark);
    }
    if (c->pixel_in) {
        /* pixels = zeros(B, 3, 8, 8): the mapper gives the same vector at every
         * pixel, and resizing a constant image keeps it, so map one pixel. */
        float *zero, *v;
        LD_ARENA_F32(zero, ctx, a, c->pixel_in);
        LD_ARENA_F32(v, ctx, a, c0);
        memset(zero, 0, (size_t)c->pixel_in * sizeof(float));
        LD_TRY(mapper(ctx, a, m->pixels_w, m->pixels_b, v, zero, 1, c->pixel_in, 1, 1));
        for (int64_t b = 0; b < B; b++)
            for (int64_t ch = 0; ch < c0; ch++) {
                float *p = x + (b * c0 + ch) * HW;
                for (int64_t i = 0; i < HW; i++) p[i] += v[ch];
            }
        ld_arena_reset(a, mark);
    }
    return LD_OK;
}

typedef struct {
    float *t_emb; /* [B, c_r * (1 + nconds)] */
    float *clip;  /* [B, Lc, cond_dim] */
    int64_t Lc;
    uint64_t gen; /* wu_cond_gen of clip in the lane's memo */
    int lane;
} sc_cond;

/* Passes over a block list, with repeat mappers between passes; x [B, C, H, W]
 * in place. skip (up path) goes to the first block of every pass. */
static ld_status run_stack(ld_ctx *ctx, ld_arena *a, const ld_sc_stack *s, const sc_cond *cond, float *x, int64_t B,
                           int64_t C, int64_t H, int64_t W, const float *skip) {
    for (int j = 0; j <= s->nmaps; j++) {
        for (int k = 0; k < s->nblocks; k++) {
            const ld_sc_block *b = &s->blocks[k];
            if (b->kind == LD_SC_RES)
                LD_TRY(wu_resblock_forward(ctx, a, &b->u.res, x, B, H, W, k == 0 ? skip : NULL));
            else if (b->kind == LD_SC_TIMESTEP)
                LD_TRY(wu_timestep_block_forward(ctx, a, &b->u.ts, x, B, H * W, cond->t_emb));
            else
                LD_TRY(wu_attn_block_forward(ctx, a, &b->u.attn, x, B, H * W, cond->clip, cond->Lc, cond->gen,
                                                cond->lane));
        }
        if (j < s->nmaps) {
            size_t mark = ld_arena_mark(a);
            float *t;
            LD_ARENA_F32(t, ctx, a, B * C * H * W);
            conv(t, x, B, C, H, W, &s->map_w[j], &s->map_b[j], 1);
            memcpy(x, t, (size_t)(B * C * H * W) * sizeof(float));
            ld_arena_reset(a, mark);
        }
    }
    return LD_OK;
}

typedef struct {
    float *x[LD_SC_MAX_LEVELS];
    int64_t h[LD_SC_MAX_LEVELS], w[LD_SC_MAX_LEVELS];
    float *work; /* the up path's x */
} sc_levels;

/* Size after a level change: the conv is 2x2 stride 2 (or 1x1 for the
 * prior's UpDownBlock2d), transposed on the way up. */
static void level_size(const ld_sc_config *c, int up, int64_t H, int64_t W, int64_t *Ho, int64_t *Wo) {
    int k = c->updown_1x1 ? 1 : 2;
    *Ho = k == 1 ? H : up ? H * 2 : H / 2;
    *Wo = k == 1 ? W : up ? W * 2 : W / 2;
}

/* Level change: y [B, Cout, level_size(H, W)] = conv(LN2d(x)). */
static ld_status change_level(ld_ctx *ctx, ld_arena *a, const ld_sc_config *c, const ld_tensor *w, const ld_tensor *b,
                              int up, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, float *y) {
    int k = c->updown_1x1 ? 1 : 2;
    size_t mark = ld_arena_mark(a);
    float *n;
    LD_ARENA_F32(n, ctx, a, B * Cin * H * W);
    wu_layer_norm2d(n, x, B, Cin, H * W);
    if (up && k == 2)
        ld_conv_transpose2d(y, n, B, Cin, H, W, w, b, 2, 0);
    else
        conv(y, n, B, Cin, H, W, w, b, k);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* x: the embedded input, level 0's activations (in the arena). */
static ld_status down_path(ld_ctx *ctx, ld_arena *a, const ld_sc_unet *m, const sc_cond *cond, float *x, int64_t B,
                           int64_t H, int64_t W, sc_levels *lv) {
    const ld_sc_config *c = &m->cfg;
    for (int L = 0; L < c->levels; L++) {
        if (L > 0) {
            level_size(c, 0, lv->h[L - 1], lv->w[L - 1], &H, &W);
            LD_ARENA_F32(x, ctx, a, B * c->channels[L] * H * W);
            LD_TRY(change_level(ctx, a, c, &m->level[L].down_w, &m->level[L].down_b, 0, lv->x[L - 1], B,
                                c->channels[L - 1], lv->h[L - 1], lv->w[L - 1], x));
        }
        lv->x[L] = x;
        lv->h[L] = H;
        lv->w[L] = W;
        LD_TRY(run_stack(ctx, a, &m->level[L].down, cond, x, B, c->channels[L], H, W, NULL));
    }
    return LD_OK;
}

/* Leaves x at level 0 in lv->work. The deepest output is no skip: the up path
 * starts on it in place, then alternates between two buffers as large as the
 * largest level (an upscaled or resized x is never larger than the skip of
 * its level). */
static ld_status up_path(ld_ctx *ctx, ld_arena *a, const ld_sc_unet *m, const sc_cond *cond, int64_t B,
                         sc_levels *lv) {
    const ld_sc_config *c = &m->cfg;
    int n = c->levels;
    float *pp[2] = {NULL, NULL};
    if (n > 1) {
        int64_t most = 0;
        for (int L = 0; L < n; L++)
            if (B * c->channels[L] * lv->h[L] * lv->w[L] > most) most = B * c->channels[L] * lv->h[L] * lv->w[L];
        LD_ARENA_F32(pp[0], ctx, a, most);
        LD_ARENA_F32(pp[1], ctx, a, most);
    }
    lv->work = lv->x[n - 1];
    int64_t H = lv->h[n - 1], W = lv->w[n - 1];
    for (int L = n - 1; L >= 0; L--) {
        int64_t C = c->channels[L];
        const float *skip = NULL;
        if (L < n - 1) {
            skip = lv->x[L];
            if (H != lv->h[L] || W != lv->w[L]) { /* odd sizes: resize x to the skip's size */
                float *r = lv->work == pp[0] ? pp[1] : pp[0];
                ld_resize_bilinear_ac(r, lv->work, B, C, H, W, lv->h[L], lv->w[L]);
                lv->work = r;
                H = lv->h[L];
                W = lv->w[L];
            }
        }
        LD_TRY(run_stack(ctx, a, &m->level[L].up, cond, lv->work, B, C, H, W, skip));
        if (L > 0) {
            float *y = lv->work == pp[0] ? pp[1] : pp[0];
            LD_TRY(change_level(ctx, a, c, &m->level[L].up_w, &m->level[L].up_b, 1, lv->work, B, C, H, W, y));
            level_size(c, 1, H, W, &H, &W);
            lv->work = y;
        }
    }
    return LD_OK;
}

size_t ld_sc_unet_activation_bytes(const ld_sc_unet *m) {
    size_t n = 0;
    for (int l = 0; l < WU_LANES; l++) n += m->arena[l].peak;
    return n;
}

static ld_status forward(ld_ctx *ctx, ld_sc_unet *m, int lane, const ld_sc_inputs *in, float *out) {
    const ld_sc_config *c = &m->cfg;
    ld_arena *a = &m->arena[lane];
    int64_t B = in->B, p = c->patch_size, c0 = c->channels[0], H = in->H / p, W = in->W / p;
    sc_cond cond = {.lane = lane};
    sc_levels lv;
    memset(&lv, 0, sizeof lv);
    LD_TRY(timestep_embedding(ctx, a, c, in->r, B, &cond.t_emb));
    LD_TRY(clip_embedding(ctx, a, m, in, &cond.clip, &cond.Lc));
    cond.gen = wu_cond_gen(&m->memo[lane], cond.clip, (size_t)(B * cond.Lc * c->cond_dim));
    /* embedding: LN2d(Conv1x1(PixelUnshuffle_p(sample))) */
    float *x, *u;
    LD_ARENA_F32(x, ctx, a, B * c0 * H * W);
    size_t mark = ld_arena_mark(a);
    LD_ARENA_F32(u, ctx, a, B * c->in_channels * in->H * in->W);
    ld_pixel_unshuffle(u, in->sample, B, c->in_channels, in->H, in->W, (int)p);
    conv(x, u, B, c->in_channels * p * p, H, W, &m->emb_w, &m->emb_b, 1);
    wu_layer_norm2d(x, x, B, c0, H * W);
    ld_arena_reset(a, mark);
    LD_TRY(add_image_conditioning(ctx, a, m, in, x, H, W));
    LD_TRY(down_path(ctx, a, m, &cond, x, B, H, W, &lv));
    LD_TRY(up_path(ctx, a, m, &cond, B, &lv));
    /* clf: PixelShuffle_p(Conv1x1(LN2d(x))) */
    LD_ARENA_F32(u, ctx, a, B * c->out_channels * in->H * in->W);
    wu_layer_norm2d(lv.work, lv.work, B, c0, H * W);
    conv(u, lv.work, B, c0, H, W, &m->clf_w, &m->clf_b, 1);
    ld_pixel_shuffle(out, u, B, c->out_channels * p * p, H, W, (int)p);
    return LD_OK;
}

ld_status ld_sc_unet_forward(ld_ctx *ctx, ld_sc_unet *m, const ld_sc_inputs *in, float *out) {
    return ld_sc_unet_forward_lane(ctx, m, 0, in, out);
}

ld_status ld_sc_unet_forward_lane(ld_ctx *ctx, ld_sc_unet *m, int lane, const ld_sc_inputs *in, float *out) {
    const ld_sc_config *c = &m->cfg;
    if (lane < 0 || lane >= WU_LANES)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "StableCascadeUNet: lane %d is not 0..%d", lane, WU_LANES - 1);
    int64_t B = in->B, p = c->patch_size;
    if (B < 1 || in->H < 1 || in->W < 1 || in->H % p || in->W % p)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "StableCascadeUNet: sample size %lldx%lld is not a positive multiple of patch_size %lld",
                       (long long)in->H, (long long)in->W, (long long)p);
    int64_t H = in->H / p, W = in->W / p, dh, dw;
    ld_sc_config_deepest_size(c, H, W, &dh, &dw);
    if (dh < 1 || dw < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "StableCascadeUNet: sample size %lldx%lld is too small for %d levels", (long long)in->H,
                       (long long)in->W, c->levels);
    if (!in->r || !in->sample || !in->clip_text_pooled || in->pooled_len < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "StableCascadeUNet: sample, r and clip_text_pooled are required");
    if (c->clip_text_in && (!in->clip_text || !in->clip_img || in->text_len < 1))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "StableCascadeUNet (prior): clip_text and clip_img are required");
    if (in->effnet && (in->eh < 1 || in->ew < 1))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "StableCascadeUNet: effnet size must be positive");

    ld_arena *a = &m->arena[lane];
    size_t mark = ld_arena_mark(a);
    ld_status st = forward(ctx, m, lane, in, out);
    ld_arena_reset(a, mark);
    /* the first forward at a size plans the memory: one block from now on */
    if (st == LD_OK) st = ld_arena_reserve(ctx, a, a->peak);
    return st;
}
