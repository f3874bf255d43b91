/* The U-Net trainer's hooks on the model (see unet_train.h): LoRA adapters
 * on the attention projections (or every linear of the transformers) and
 * optionally the ResNets' and samplers' convolutions, and the feature taps of KOALA's
 * distillation (the attn1 outputs the forward keeps). */
#include "train/unet_train_internal.h"

#include <stdlib.h>
#include <string.h>

/* Adds one layer (w != NULL) or counts it; returns the new n. */
static size_t add(ld_lora_layer *w, size_t n, const ld_tensor *wt, int rank, float alpha, int stride, int pad) {
    if (w) w[n] = (ld_lora_layer){wt, rank, alpha, ld_conv2d_params_make(stride, pad), 0};
    return n + 1;
}

/* The adapted layers of one Transformer2DModel: the attention projections
 * (to_q, to_k, to_v, to_out.0 of attn1 and attn2), and with all_linear also
 * proj_in, proj_out (linears, or 1x1 convolutions with 4-D adapters where
 * use_linear_projection is false) and the feed-forward's two linears. */
static size_t lora_weights(const ld_transformer2d *tf, const ld_train_lora_spec *sp, int conv_proj, ld_lora_layer *w,
                           size_t n) {
    const ld_tensor *io[2] = {&tf->proj_in.w, &tf->proj_out.w};
    for (int i = 0; sp->all_linear && i < 2; i++) { /* linear (SDXL's) or 1x1-conv projections, as kohya */
        n = add(w, n, io[i], sp->rank, sp->alpha, 1, 0);
        if (w) w[n - 1].conv1x1 = conv_proj; /* run as linears, saved 4-D */
    }
    for (int k = 0; k < tf->depth; k++) {
        const ld_tblock *b = &tf->blocks[k];
        const ld_tensor *p[10] = {&b->attn1_q, &b->attn1_k, &b->attn1_v, &b->attn1_out.w, &b->attn2_q,
                                  &b->attn2_k, &b->attn2_v, &b->attn2_out.w, &b->ff_in.w,  &b->ff_out.w};
        for (int i = 0; i < (sp->all_linear ? 10 : 8); i++) n = add(w, n, p[i], sp->rank, sp->alpha, 1, 0);
    }
    return n;
}

/* With conv_rank, a ResnetBlock2D's layers as kohya's LoRA-C3Lier adapts
 * them: conv1, conv2 (3x3) at the convolution rank, conv_shortcut (1x1) and
 * time_emb_proj (linear) at the linear rank. */
static size_t resnet_weights(const ld_resnet *r, const ld_train_lora_spec *sp, ld_lora_layer *w, size_t n) {
    if (!sp->conv_rank) return n;
    n = add(w, n, &r->conv1.w, sp->conv_rank, sp->conv_alpha, 1, 1);
    n = add(w, n, &r->conv2.w, sp->conv_rank, sp->conv_alpha, 1, 1);
    if (r->conv_shortcut.w.ndim) n = add(w, n, &r->conv_shortcut.w, sp->rank, sp->alpha, 1, 0);
    if (r->time_emb_proj.w.ndim) n = add(w, n, &r->time_emb_proj.w, sp->rank, sp->alpha, 1, 0);
    return n;
}

/* Every adapted layer in module order (down, mid, up). */
static size_t all_lora_weights(const ld_unet2d *m, const ld_train_lora_spec *sp, ld_lora_layer *w) {
    const unet_config *c = &m->cfg;
    const int cp = !c->linear_projection;
    size_t n = 0;
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &m->down[i];
        for (int j = 0; j < b->nlayers; j++) {
            n = resnet_weights(&b->resnets[j], sp, w, n);
            if (b->cross_attn) n = lora_weights(&b->attentions[j], sp, cp, w, n);
        }
        if (b->has_sampler && sp->conv_rank) n = add(w, n, &b->down.conv.w, sp->conv_rank, sp->conv_alpha, 2, 1);
    }
    if (c->has_mid) {
        n = resnet_weights(&m->mid_resnets[0], sp, w, n);
        n = lora_weights(&m->mid_attention, sp, cp, w, n);
        n = resnet_weights(&m->mid_resnets[1], sp, w, n);
    }
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &m->up[i];
        for (int j = 0; j < b->nlayers; j++) {
            n = resnet_weights(&b->resnets[j], sp, w, n);
            if (b->cross_attn) n = lora_weights(&b->attentions[j], sp, cp, w, n);
        }
        if (b->has_sampler && sp->conv_rank) n = add(w, n, &b->up.conv.w, sp->conv_rank, sp->conv_alpha, 1, 1);
    }
    return n;
}

ld_status ld_train_unet_add_lora(ld_ctx *ctx, ld_train_unet *t, const ld_train_lora_spec *sp, uint64_t seed) {
    const size_t n = all_lora_weights(t->u, sp, NULL);
    ld_lora_layer *w = malloc(sizeof *w * (n ? n : 1));
    ld_lora *l = calloc(1, sizeof *l);
    ld_status st = w && l ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    if (st == LD_OK) {
        all_lora_weights(t->u, sp, w);
        st = ld_lora_create(ctx, w, n, seed, l);
    }
    free(w);
    if (st != LD_OK) {
        free(l);
        return st;
    }
    if (t->lora) {
        ld_lora_free(t->lora);
        free(t->lora);
    }
    t->lora = l;
    return LD_OK;
}

ld_lora *ld_train_unet_lora(ld_train_unet *t) { return t->lora; }

/* ---- feature taps ---- */

tr_tap *tr_tap_of(ld_train_unet *t, const ld_tblock *b) {
    for (int i = 0; i < t->ntaps; i++)
        if (t->taps[i].block == b) return &t->taps[i];
    return NULL;
}

void tr_free_taps(ld_train_unet *t) {
    for (int i = 0; i < t->ntaps; i++) {
        free(t->taps[i].name);
        free(t->taps[i].value);
        free(t->taps[i].grad);
    }
    free(t->taps);
    t->taps = NULL;
    t->ntaps = 0;
}

/* Module kinds a tap can name inside a transformer block, by their last part. */
static const char *const tap_kinds[TR_TAP_KINDS] = {"attn1", "attn2", "ff"};

/* The transformer block holding `module` ("<block>.attn1", ".attn2" or ".ff"), in one Transformer2DModel. */
static const ld_tblock *find_module(const ld_transformer2d *tf, const char *module, int *kind) {
    for (int k = 0; k < tf->depth; k++) {
        const char *q = tf->blocks[k].attn1_q.name; /* "<block>.attn1.to_q.weight" */
        const size_t len = q ? strlen(q) - strlen("attn1.to_q.weight") : 0;
        if (!q || strncmp(q, module, len)) continue;
        for (int i = 0; i < TR_TAP_KINDS; i++)
            if (!strcmp(module + len, tap_kinds[i])) {
                *kind = i;
                return &tf->blocks[k];
            }
    }
    return NULL;
}

ld_status ld_train_unet_set_taps(ld_ctx *ctx, ld_train_unet *t, const char *const *names, int n) {
    tr_free_taps(t);
    if (n <= 0) return LD_OK;
    if (!(t->taps = calloc((size_t)n, sizeof *t->taps))) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    const ld_unet2d *m = t->u;
    const unet_config *c = &m->cfg;
    for (int i = 0; i < n; i++) {
        const ld_tblock *b = NULL;
        int kind = 0, blk = -1, bi, end = 0, dup = 0;
        if (sscanf(names[i], "down_blocks.%d%n", &bi, &end) == 1 && !names[i][end] && bi >= 0 && bi < c->nblocks)
            blk = bi;
        else if (!strcmp(names[i], "mid_block") && c->has_mid)
            blk = c->nblocks;
        else if (sscanf(names[i], "up_blocks.%d%n", &bi, &end) == 1 && !names[i][end] && bi >= 0 && bi < c->nblocks)
            blk = c->nblocks + 1 + bi;
        for (int k = 0; blk < 0 && !b && k < c->nblocks; k++)
            for (int j = 0; !b && j < m->down[k].nlayers; j++)
                if (m->down[k].cross_attn) b = find_module(&m->down[k].attentions[j], names[i], &kind);
        for (int k = 0; blk < 0 && !b && k < c->nblocks; k++)
            for (int j = 0; !b && j < m->up[k].nlayers; j++)
                if (m->up[k].cross_attn) b = find_module(&m->up[k].attentions[j], names[i], &kind);
        if (blk < 0 && !b && c->has_mid) b = find_module(&m->mid_attention, names[i], &kind);
        for (int j = 0; j < i; j++) /* one tap per transformer block, and per block output */
            dup |= blk >= 0 ? t->taps[j].blk == blk : t->taps[j].block == b;
        if ((!b && blk < 0) || dup) {
            tr_free_taps(t);
            return ld_fail(ctx, LD_ERR_MODEL,
                           "feature '%s' is neither the attn1, attn2 or ff of a transformer block of this U-Net nor "
                           "one of its down_blocks.N, mid_block, up_blocks.N (or it is tapped twice)",
                           names[i]);
        }
        t->taps[i].block = b;
        t->taps[i].kind = kind;
        t->taps[i].blk = blk;
        t->ntaps = i + 1;
        if (!(t->taps[i].name = strdup(names[i]))) {
            tr_free_taps(t);
            return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        }
    }
    return LD_OK;
}

float *ld_train_unet_tap(ld_train_unet *t, int i, int64_t *n, float **grad, int64_t shape[3]) {
    if (i < 0 || i >= t->ntaps) return NULL;
    if (n) *n = t->taps[i].n;
    if (grad) *grad = t->taps[i].grad;
    if (shape) shape[0] = t->B, shape[1] = t->taps[i].tokens, shape[2] = t->taps[i].C;
    return t->taps[i].value;
}

/* Tap buffers of the plan's size, gradients zeroed. */
ld_status tr_size_taps(ld_ctx *ctx, ld_train_unet *t) {
    for (int i = 0; i < t->ntaps; i++) {
        tr_tap *tp = &t->taps[i];
        int64_t n = -1;
        tp->unit = tp->blk >= 0 ? t->block_end[tp->blk] : -1;
        if (tp->unit >= 0) { /* a block's output, [B, C, H, W] */
            const tr_unit *u = &t->units[tp->unit];
            tp->tokens = (int64_t)u->Ho * u->Wo;
            n = t->acts[u->out].n;
            tp->C = n / (t->B * tp->tokens);
        }
        for (int k = 0; tp->blk < 0 && k < t->nunits; k++)
            if (t->units[k].kind == U_TBLOCK && t->units[k].m == tp->block) {
                tp->tokens = (int64_t)t->units[k].H * t->units[k].W;
                tp->C = t->units[k].C;
                n = t->B * tp->tokens * tp->C;
            }
        if (n < 0) return ld_fail(ctx, LD_ERR_INTERNAL, "feature '%s' has no unit", tp->name);
        if (n != tp->n) {
            free(tp->value);
            free(tp->grad);
            tp->value = malloc(sizeof(float) * (size_t)n);
            tp->grad = malloc(sizeof(float) * (size_t)n);
            tp->n = n;
            if (!tp->value || !tp->grad) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for feature '%s'", tp->name);
        }
        memset(tp->grad, 0, sizeof(float) * (size_t)n);
    }
    return LD_OK;
}

void tr_tap_unit_forward(ld_train_unet *t, int i) {
    for (int k = 0; k < t->ntaps; k++)
        if (t->taps[k].unit == i && t->taps[k].blk >= 0)
            memcpy(t->taps[k].value, t->acts[t->units[i].out].v, sizeof(float) * (size_t)t->taps[k].n);
}

ld_status tr_tap_unit_backward(ld_ctx *ctx, ld_train_unet *t, int i) {
    for (int k = 0; k < t->ntaps; k++) {
        const tr_tap *tp = &t->taps[k];
        if (tp->unit != i || tp->blk < 0) continue;
        float *g = tr_grad(ctx, t, t->units[i].out);
        if (!g) return LD_ERR_NOMEM;
        for (int64_t j = 0; j < tp->n; j++) g[j] += tp->grad[j];
    }
    return LD_OK;
}
