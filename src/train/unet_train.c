/* The U-Net trainer (see unet_train.h): opening a folder as f32 master
 * weights, the plan of units (the inference forward of models/unet2d.c
 * unrolled into blocks), the time embedding, and the forward and backward
 * drivers. */
#include "train/unet_train_internal.h"

#include "io/model_folder.h"
#include "tensor/gemm.h"
#include "train/grad_ops.h"

#include <stdlib.h>

ld_status ld_train_unet_open(ld_ctx *ctx, const char *unet_dir, int frozen, ld_train_unet **out) {
    *out = NULL;
    ld_train_unet *t;
    LD_TRY(ld_calloc(ctx, (void **)&t, 1, sizeof *t, "U-Net trainer"));
    ld_arena_init(&t->scratch, 0);
    ld_component_files f;
    ld_status st = ld_component_files_open(ctx, unet_dir, NULL, &f);
    if (st != LD_OK) {
        free(t);
        return st;
    }
    t->config = json_incref((json_t *)f.config);
    if (frozen) { /* the model reads the file's weights in place and owns them */
        st = ld_unet2d_build(ctx, f.where, f.config, f.ws, &t->u);
        if (st == LD_OK) ld_unet2d_own_weights(t->u);
        ld_component_files_close(&f, st == LD_OK);
    } else {
        st = ld_train_params_from_weights(ctx, f.ws, &t->p);
        if (st == LD_OK) {
            st = ld_unet2d_build(ctx, f.where, f.config, t->p.source, &t->u);
            if (st == LD_OK) { /* the model owns it now */
                ld_unet2d_own_weights(t->u);
                t->p.source = NULL;
            }
        }
        ld_component_files_close(&f, 0);
    }
    if (st == LD_OK && t->p.count) {
        t->seq_of = malloc(sizeof(int) * t->p.count);
        t->order = malloc(sizeof(int) * t->p.count);
        if (!t->seq_of || !t->order) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    if (st == LD_OK && t->u->cfg.downsample_padding != 1)
        st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: training supports downsample_padding 1 (SDXL's), not %d", unet_dir,
                     t->u->cfg.downsample_padding);
    if (st != LD_OK) {
        ld_train_unet_free(t);
        return st;
    }
    *out = t;
    return LD_OK;
}

float *tr_g(const ld_train_unet *t, const ld_tensor *w) {
    float *g = ld_train_grad_of(&t->p, w);
    if (g && t->seq_of) { /* the tensor whose offset this is: binary search of the packed layout */
        const int64_t off = g - t->p.grad;
        size_t lo = 0, hi = t->p.count;
        while (hi - lo > 1) {
            const size_t mid = (lo + hi) / 2;
            if (t->p.offset[mid] <= off) lo = mid;
            else hi = mid;
        }
        t->seq_of[lo] = t->bw_seq;
    }
    return g;
}

void ld_train_unet_set_precision(ld_train_unet *t, ld_precision p) {
    t->has_precision = 1;
    t->precision = p;
}

void ld_train_unet_on_block_done(ld_train_unet *t, ld_status (*fn)(ld_ctx *ctx, void *user, int seq), void *user) {
    t->block_done = fn;
    t->block_user = user;
}

const int *ld_train_unet_grad_order(const ld_train_unet *t) { return t->order_known ? t->order : NULL; }

/* Block seq of the backward is done. */
static ld_status block_done(ld_ctx *ctx, ld_train_unet *t) {
    const int seq = t->bw_seq++;
    return t->block_done ? t->block_done(ctx, t->block_user, seq) : LD_OK;
}

/* Forgets the plan and frees its activations and the gradient pool. */
static void free_step(ld_train_unet *t) {
    for (int i = 0; i < t->nacts; i++) {
        if (t->acts[i].owned) free(t->acts[i].v);
        free(t->acts[i].g);
    }
    for (int i = 0; i < t->npool; i++) free(t->pool[i]);
    t->npool = 0;
    t->nacts = t->nunits = 0;
    t->planned = 0;
    free(t->temb_in);
    t->temb_in = NULL;
    t->kept_bytes = 0;
}

/* A gradient buffer goes back to the pool (or is freed when the pool cannot grow). */
static void pool_put(ld_train_unet *t, float *p, int64_t n) {
    if (!p) return;
    if (t->npool == t->pool_cap) {
        int cap = t->pool_cap ? 2 * t->pool_cap : 64;
        float **a = realloc(t->pool, sizeof *a * (size_t)cap);
        int64_t *b = a ? realloc(t->pool_n, sizeof *b * (size_t)cap) : NULL;
        if (a) t->pool = a;
        if (!a || !b) {
            free(p);
            return;
        }
        t->pool_n = b;
        t->pool_cap = cap;
    }
    t->pool[t->npool] = p;
    t->pool_n[t->npool++] = n;
}

ld_train_params *ld_train_unet_trainable(ld_train_unet *t) { return t->lora ? &t->lora->params : &t->p; }

void ld_train_unet_free(ld_train_unet *t) {
    if (!t) return;
    free_step(t);
    if (t->lora) {
        ld_lora_free(t->lora);
        free(t->lora);
    }
    free(t->acts);
    free(t->units);
    free(t->pool);
    free(t->pool_n);
    tr_free_taps(t);
    free(t->seq_of);
    free(t->order);
    ld_unet2d_free(t->u);
    ld_train_params_free(&t->p);
    if (t->config) json_decref(t->config);
    ld_arena_free(&t->scratch);
    free(t);
}

ld_train_params *ld_train_unet_params(ld_train_unet *t) { return &t->p; }
const json_t *ld_train_unet_config(const ld_train_unet *t) { return t->config; }
int ld_train_unet_out_channels(const ld_train_unet *t) { return t->u->cfg.out_channels; }
size_t ld_train_unet_activation_bytes(const ld_train_unet *t) { return t->kept_bytes + t->scratch.peak; }

/* Zeroes n floats; large buffers on all threads (the others would wait). */
static void zero_f32(float *p, int64_t n) {
    enum { PIECE = 1 << 16 };
    if (n < 4 * PIECE) {
        memset(p, 0, sizeof(float) * (size_t)n);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += PIECE) memset(p + i, 0, sizeof(float) * (size_t)(n - i < PIECE ? n - i : PIECE));
}

float *tr_alloc(ld_ctx *ctx, ld_train_unet *t, int64_t n) { return ld_arena_alloc_f32(ctx, &t->scratch, (size_t)n); }

float *tr_zalloc(ld_ctx *ctx, ld_train_unet *t, int64_t n) {
    float *p = tr_alloc(ctx, t, n);
    if (p) zero_f32(p, n);
    return p;
}

float *tr_grad(ld_ctx *ctx, ld_train_unet *t, int id) {
    tr_act *a = &t->acts[id];
    if (a->g) return a->g;
    for (int i = t->npool - 1; i >= 0; i--) /* a returned buffer of the same size */
        if (t->pool_n[i] == a->n) {
            a->g = t->pool[i];
            t->pool[i] = t->pool[t->npool - 1];
            t->pool_n[i] = t->pool_n[--t->npool];
            zero_f32(a->g, a->n);
            return a->g;
        }
    if (ld_calloc_huge(NULL, (void **)&a->g, sizeof(float) * (size_t)a->n, "") != LD_OK) /* NULL then */
        ld_fail(ctx, LD_ERR_NOMEM, "training: cannot allocate a gradient of %lld floats", (long long)a->n);
    return a->g;
}

/* ---- the plan ---- */

/* A new kept activation of n floats (value allocated unless v is given). */
static int new_act(ld_ctx *ctx, ld_train_unet *t, int64_t n, float *v) {
    if (t->nacts == t->acts_cap) {
        int cap = t->acts_cap ? 2 * t->acts_cap : 64;
        tr_act *p = realloc(t->acts, sizeof *p * (size_t)cap);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory"), -1;
        t->acts = p;
        t->acts_cap = cap;
    }
    tr_act *a = &t->acts[t->nacts];
    *a = (tr_act){.v = v, .n = n, .owned = v == NULL};
    if (!v && ld_calloc_huge(NULL, (void **)&a->v, sizeof(float) * (size_t)n, "") != LD_OK)
        return ld_fail(ctx, LD_ERR_NOMEM, "training: cannot keep an activation of %lld floats", (long long)n), -1;
    if (!v) t->kept_bytes += sizeof(float) * (size_t)n;
    return t->nacts++;
}

/* Appends a unit whose output is a new activation of `nout` floats; returns the output id. */
static int add_unit(ld_ctx *ctx, ld_train_unet *t, tr_unit u, int64_t nout) {
    if (t->nunits == t->units_cap) {
        int cap = t->units_cap ? 2 * t->units_cap : 64;
        tr_unit *p = realloc(t->units, sizeof *p * (size_t)cap);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory"), -1;
        t->units = p;
        t->units_cap = cap;
    }
    if ((u.out = new_act(ctx, t, nout, NULL)) < 0) return -1;
    t->units[t->nunits++] = u;
    return u.out;
}

#define UNIT(id, ...)                                                          \
    do {                                                                       \
        if (((id) = add_unit(ctx, t, (tr_unit){__VA_ARGS__}, nout)) < 0)       \
            return LD_ERR_NOMEM;                                               \
    } while (0)

/* ResnetBlock2D (+ Transformer2DModel) of one layer: h (C channels) and an
 * optional skip -> the layer's output id. */
static ld_status plan_layer(ld_ctx *ctx, ld_train_unet *t, const ld_resnet *r, const ld_transformer2d *tf,
                            int *h, int *C, int skip, int Cs, int H, int W) {
    const int64_t HW = (int64_t)H * W;
    int64_t nout = (int64_t)t->B * r->cout * HW;
    if (*C + Cs != r->cin)
        return ld_fail(ctx, LD_ERR_INTERNAL, "training plan: %d + %d channels into a resnet of %d", *C, Cs, r->cin);
    int o;
    UNIT(o, .kind = U_RESNET, .m = r, .in = *h, .in2 = skip, .C = *C, .C2 = Cs, .H = H, .W = W, .Ho = H, .Wo = W);
    *h = o;
    *C = r->cout;
    if (tf) {
        int x = o, hs;
        UNIT(hs, .kind = U_TF_IN, .tf = tf, .in = x, .in2 = -1, .C = *C, .H = H, .W = W, .Ho = H, .Wo = W);
        for (int k = 0; k < tf->depth; k++)
            UNIT(hs, .kind = U_TBLOCK, .m = &tf->blocks[k], .tf = tf, .in = hs, .in2 = -1, .C = *C, .H = H, .W = W,
                 .Ho = H, .Wo = W);
        UNIT(*h, .kind = U_TF_OUT, .tf = tf, .in = hs, .in2 = x, .C = *C, .C2 = *C, .H = H, .W = W, .Ho = H, .Wo = W);
    }
    return LD_OK;
}

typedef struct {
    int id, C, H, W;
} skip_t;

static ld_status plan(ld_ctx *ctx, ld_train_unet *t, int sample_id) {
    const ld_unet2d *m = t->u;
    const unet_config *c = &m->cfg;
    skip_t skips[1 + UNET_MAX_BLOCKS * (UNET_MAX_LAYERS + 1)];
    int nskip = 0, H = t->H, W = t->W, C = c->block_out_channels[0], h;
    int64_t nout = (int64_t)t->B * C * H * W;
    UNIT(h, .kind = U_CONV_IN, .in = sample_id, .in2 = -1, .C = c->in_channels, .H = H, .W = W, .Ho = H, .Wo = W);
    skips[nskip++] = (skip_t){h, C, H, W};
    for (int i = 0; i < 2 * UNET_MAX_BLOCKS + 1; i++) t->block_end[i] = -1;
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &m->down[i];
        for (int j = 0; j < b->nlayers; j++) {
            LD_TRY(plan_layer(ctx, t, &b->resnets[j], b->cross_attn ? &b->attentions[j] : NULL, &h, &C, -1, 0, H, W));
            skips[nskip++] = (skip_t){h, C, H, W};
        }
        if (b->has_sampler) {
            int Ho, Wo;
            ld_downsample_out_size(&b->down, H, W, &Ho, &Wo);
            nout = (int64_t)t->B * C * Ho * Wo;
            UNIT(h, .kind = U_DOWN, .m = &b->down, .in = h, .in2 = -1, .C = C, .H = H, .W = W, .Ho = Ho, .Wo = Wo);
            H = Ho;
            W = Wo;
            skips[nskip++] = (skip_t){h, C, H, W};
        }
        t->block_end[i] = t->nunits - 1;
    }
    if (c->has_mid) {
        LD_TRY(plan_layer(ctx, t, &m->mid_resnets[0], &m->mid_attention, &h, &C, -1, 0, H, W));
        LD_TRY(plan_layer(ctx, t, &m->mid_resnets[1], NULL, &h, &C, -1, 0, H, W));
        t->block_end[c->nblocks] = t->nunits - 1;
    }
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &m->up[i];
        for (int j = 0; j < b->nlayers; j++) {
            const skip_t *s = &skips[--nskip];
            LD_TRY(plan_layer(ctx, t, &b->resnets[j], b->cross_attn ? &b->attentions[j] : NULL, &h, &C, s->id, s->C,
                              H, W));
        }
        if (b->has_sampler) {
            const skip_t *next = &skips[nskip - 1];
            nout = (int64_t)t->B * C * next->H * next->W;
            UNIT(h, .kind = U_UP, .m = &b->up, .in = h, .in2 = -1, .C = C, .H = H, .W = W, .Ho = next->H,
                 .Wo = next->W);
            H = next->H;
            W = next->W;
        }
        t->block_end[c->nblocks + 1 + i] = t->nunits - 1;
    }
    nout = (int64_t)t->B * c->out_channels * H * W;
    UNIT(h, .kind = U_HEAD, .in = h, .in2 = -1, .C = C, .H = H, .W = W, .Ho = H, .Wo = W);
    return LD_OK;
}

/* ---- time embedding: SiLU(lin2(SiLU(lin1(sin t))) [+ add_lin2(SiLU(add_lin1([text_embeds | sin ids])))]) ---- */

static ld_status temb_forward(ld_ctx *ctx, ld_train_unet *t, const float *timesteps, const float *text_embeds,
                              const float *time_ids) {
    const ld_unet2d *m = t->u;
    const unet_config *c = &m->cfg;
    const int B = t->B, D = c->temb_dim, P = c->add_time_dim ? c->add_in_dim : 0;
    /* one allocation: temb_in [B, time_in] | temb_h [B, D] | add_in [B, P] | add_h [B, D] | emb, emb_act, d_emb_act */
    const int64_t n = (int64_t)B * (c->time_in_dim + 5 * D + P);
    if (!(t->temb_in = calloc((size_t)n, sizeof(float))))
        return ld_fail(ctx, LD_ERR_NOMEM, "training: out of memory for the time embedding");
    t->temb_h = t->temb_in + (int64_t)B * c->time_in_dim;
    t->add_in = t->temb_h + (int64_t)B * D;
    t->add_h = t->add_in + (int64_t)B * P;
    t->emb = t->add_h + (int64_t)B * D;
    t->emb_act = t->emb + (int64_t)B * D;
    t->d_emb_act = t->emb_act + (int64_t)B * D;
    ld_timestep_embedding(t->temb_in, timesteps, B, c->time_in_dim, c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f);
    ld_linear(t->temb_h, t->temb_in, B, &m->time_linear_1.w, &m->time_linear_1.b);
    memcpy(t->emb_act, t->temb_h, sizeof(float) * (size_t)B * D);
    ld_silu(t->emb_act, (int64_t)B * D);
    ld_linear(t->emb, t->emb_act, B, &m->time_linear_2.w, &m->time_linear_2.b);
    if (c->add_time_dim) {
        const int T = c->text_embeds_dim, S = 6 * c->add_time_dim;
        size_t mark = ld_arena_mark(&t->scratch);
        float *sin_ids, *aug;
        if (!(sin_ids = tr_zalloc(ctx, t, (int64_t)B * S)) || !(aug = tr_zalloc(ctx, t, (int64_t)B * D)))
            return LD_ERR_NOMEM;
        ld_timestep_embedding(sin_ids, time_ids, (int64_t)B * 6, c->add_time_dim, c->flip_sin_to_cos, c->freq_shift,
                              1.0f, 10000.0f);
        for (int b = 0; b < B; b++) {
            memcpy(t->add_in + (int64_t)b * P, text_embeds + (int64_t)b * T, sizeof(float) * T);
            memcpy(t->add_in + (int64_t)b * P + T, sin_ids + (int64_t)b * S, sizeof(float) * S);
        }
        ld_linear(t->add_h, t->add_in, B, &m->add_linear_1.w, &m->add_linear_1.b);
        memcpy(t->emb_act, t->add_h, sizeof(float) * (size_t)B * D);
        ld_silu(t->emb_act, (int64_t)B * D);
        ld_linear(aug, t->emb_act, B, &m->add_linear_2.w, &m->add_linear_2.b);
        ld_add(t->emb, t->emb, aug, (int64_t)B * D);
        ld_arena_reset(&t->scratch, mark);
    }
    memcpy(t->emb_act, t->emb, sizeof(float) * (size_t)B * D);
    ld_silu(t->emb_act, (int64_t)B * D);
    return LD_OK;
}

/* One MLP branch backward: y = lin2(SiLU(h)), h = lin1(x); dy given. */
static ld_status mlp_backward(ld_ctx *ctx, ld_train_unet *t, const ld_wb *l1, const ld_wb *l2, const float *x,
                              const float *h, const float *dy) {
    const int B = t->B, D = t->u->cfg.temb_dim;
    float *ha, *dha, *dh;
    if (!(ha = tr_zalloc(ctx, t, (int64_t)B * D)) || !(dha = tr_zalloc(ctx, t, (int64_t)B * D)) ||
        !(dh = tr_zalloc(ctx, t, (int64_t)B * D)))
        return LD_ERR_NOMEM;
    memcpy(ha, h, sizeof(float) * (size_t)B * D);
    ld_silu(ha, (int64_t)B * D);
    ld_linear_backward(dy, ha, B, &l2->w, dha, tr_g(t, &l2->w), tr_g(t, &l2->b));
    ld_silu_backward(dha, h, (int64_t)B * D, dh);
    ld_linear_backward(dh, x, B, &l1->w, NULL, tr_g(t, &l1->w), tr_g(t, &l1->b));
    return LD_OK;
}

static ld_status temb_backward(ld_ctx *ctx, ld_train_unet *t) {
    const ld_unet2d *m = t->u;
    const int B = t->B, D = m->cfg.temb_dim;
    size_t mark = ld_arena_mark(&t->scratch);
    float *demb = tr_zalloc(ctx, t, (int64_t)B * D);
    if (!demb) return LD_ERR_NOMEM;
    ld_silu_backward(t->d_emb_act, t->emb, (int64_t)B * D, demb);
    ld_status st = mlp_backward(ctx, t, &m->time_linear_1, &m->time_linear_2, t->temb_in, t->temb_h, demb);
    if (st == LD_OK && m->cfg.add_time_dim)
        st = mlp_backward(ctx, t, &m->add_linear_1, &m->add_linear_2, t->add_in, t->add_h, demb);
    ld_arena_reset(&t->scratch, mark);
    return st;
}

/* ---- the step ---- */

static ld_status forward(ld_ctx *ctx, ld_train_unet *t, const float *sample, int B, int H, int W,
                         const float *timesteps, const float *context, int L, const float *text_embeds,
                         const float *time_ids, float *pred) {
    const unet_config *c = &t->u->cfg;
    if (B < 1 || H < 1 || W < 1 || L < 1 || B > 4096 || H > 16384 || W > 16384 || L > 1 << 20)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training forward: bad sizes B=%d H=%d W=%d L=%d", B, H, W, L);
    if (!sample || !timesteps || !context || !pred || (c->add_time_dim && (!text_embeds || !time_ids)))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training forward: missing inputs");
    const int64_t nin = (int64_t)B * c->in_channels * H * W;
    const int reuse = t->planned && t->B == B && t->H == H && t->W == W && t->L == L;
    if (!reuse) { /* a new size: a new plan (the same size reuses every buffer) */
        free_step(t);
        t->B = B, t->H = H, t->W = W, t->L = L;
        if (new_act(ctx, t, nin, c->center_input_sample ? NULL : (float *)sample) != 0) return LD_ERR_NOMEM;
        ld_status st = plan(ctx, t, 0);
        if (st != LD_OK) {
            free_step(t);
            return st;
        }
        t->planned = 1;
    }
    LD_TRY(tr_size_taps(ctx, t));
    t->context = context;
    free(t->temb_in);
    t->temb_in = NULL;
    LD_TRY(temb_forward(ctx, t, timesteps, text_embeds, time_ids));
    if (c->center_input_sample)
        for (int64_t i = 0; i < nin; i++) t->acts[0].v[i] = 2.0f * sample[i] - 1.0f;
    else
        t->acts[0].v = (float *)sample;
    for (int i = 0; i < t->nunits; i++) {
        size_t mark = ld_arena_mark(&t->scratch);
        ld_status st = tr_unit_forward(ctx, t, &t->units[i]);
        ld_arena_reset(&t->scratch, mark);
        LD_TRY(st);
        tr_tap_unit_forward(t, i);
    }
    const tr_act *out = &t->acts[t->units[t->nunits - 1].out];
    memcpy(pred, out->v, sizeof(float) * (size_t)out->n);
    t->forward_done = 1;
    return LD_OK;
}

static ld_status backward(ld_ctx *ctx, ld_train_unet *t, const float *dpred) {
    if (!t->planned || !t->forward_done)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training backward: no forward to reverse");
    for (int i = 0; i < t->nacts; i++) { /* gradients an interrupted backward left behind */
        pool_put(t, t->acts[i].g, t->acts[i].n);
        t->acts[i].g = NULL;
    }
    const int last = t->units[t->nunits - 1].out;
    float *g = tr_grad(ctx, t, last);
    if (!g) return LD_ERR_NOMEM;
    memcpy(g, dpred, sizeof(float) * (size_t)t->acts[last].n);
    t->bw_seq = 0;
    for (size_t i = 0; t->seq_of && i < t->p.count; i++) t->seq_of[i] = -1;
    for (int i = t->nunits - 1; i >= 0; i--) {
        const tr_unit *u = &t->units[i];
        tr_act *o = &t->acts[u->out];
        LD_TRY(tr_tap_unit_backward(ctx, t, i));
        if (o->g) { /* an output nothing downstream depends on needs no backward */
            size_t mark = ld_arena_mark(&t->scratch);
            ld_status st = tr_unit_backward(ctx, t, u);
            ld_arena_reset(&t->scratch, mark);
            LD_TRY(st);
        }
        /* every consumer of this output came later in the forward: its gradient is done */
        pool_put(t, o->g, o->n);
        o->g = NULL;
        LD_TRY(block_done(ctx, t));
    }
    pool_put(t, t->acts[0].g, t->acts[0].n);
    t->acts[0].g = NULL;
    LD_TRY(temb_backward(ctx, t));
    LD_TRY(block_done(ctx, t));
    if (t->seq_of) {
        memcpy(t->order, t->seq_of, sizeof(int) * t->p.count);
        t->order_known = 1;
    }
    t->forward_done = 0; /* a second backward needs a new forward */
    /* the scratch peak is known now: one block, so later steps allocate nothing */
    return ld_arena_reserve(ctx, &t->scratch, t->scratch.peak);
}

ld_status ld_train_unet_forward(ld_ctx *ctx, ld_train_unet *t, const float *sample, int B, int H, int W,
                                const float *timesteps, const float *context, int L, const float *text_embeds,
                                const float *time_ids, float *pred) {
    const ld_precision prev = ld_gemm_get_precision();
    if (t->has_precision) ld_gemm_set_precision(t->precision);
    const int direct = ld_conv_set_direct(1); /* the backward differentiates the direct sums */
    ld_status st = forward(ctx, t, sample, B, H, W, timesteps, context, L, text_embeds, time_ids, pred);
    ld_conv_set_direct(direct);
    ld_gemm_set_precision(prev);
    return st;
}

ld_status ld_train_unet_backward(ld_ctx *ctx, ld_train_unet *t, const float *dpred) {
    const ld_precision prev = ld_gemm_get_precision();
    if (t->has_precision) ld_gemm_set_precision(t->precision);
    const int direct = ld_conv_set_direct(1); /* recomputed blocks as the forward ran them */
    ld_status st = backward(ctx, t, dpred);
    ld_conv_set_direct(direct);
    ld_gemm_set_precision(prev);
    return st;
}
