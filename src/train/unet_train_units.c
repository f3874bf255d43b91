/* The U-Net trainer's units, each forward next to its backward (see
 * unet_train_internal.h). A forward fills a struct of the intermediates its
 * backward reads; the backward runs the forward again (recomputation) and
 * then walks it in reverse. Every gradient is accumulated (grad_ops.h). */
#include "train/unet_train_internal.h"

#include "train/grad_ops.h"

#include <math.h>

#define ZALLOC(p, n)                                        \
    do {                                                    \
        if (!((p) = tr_zalloc(ctx, t, (int64_t)(n))))       \
            return LD_ERR_NOMEM;                            \
    } while (0)
/* For a forward's outputs, which their op writes whole (no zeroing). */
#define ALLOC(p, n)                                         \
    do {                                                    \
        if (!((p) = tr_alloc(ctx, t, (int64_t)(n))))        \
            return LD_ERR_NOMEM;                            \
    } while (0)
#define GRAD(p, id)                                         \
    do {                                                    \
        if (!((p) = tr_grad(ctx, t, (id))))                 \
            return LD_ERR_NOMEM;                            \
    } while (0)
#define OK_OR_NOMEM(call)                                                                   \
    do {                                                                                    \
        if (!(call)) return ld_fail(ctx, LD_ERR_NOMEM, "training: out of memory in %s", #call); \
    } while (0)

static const ld_tensor *opt(const ld_tensor *w) { return w->ndim ? w : NULL; }

static void add_to(float *dst, const float *src, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* A linear layer of the model, with its LoRA adapter when it has one. */
static ld_status lin_fwd(ld_ctx *ctx, ld_train_unet *t, const ld_tensor *w, const ld_tensor *b, const float *x,
                         int64_t M, float *y) {
    ld_linear(y, x, M, w, b);
    const int a = ld_lora_find(t->lora, w);
    return a < 0 ? LD_OK : ld_lora_forward(ctx, t->lora, a, x, M, y);
}

static ld_status lin_bwd(ld_ctx *ctx, ld_train_unet *t, const ld_tensor *w, const ld_tensor *b, const float *dy,
                         const float *x, int64_t M, float *dx) {
    ld_linear_backward(dy, x, M, w, dx, tr_g(t, w), b ? tr_g(t, b) : NULL);
    const int a = ld_lora_find(t->lora, w);
    return a < 0 ? LD_OK : ld_lora_backward(ctx, t->lora, a, dy, x, M, dx);
}

/* A convolution of the model (groups 1) on x [B, cin, H, W], with its LoRA
 * adapter when it has one. */
static ld_status conv_fwd(ld_ctx *ctx, ld_train_unet *t, const ld_wb *c, const float *x, int64_t cin, int64_t H,
                          int64_t W, const ld_conv2d_params *p, float *y) {
    ld_conv2d(y, x, t->B, cin, H, W, &c->w, opt(&c->b), p);
    const int a = ld_lora_find(t->lora, &c->w);
    return a < 0 ? LD_OK : ld_lora_conv_forward(ctx, t->lora, a, x, t->B, H, W, y);
}

/* Accumulates dx (may be NULL), the weight's and bias's gradients (full
 * training) or the adapter's (LoRA). */
static ld_status conv_bwd(ld_ctx *ctx, ld_train_unet *t, const ld_wb *c, const float *dy, const float *x, int64_t cin,
                          int64_t H, int64_t W, const ld_conv2d_params *p, float *dx) {
    OK_OR_NOMEM(ld_conv2d_backward(dy, x, t->B, cin, H, W, &c->w, p, dx, tr_g(t, &c->w), tr_g(t, &c->b)));
    const int a = ld_lora_find(t->lora, &c->w);
    return a < 0 ? LD_OK : ld_lora_conv_backward(ctx, t->lora, a, dy, x, t->B, H, W, dx);
}

/* ---- conv_in ---- */

static ld_conv2d_params same_pad(int k) { return ld_conv2d_params_make(1, k / 2); }

static ld_status conv_in_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    (void)ctx;
    const ld_wb *c = &t->u->conv_in;
    ld_conv2d_params p = same_pad((int)c->w.shape[2]);
    ld_conv2d(t->acts[u->out].v, t->acts[u->in].v, t->B, u->C, u->H, u->W, &c->w, &c->b, &p);
    return LD_OK;
}

static ld_status conv_in_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_wb *c = &t->u->conv_in;
    ld_conv2d_params p = same_pad((int)c->w.shape[2]);
    OK_OR_NOMEM(ld_conv2d_backward(t->acts[u->out].g, t->acts[u->in].v, t->B, u->C, u->H, u->W, &c->w, &p, NULL,
                                   tr_g(t, &c->w), tr_g(t, &c->b)));
    return LD_OK;
}

/* ---- ResnetBlock2D (with the up path's skip concatenation) ---- */

typedef struct {
    const float *x; /* the block's input: cat(in, in2) or in */
    float *t1, *a1, *h1, *t2, *a2;
} res_saved;

static ld_status resnet_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, res_saved *s) {
    const ld_resnet *r = u->m;
    const int B = t->B, cin = u->C + u->C2;
    const int64_t HW = (int64_t)u->H * u->W, nin = (int64_t)B * cin * HW, nout = (int64_t)B * r->cout * HW;
    const ld_conv2d_params p3 = ld_conv2d_params_make(1, 1), p1 = ld_conv2d_params_make(1, 0);
    if (u->in2 >= 0) {
        float *cat;
        ALLOC(cat, nin);
        ld_concat_channels(cat, t->acts[u->in].v, u->C, t->acts[u->in2].v, u->C2, B, HW);
        s->x = cat;
    } else {
        s->x = t->acts[u->in].v;
    }
    ALLOC(s->t1, nin);
    ALLOC(s->a1, nin);
    ALLOC(s->h1, nout);
    ALLOC(s->t2, nout);
    ALLOC(s->a2, nout);
    ld_group_norm(s->t1, s->x, B, cin, HW, r->groups, r->eps, &r->norm1.w, &r->norm1.b);
    memcpy(s->a1, s->t1, sizeof(float) * (size_t)nin);
    ld_silu(s->a1, nin);
    LD_TRY(conv_fwd(ctx, t, &r->conv1, s->a1, cin, u->H, u->W, &p3, s->h1));
    if (r->time_emb_proj.w.ndim) {
        float *tb;
        ALLOC(tb, (int64_t)B * r->cout);
        LD_TRY(lin_fwd(ctx, t, &r->time_emb_proj.w, &r->time_emb_proj.b, t->emb_act, B, tb));
        ld_add_per_sample_channel(s->h1, tb, B, r->cout, HW);
    }
    ld_group_norm(s->t2, s->h1, B, r->cout, HW, r->groups, r->eps, &r->norm2.w, &r->norm2.b);
    memcpy(s->a2, s->t2, sizeof(float) * (size_t)nout);
    ld_silu(s->a2, nout);
    float *out = t->acts[u->out].v;
    LD_TRY(conv_fwd(ctx, t, &r->conv2, s->a2, r->cout, u->H, u->W, &p3, out));
    if (r->conv_shortcut.w.ndim) {
        float *sc;
        ALLOC(sc, nout);
        LD_TRY(conv_fwd(ctx, t, &r->conv_shortcut, s->x, cin, u->H, u->W, &p1, sc));
        ld_add(out, out, sc, nout);
    } else {
        ld_add(out, out, s->x, nout);
    }
    if (r->out_scale != 1.0f) ld_scale(out, nout, 1.0f / r->out_scale);
    return LD_OK;
}

static ld_status resnet_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_resnet *r = u->m;
    res_saved s;
    LD_TRY(resnet_fwd(ctx, t, u, &s));
    const int B = t->B, cin = u->C + u->C2;
    const int64_t HW = (int64_t)u->H * u->W, nin = (int64_t)B * cin * HW, nout = (int64_t)B * r->cout * HW;
    const ld_conv2d_params p3 = ld_conv2d_params_make(1, 1), p1 = ld_conv2d_params_make(1, 0);
    float *dh2, *da2, *dt2, *dh1, *da1, *dt1, *dx;
    ZALLOC(dh2, nout);
    const float *dout = t->acts[u->out].g, inv = 1.0f / r->out_scale;
    for (int64_t i = 0; i < nout; i++) dh2[i] = dout[i] * inv;
    /* out = conv2(SiLU(GN2(h1))) */
    ZALLOC(da2, nout);
    LD_TRY(conv_bwd(ctx, t, &r->conv2, dh2, s.a2, r->cout, u->H, u->W, &p3, da2));
    ZALLOC(dt2, nout);
    ld_silu_backward(da2, s.t2, nout, dt2);
    ZALLOC(dh1, nout);
    OK_OR_NOMEM(ld_group_norm_backward(dt2, s.h1, B, r->cout, HW, r->groups, r->eps, &r->norm2.w, dh1,
                                       tr_g(t, &r->norm2.w), tr_g(t, &r->norm2.b)));
    /* h1 = conv1(SiLU(GN1(x))) + time_emb_proj(emb_act) per sample and channel */
    if (r->time_emb_proj.w.ndim) {
        float *dtb;
        ZALLOC(dtb, (int64_t)B * r->cout);
        for (int b = 0; b < B; b++)
            ld_channel_sum_backward(dtb + (int64_t)b * r->cout, dh1 + (int64_t)b * r->cout * HW, 1, r->cout, HW);
        LD_TRY(lin_bwd(ctx, t, &r->time_emb_proj.w, &r->time_emb_proj.b, dtb, t->emb_act, B, t->d_emb_act));
    }
    ZALLOC(da1, nin);
    LD_TRY(conv_bwd(ctx, t, &r->conv1, dh1, s.a1, cin, u->H, u->W, &p3, da1));
    ZALLOC(dt1, nin);
    ld_silu_backward(da1, s.t1, nin, dt1);
    ZALLOC(dx, nin);
    OK_OR_NOMEM(ld_group_norm_backward(dt1, s.x, B, cin, HW, r->groups, r->eps, &r->norm1.w, dx,
                                       tr_g(t, &r->norm1.w), tr_g(t, &r->norm1.b)));
    if (r->conv_shortcut.w.ndim)
        LD_TRY(conv_bwd(ctx, t, &r->conv_shortcut, dh2, s.x, cin, u->H, u->W, &p1, dx));
    else
        add_to(dx, dh2, nout);
    /* split the concatenation's gradient between h and the skip */
    float *g1, *g2 = NULL;
    GRAD(g1, u->in);
    if (u->in2 >= 0) GRAD(g2, u->in2);
    for (int b = 0; b < B; b++) {
        const float *db = dx + (int64_t)b * cin * HW;
        add_to(g1 + (int64_t)b * u->C * HW, db, (int64_t)u->C * HW);
        if (g2) add_to(g2 + (int64_t)b * u->C2 * HW, db + (int64_t)u->C * HW, (int64_t)u->C2 * HW);
    }
    return LD_OK;
}

/* ---- Transformer2DModel: input projection (NCHW -> tokens) ---- */

static ld_status tf_in_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, float **normed) {
    const ld_transformer2d *tf = u->tf;
    const int64_t HW = (int64_t)u->H * u->W, N = t->B * HW;
    float *tmp;
    ALLOC(tmp, N * u->C);
    ALLOC(*normed, N * u->C);
    ld_group_norm(tmp, t->acts[u->in].v, t->B, u->C, HW, tf->groups, 1e-6f, &tf->norm.w, &tf->norm.b);
    ld_nchw_to_nhwc(*normed, tmp, t->B, u->C, HW);
    LD_TRY(lin_fwd(ctx, t, &tf->proj_in.w, opt(&tf->proj_in.b), *normed, N, t->acts[u->out].v));
    return LD_OK;
}

static ld_status tf_in_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_transformer2d *tf = u->tf;
    const int64_t HW = (int64_t)u->H * u->W, N = t->B * HW;
    float *normed, *dn, *dt, *gx;
    LD_TRY(tf_in_fwd(ctx, t, u, &normed));
    ZALLOC(dn, N * u->C);
    LD_TRY(lin_bwd(ctx, t, &tf->proj_in.w, opt(&tf->proj_in.b), t->acts[u->out].g, normed, N, dn));
    ZALLOC(dt, N * u->C);
    ld_nhwc_to_nchw(dt, dn, t->B, u->C, HW);
    GRAD(gx, u->in);
    OK_OR_NOMEM(ld_group_norm_backward(dt, t->acts[u->in].v, t->B, u->C, HW, tf->groups, 1e-6f, &tf->norm.w, gx,
                                       tr_g(t, &tf->norm.w), tr_g(t, &tf->norm.b)));
    return LD_OK;
}

/* ---- BasicTransformerBlock: hs += attn1(LN1 hs); hs += attn2(LN2 hs, ctx); hs += FF(LN3 hs) ---- */

typedef struct {
    float *n, *q, *k, *v, *o, *lse; /* normed input, projections, attention output, row log-sum-exp */
} attn_saved;

typedef struct {
    attn_saved a1, a2;
    float *hs1, *hs2, *n3, *ffp, *gg;
} tblock_saved;

/* hs_out = hs_in + to_out(attention(LN(hs_in) Wq, kv Wk, kv Wv)); kv = LN(hs_in) when self. */
static ld_status attn_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, const ld_wb *norm, const ld_tensor *wq,
                          const ld_tensor *wk, const ld_tensor *wv, const ld_wb *wo, const float *hs_in,
                          float *hs_out, int cross, attn_saved *s, float *feat) {
    const ld_transformer2d *tf = u->tf;
    const int64_t C = u->C, Lq = (int64_t)u->H * u->W, N = t->B * Lq, Lk = cross ? t->L : Lq;
    ALLOC(s->n, N * C);
    ALLOC(s->q, N * C);
    ALLOC(s->k, t->B * Lk * C);
    ALLOC(s->v, t->B * Lk * C);
    ALLOC(s->o, N * C);
    ALLOC(s->lse, t->B * tf->heads * Lq);
    ld_layer_norm(s->n, hs_in, N, C, 1e-5f, &norm->w, &norm->b);
    const float *kv = cross ? t->context : s->n;
    LD_TRY(lin_fwd(ctx, t, wq, NULL, s->n, N, s->q));
    LD_TRY(lin_fwd(ctx, t, wk, NULL, kv, t->B * Lk, s->k));
    LD_TRY(lin_fwd(ctx, t, wv, NULL, kv, t->B * Lk, s->v));
    OK_OR_NOMEM(ld_attention_train_forward(s->o, C, s->lse, s->q, C, s->k, C, s->v, C, t->B, tf->heads, Lq, Lk,
                                           tf->head_dim, 1.0f / sqrtf((float)tf->head_dim)));
    LD_TRY(lin_fwd(ctx, t, &wo->w, opt(&wo->b), s->o, N, hs_out));
    if (feat) memcpy(feat, hs_out, sizeof(float) * (size_t)(N * C)); /* the module's output, before the residual */
    add_to(hs_out, hs_in, N * C);
    return LD_OK;
}

/* dh: d(hs_out) on entry, d(hs_in) on return. dfeat (or NULL): an extra
 * gradient of the module's output (feature distillation). */
static ld_status attn_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, const ld_wb *norm, const ld_tensor *wq,
                          const ld_tensor *wk, const ld_tensor *wv, const ld_wb *wo, const float *hs_in, int cross,
                          const attn_saved *s, float *dh, const float *dfeat) {
    const ld_transformer2d *tf = u->tf;
    const int64_t C = u->C, Lq = (int64_t)u->H * u->W, N = t->B * Lq, Lk = cross ? t->L : Lq;
    float *dout, *dq, *dk, *dv, *dn;
    const float *dmod = dh;
    if (dfeat) {
        float *sum;
        ZALLOC(sum, N * C);
        for (int64_t i = 0; i < N * C; i++) sum[i] = dh[i] + dfeat[i];
        dmod = sum;
    }
    ZALLOC(dout, N * C);
    LD_TRY(lin_bwd(ctx, t, &wo->w, opt(&wo->b), dmod, s->o, N, dout));
    ZALLOC(dq, N * C);
    ZALLOC(dk, t->B * Lk * C);
    ZALLOC(dv, t->B * Lk * C);
    OK_OR_NOMEM(ld_attention_backward(dout, C, s->o, s->lse, s->q, C, s->k, C, s->v, C, t->B, tf->heads, Lq, Lk,
                                      tf->head_dim, 1.0f / sqrtf((float)tf->head_dim), dq, dk, dv));
    ZALLOC(dn, N * C);
    LD_TRY(lin_bwd(ctx, t, wq, NULL, dq, s->n, N, dn));
    const float *kv = cross ? t->context : s->n;
    float *dkv = cross ? NULL : dn; /* the text context takes no gradient */
    LD_TRY(lin_bwd(ctx, t, wk, NULL, dk, kv, t->B * Lk, dkv));
    LD_TRY(lin_bwd(ctx, t, wv, NULL, dv, kv, t->B * Lk, dkv));
    OK_OR_NOMEM(ld_layer_norm_backward(dn, hs_in, N, C, 1e-5f, &norm->w, dh, tr_g(t, &norm->w), tr_g(t, &norm->b)));
    return LD_OK;
}

/* tap (or NULL): where the tapped module's output goes (its kind says which module) */
static ld_status tblock_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, tblock_saved *s, const tr_tap *tap) {
    float *f1 = tap && tap->kind == 0 ? tap->value : NULL, *f2 = tap && tap->kind == 1 ? tap->value : NULL;
    float *fff = tap && tap->kind == 2 ? tap->value : NULL;
    const ld_tblock *b = u->m;
    const int64_t C = u->C, N = t->B * (int64_t)u->H * u->W, I = u->tf->ff_inner;
    const float *hs0 = t->acts[u->in].v;
    float *out = t->acts[u->out].v, *y;
    ALLOC(s->hs1, N * C);
    ALLOC(s->hs2, N * C);
    LD_TRY(attn_fwd(ctx, t, u, &b->norm1, &b->attn1_q, &b->attn1_k, &b->attn1_v, &b->attn1_out, hs0, s->hs1, 0,
                    &s->a1, f1));
    LD_TRY(attn_fwd(ctx, t, u, &b->norm2, &b->attn2_q, &b->attn2_k, &b->attn2_v, &b->attn2_out, s->hs1, s->hs2, 1,
                    &s->a2, f2));
    ALLOC(s->n3, N * C);
    ALLOC(s->ffp, N * 2 * I);
    ALLOC(s->gg, N * I);
    ALLOC(y, N * C);
    ld_layer_norm(s->n3, s->hs2, N, C, 1e-5f, &b->norm3.w, &b->norm3.b);
    LD_TRY(lin_fwd(ctx, t, &b->ff_in.w, &b->ff_in.b, s->n3, N, s->ffp));
    ld_geglu(s->gg, s->ffp, N, I);
    LD_TRY(lin_fwd(ctx, t, &b->ff_out.w, &b->ff_out.b, s->gg, N, y));
    if (fff) memcpy(fff, y, sizeof(float) * (size_t)(N * C));
    ld_add(out, s->hs2, y, N * C);
    return LD_OK;
}

static ld_status tblock_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_tblock *b = u->m;
    tblock_saved s;
    LD_TRY(tblock_fwd(ctx, t, u, &s, NULL));
    const tr_tap *tap = tr_tap_of(t, b);
    const float *dfeat[TR_TAP_KINDS] = {NULL, NULL, NULL};
    if (tap) dfeat[tap->kind] = tap->grad;
    const int64_t C = u->C, N = t->B * (int64_t)u->H * u->W, I = u->tf->ff_inner;
    float *dh, *dgg, *dffp, *gin;
    ZALLOC(dh, N * C);
    memcpy(dh, t->acts[u->out].g, sizeof(float) * (size_t)(N * C));
    /* feed-forward (its output's gradient: the residual's, plus a feature's) */
    const float *dy = dh;
    if (dfeat[2]) {
        float *sum;
        ZALLOC(sum, N * C);
        for (int64_t i = 0; i < N * C; i++) sum[i] = dh[i] + dfeat[2][i];
        dy = sum;
    }
    ZALLOC(dgg, N * I);
    LD_TRY(lin_bwd(ctx, t, &b->ff_out.w, &b->ff_out.b, dy, s.gg, N, dgg));
    ZALLOC(dffp, N * 2 * I);
    ld_geglu_backward(dgg, s.ffp, N, I, dffp);
    float *dn3;
    ZALLOC(dn3, N * C);
    LD_TRY(lin_bwd(ctx, t, &b->ff_in.w, &b->ff_in.b, dffp, s.n3, N, dn3));
    OK_OR_NOMEM(ld_layer_norm_backward(dn3, s.hs2, N, C, 1e-5f, &b->norm3.w, dh, tr_g(t, &b->norm3.w),
                                       tr_g(t, &b->norm3.b)));
    /* cross-attention, then self-attention */
    LD_TRY(attn_bwd(ctx, t, u, &b->norm2, &b->attn2_q, &b->attn2_k, &b->attn2_v, &b->attn2_out, s.hs1, 1, &s.a2, dh,
                    dfeat[1]));
    LD_TRY(attn_bwd(ctx, t, u, &b->norm1, &b->attn1_q, &b->attn1_k, &b->attn1_v, &b->attn1_out, t->acts[u->in].v, 0,
                    &s.a1, dh, dfeat[0]));
    GRAD(gin, u->in);
    add_to(gin, dh, N * C);
    return LD_OK;
}

/* ---- Transformer2DModel: output projection and residual ---- */

static ld_status tf_out_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_transformer2d *tf = u->tf;
    const int64_t HW = (int64_t)u->H * u->W, N = t->B * HW;
    float *tok, *y;
    ALLOC(tok, N * u->C);
    ALLOC(y, N * u->C);
    LD_TRY(lin_fwd(ctx, t, &tf->proj_out.w, opt(&tf->proj_out.b), t->acts[u->in].v, N, tok));
    ld_nhwc_to_nchw(y, tok, t->B, u->C, HW);
    ld_add(t->acts[u->out].v, t->acts[u->in2].v, y, N * u->C);
    return LD_OK;
}

static ld_status tf_out_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_transformer2d *tf = u->tf;
    const int64_t HW = (int64_t)u->H * u->W, N = t->B * HW;
    float *dtok, *ghs, *gx;
    const float *dout = t->acts[u->out].g;
    GRAD(gx, u->in2);
    add_to(gx, dout, N * u->C);
    ALLOC(dtok, N * u->C);
    ld_nchw_to_nhwc(dtok, dout, t->B, u->C, HW);
    GRAD(ghs, u->in);
    LD_TRY(lin_bwd(ctx, t, &tf->proj_out.w, opt(&tf->proj_out.b), dtok, t->acts[u->in].v, N, ghs));
    return LD_OK;
}

/* ---- samplers ---- */

/* Downsample2D: conv 3x3 stride 2 pad 1 (padding 0 is refused at open). */
static ld_status down_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_downsample *d = u->m;
    const ld_conv2d_params p = ld_conv2d_params_make(2, 1);
    return conv_fwd(ctx, t, &d->conv, t->acts[u->in].v, u->C, u->H, u->W, &p, t->acts[u->out].v);
}

static ld_status down_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_downsample *d = u->m;
    float *gx;
    GRAD(gx, u->in);
    const ld_conv2d_params p = ld_conv2d_params_make(2, 1);
    return conv_bwd(ctx, t, &d->conv, t->acts[u->out].g, t->acts[u->in].v, u->C, u->H, u->W, &p, gx);
}

/* Upsample2D: nearest resize, conv 3x3 pad 1 (the model's fused forward when
 * the conv has no adapter). */
static ld_status up_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_upsample *up = u->m;
    if (ld_lora_find(t->lora, &up->conv.w) < 0)
        return ld_upsample_forward(ctx, &t->scratch, up, t->acts[u->out].v, t->acts[u->in].v, t->B, u->H, u->W,
                                   u->Ho, u->Wo);
    float *x2;
    ALLOC(x2, (int64_t)t->B * u->C * u->Ho * u->Wo);
    ld_upsample_nearest(x2, t->acts[u->in].v, t->B, u->C, u->H, u->W, u->Ho, u->Wo);
    const ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    return conv_fwd(ctx, t, &up->conv, x2, u->C, u->Ho, u->Wo, &p, t->acts[u->out].v);
}

static ld_status up_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_upsample *up = u->m;
    const int64_t n = (int64_t)t->B * u->C * u->Ho * u->Wo;
    float *x2, *dx2, *gx;
    ALLOC(x2, n);
    ZALLOC(dx2, n);
    ld_upsample_nearest(x2, t->acts[u->in].v, t->B, u->C, u->H, u->W, u->Ho, u->Wo);
    ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    LD_TRY(conv_bwd(ctx, t, &up->conv, t->acts[u->out].g, x2, u->C, u->Ho, u->Wo, &p, dx2));
    GRAD(gx, u->in);
    ld_upsample_nearest_backward(dx2, t->B, u->C, u->H, u->W, u->Ho, u->Wo, gx);
    return LD_OK;
}

/* ---- output head: conv_out(SiLU(conv_norm_out(h))) ---- */

static ld_status head_fwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u, float **tn, float **act) {
    const ld_unet2d *m = t->u;
    const int64_t HW = (int64_t)u->H * u->W, n = t->B * u->C * HW;
    ALLOC(*tn, n);
    ALLOC(*act, n);
    ld_group_norm(*tn, t->acts[u->in].v, t->B, u->C, HW, m->cfg.groups, m->cfg.eps, &m->conv_norm_out.w,
                  &m->conv_norm_out.b);
    memcpy(*act, *tn, sizeof(float) * (size_t)n);
    ld_silu(*act, n);
    ld_conv2d_params p = same_pad((int)m->conv_out.w.shape[2]);
    ld_conv2d(t->acts[u->out].v, *act, t->B, u->C, u->H, u->W, &m->conv_out.w, &m->conv_out.b, &p);
    return LD_OK;
}

static ld_status head_bwd(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    const ld_unet2d *m = t->u;
    const int64_t HW = (int64_t)u->H * u->W, n = t->B * u->C * HW;
    float *tn, *act, *dact, *dtn, *gx;
    LD_TRY(head_fwd(ctx, t, u, &tn, &act));
    ZALLOC(dact, n);
    ld_conv2d_params p = same_pad((int)m->conv_out.w.shape[2]);
    OK_OR_NOMEM(ld_conv2d_backward(t->acts[u->out].g, act, t->B, u->C, u->H, u->W, &m->conv_out.w, &p, dact,
                                   tr_g(t, &m->conv_out.w), tr_g(t, &m->conv_out.b)));
    ZALLOC(dtn, n);
    ld_silu_backward(dact, tn, n, dtn);
    GRAD(gx, u->in);
    OK_OR_NOMEM(ld_group_norm_backward(dtn, t->acts[u->in].v, t->B, u->C, HW, m->cfg.groups, m->cfg.eps,
                                       &m->conv_norm_out.w, gx, tr_g(t, &m->conv_norm_out.w),
                                       tr_g(t, &m->conv_norm_out.b)));
    return LD_OK;
}

/* ---- dispatch ---- */

ld_status tr_unit_forward(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    switch (u->kind) {
    case U_CONV_IN: return conv_in_fwd(ctx, t, u);
    case U_RESNET: {
        res_saved s;
        return resnet_fwd(ctx, t, u, &s);
    }
    case U_TF_IN: {
        float *normed;
        return tf_in_fwd(ctx, t, u, &normed);
    }
    case U_TBLOCK: {
        tblock_saved s;
        return tblock_fwd(ctx, t, u, &s, tr_tap_of(t, u->m));
    }
    case U_TF_OUT: return tf_out_fwd(ctx, t, u);
    case U_DOWN: return down_fwd(ctx, t, u);
    case U_UP: return up_fwd(ctx, t, u);
    case U_HEAD: {
        float *tn, *act;
        return head_fwd(ctx, t, u, &tn, &act);
    }
    }
    return ld_fail(ctx, LD_ERR_INTERNAL, "training: unknown unit kind %d", (int)u->kind);
}

ld_status tr_unit_backward(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u) {
    switch (u->kind) {
    case U_CONV_IN: return conv_in_bwd(ctx, t, u);
    case U_RESNET: return resnet_bwd(ctx, t, u);
    case U_TF_IN: return tf_in_bwd(ctx, t, u);
    case U_TBLOCK: return tblock_bwd(ctx, t, u);
    case U_TF_OUT: return tf_out_bwd(ctx, t, u);
    case U_DOWN: return down_bwd(ctx, t, u);
    case U_UP: return up_bwd(ctx, t, u);
    case U_HEAD: return head_bwd(ctx, t, u);
    }
    return ld_fail(ctx, LD_ERR_INTERNAL, "training: unknown unit kind %d", (int)u->kind);
}
