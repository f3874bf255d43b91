/* LoRA adapters for training (see lora.h). */
#include "train/lora.h"

#include "base/mix.h"
#include "io/safetensors.h"
#include "models/lora_merge.h"
#include "tensor/gemm.h"
#include "train/grad_ops.h"
#include "train/grad_scratch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A kernel size above 1x1: a convolution adapter of its own rank (LoCon). */
static int is_kxk(const ld_tensor *w) { return w->ndim == 4 && (w->shape[2] > 1 || w->shape[3] > 1); }

ld_status ld_lora_create(ld_ctx *ctx, const ld_lora_layer *layers, size_t n, uint64_t seed, ld_lora *l) {
    memset(l, 0, sizeof *l);
    if (n == 0) return ld_fail(ctx, LD_ERR_MODEL, "LoRA: the model has no layer to adapt");
    for (size_t i = 0; i < n; i++)
        if (layers[i].rank < 1 || layers[i].rank > 4096)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "LoRA rank %d is outside 1..4096", layers[i].rank);
    l->n = n;
    l->layer = calloc(n, sizeof *l->layer);
    l->scale = calloc(n, sizeof *l->scale);
    l->module = calloc(n, sizeof *l->module);
    char **names = calloc(2 * n, sizeof *names);
    int *ndims = calloc(2 * n, sizeof *ndims);
    int64_t (*shapes)[LD_MAX_DIMS] = calloc(2 * n, sizeof *shapes);
    ld_status st = l->layer && l->scale && l->module && names && ndims && shapes
                       ? LD_OK
                       : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == LD_OK && i < n; i++) {
        const ld_tensor *w = layers[i].w;
        const char *nm = w->name ? w->name : "";
        const size_t len = strlen(nm);
        const int r = layers[i].rank;
        if ((w->ndim != 2 && w->ndim != 4) || len < 8 || strcmp(nm + len - 7, ".weight")) {
            st = ld_fail(ctx, LD_ERR_INTERNAL, "LoRA: '%s' is neither a linear nor a convolution weight", nm);
            break;
        }
        l->layer[i] = layers[i];
        if (!(l->layer[i].alpha > 0)) l->layer[i].alpha = (float)r;
        l->scale[i] = l->layer[i].alpha / (float)r;
        if (is_kxk(w) && !l->conv_rank) l->conv_rank = r, l->conv_alpha = l->layer[i].alpha;
        if (!is_kxk(w) && !l->rank) l->rank = r, l->alpha = l->layer[i].alpha;
        l->module[i] = strndup(nm, len - 7);
        names[2 * i] = malloc(len + 16);
        names[2 * i + 1] = malloc(len + 16);
        if (!l->module[i] || !names[2 * i] || !names[2 * i + 1]) {
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(names[2 * i], len + 16, "%s.lora_A.weight", l->module[i]);
        snprintf(names[2 * i + 1], len + 16, "%s.lora_B.weight", l->module[i]);
        const int four = w->ndim == 4 || layers[i].conv1x1;
        ndims[2 * i] = ndims[2 * i + 1] = four ? 4 : 2;
        shapes[2 * i][0] = r, shapes[2 * i][1] = w->shape[1]; /* A [r, in (, kh, kw)] */
        shapes[2 * i + 1][0] = w->shape[0], shapes[2 * i + 1][1] = r; /* B [out, r (, 1, 1)] */
        if (four) {
            shapes[2 * i][2] = w->ndim == 4 ? w->shape[2] : 1, shapes[2 * i][3] = w->ndim == 4 ? w->shape[3] : 1;
            shapes[2 * i + 1][2] = shapes[2 * i + 1][3] = 1;
        }
    }
    if (st == LD_OK) st = ld_train_params_alloc(ctx, 2 * n, (const char *const *)names, ndims, shapes, &l->params);
    for (size_t i = 0; st == LD_OK && i < n; i++) { /* A ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), B = 0 */
        const ld_tensor *a = &l->params.tensors[2 * i];
        const int64_t na = ld_tensor_numel(a);
        const float bound = 1.0f / sqrtf((float)(na / a->shape[0]));
        float *av = a->data;
        for (int64_t k = 0; k < na; k++) {
            const uint64_t r = ld_mix64(seed ^ ld_mix64(i * 0x100000001b3ull + (uint64_t)k));
            av[k] = bound * (2.0f * (float)((r >> 40) * (1.0 / 16777216.0)) - 1.0f);
        }
    }
    for (size_t i = 0; names && i < 2 * n; i++) free(names[i]);
    free(names);
    free(ndims);
    free(shapes);
    if (st != LD_OK) ld_lora_free(l);
    return st;
}

void ld_lora_free(ld_lora *l) {
    for (size_t i = 0; l->module && i < l->n; i++) free(l->module[i]);
    free(l->module);
    free(l->layer);
    free(l->scale);
    ld_train_params_free(&l->params);
    memset(l, 0, sizeof *l);
}

int ld_lora_find(const ld_lora *l, const ld_tensor *w) {
    if (!l || !w) return -1;
    for (size_t i = 0; i < l->n; i++)
        if (l->layer[i].w->data == w->data) return (int)i;
    return -1;
}

/* The rank-r intermediate is kept transposed, h^T (r x M): the products then
 * have r rows instead of r columns, which the kernels' tiles fill (rank 16
 * as 16 columns left half of a 32-column tile or two thirds of a 48-column
 * one empty). Every element is still one sum over the same k in the same
 * order, so the values are the same as with h (M x r). */
ld_status ld_lora_forward(ld_ctx *ctx, const ld_lora *l, int i, const float *x, int64_t M, float *y) {
    const ld_tensor *A = &l->params.tensors[2 * i], *B = &l->params.tensors[2 * i + 1];
    const int64_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
    const float scale = l->scale[i];
    float *ht = grad_scratch_get(sizeof(float) * (size_t)(M * r));
    if (!ht) return ld_fail(ctx, LD_ERR_NOMEM, "LoRA: out of memory");
    ld_mat Am = ld_mat_f32(A->data, in, 1), Xt = ld_mat_f32(x, 1, in); /* h^T = A x^T */
    ld_gemm(r, M, in, &Am, &Xt, ht, M, 0.0f, NULL, NULL);
    for (int64_t k = 0; k < M * r; k++) ht[k] *= scale;
    ld_mat H = ld_mat_f32(ht, 1, M), Bt = ld_mat_f32(B->data, 1, r); /* y += h B^T */
    ld_gemm(M, out, r, &H, &Bt, y, out, 1.0f, NULL, NULL);
    grad_scratch_put(ht);
    return LD_OK;
}

ld_status ld_lora_backward(ld_ctx *ctx, ld_lora *l, int i, const float *dy, const float *x, int64_t M, float *dx) {
    const ld_tensor *A = &l->params.tensors[2 * i], *B = &l->params.tensors[2 * i + 1];
    float *dA = l->params.grad + l->params.offset[2 * i], *dB = l->params.grad + l->params.offset[2 * i + 1];
    const int64_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
    const float scale = l->scale[i];
    float *ht = grad_scratch_get(sizeof(float) * (size_t)(M * r)), *dht = grad_scratch_get(sizeof(float) * (size_t)(M * r));
    float *dbt = grad_scratch_get(sizeof(float) * (size_t)(r * out));
    if (!ht || !dht || !dbt) {
        grad_scratch_put(ht);
        grad_scratch_put(dht);
        grad_scratch_put(dbt);
        return ld_fail(ctx, LD_ERR_NOMEM, "LoRA: out of memory");
    }
    ld_mat Am = ld_mat_f32(A->data, in, 1), Xt = ld_mat_f32(x, 1, in);
    ld_gemm(r, M, in, &Am, &Xt, ht, M, 0.0f, NULL, NULL); /* h^T = A x^T (unscaled) */
    for (int64_t k = 0; k < M * r; k++) ht[k] *= scale;
    ld_mat Ht = ld_mat_f32(ht, M, 1), dYm = ld_mat_f32(dy, out, 1); /* dB += (h^T dy)^T */
    ld_gemm(r, out, M, &Ht, &dYm, dbt, out, 0.0f, NULL, NULL);
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < r; j++) dB[o * r + j] += dbt[j * out + o];
    ld_mat Btm = ld_mat_f32(B->data, 1, r), dYt = ld_mat_f32(dy, 1, out); /* dh^T = scale * B^T dy^T */
    ld_gemm(r, M, out, &Btm, &dYt, dht, M, 0.0f, NULL, NULL);
    for (int64_t k = 0; k < M * r; k++) dht[k] *= scale;
    ld_mat dHt = ld_mat_f32(dht, M, 1), Xm = ld_mat_f32(x, in, 1); /* dA += dh^T x */
    ld_gemm(r, in, M, &dHt, &Xm, dA, in, 1.0f, NULL, NULL);
    if (dx) { /* dx += dh A */
        ld_mat dH = ld_mat_f32(dht, 1, M), Ain = ld_mat_f32(A->data, in, 1);
        ld_gemm(M, in, r, &dH, &Ain, dx, in, 1.0f, NULL, NULL);
    }
    grad_scratch_put(ht);
    grad_scratch_put(dht);
    grad_scratch_put(dbt);
    return LD_OK;
}

/* h [B, r, Ho, Wo] = scale * conv(x, A) with the base's stride and padding. */
static float *conv_down(const ld_lora *l, int i, const float *x, int64_t B, int64_t H, int64_t W, int64_t *Ho,
                        int64_t *Wo) {
    const ld_tensor *A = &l->params.tensors[2 * i];
    const ld_conv2d_params *p = &l->layer[i].conv;
    *Ho = ld_conv2d_out_dim(H, A->shape[2], p->stride_h, p->pad_h, 1);
    *Wo = ld_conv2d_out_dim(W, A->shape[3], p->stride_w, p->pad_w, 1);
    const int64_t n = B * A->shape[0] * *Ho * *Wo;
    float *h = grad_scratch_get(sizeof(float) * (size_t)(n ? n : 1));
    if (!h) return NULL;
    ld_conv2d(h, x, B, A->shape[1], H, W, A, NULL, p);
    for (int64_t k = 0; k < n; k++) h[k] *= l->scale[i];
    return h;
}

ld_status ld_lora_conv_forward(ld_ctx *ctx, const ld_lora *l, int i, const float *x, int64_t B, int64_t H,
                               int64_t W, float *y) {
    const ld_tensor *Bw = &l->params.tensors[2 * i + 1];
    const int64_t r = Bw->shape[1], out = Bw->shape[0];
    int64_t Ho, Wo;
    float *h = conv_down(l, i, x, B, H, W, &Ho, &Wo);
    if (!h) return ld_fail(ctx, LD_ERR_NOMEM, "LoRA: out of memory");
    const int64_t HWo = Ho * Wo;
    for (int64_t b = 0; b < B; b++) { /* y_b [out, HWo] += B [out, r] . h_b [r, HWo] (the 1x1 up convolution) */
        ld_mat U = ld_mat_f32(Bw->data, r, 1), Hm = ld_mat_f32(h + b * r * HWo, HWo, 1);
        ld_gemm(out, HWo, r, &U, &Hm, y + b * out * HWo, HWo, 1.0f, NULL, NULL);
    }
    grad_scratch_put(h);
    return LD_OK;
}

ld_status ld_lora_conv_backward(ld_ctx *ctx, ld_lora *l, int i, const float *dy, const float *x, int64_t B,
                                int64_t H, int64_t W, float *dx) {
    const ld_tensor *A = &l->params.tensors[2 * i], *Bw = &l->params.tensors[2 * i + 1];
    float *dA = l->params.grad + l->params.offset[2 * i], *dB = l->params.grad + l->params.offset[2 * i + 1];
    const int64_t r = A->shape[0];
    int64_t Ho, Wo;
    float *h = conv_down(l, i, x, B, H, W, &Ho, &Wo); /* recomputed, scaled */
    const int64_t n = B * r * Ho * Wo;
    float *dh = h ? grad_scratch_get(sizeof(float) * (size_t)(n ? n : 1)) : NULL;
    const ld_conv2d_params p1 = ld_conv2d_params_make(1, 0);
    int ok = dh != NULL;
    if (ok) {
        memset(dh, 0, sizeof(float) * (size_t)n);
        ok = ld_conv2d_backward(dy, h, B, r, Ho, Wo, Bw, &p1, dh, dB, NULL); /* up: dB, dh */
    }
    if (ok) {
        for (int64_t k = 0; k < n; k++) dh[k] *= l->scale[i];
        ok = ld_conv2d_backward(dh, x, B, A->shape[1], H, W, A, &l->layer[i].conv, dx, dA, NULL); /* down: dA, dx */
    }
    grad_scratch_put(h);
    grad_scratch_put(dh);
    return ok ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "LoRA: out of memory");
}

ld_status ld_lora_save(ld_ctx *ctx, const ld_lora *l, ld_lora_format fmt, ld_dtype dtype, const char *path) {
    ld_st_builder b;
    ld_st_builder_init(&b);
    ld_status st = LD_OK;
    float *tmp = NULL;
    uint16_t *half = NULL;
    for (size_t i = 0; st == LD_OK && i < l->n; i++) {
        for (int k = 0; st == LD_OK && k < 2; k++) {
            const ld_tensor *t = &l->params.tensors[2 * i + k];
            const int64_t n = ld_tensor_numel(t);
            char name[1024];
            if (fmt == LD_LORA_KOHYA) ld_lora_kohya_name(name, sizeof name, "lora_unet", l->module[i], k ? ".lora_up.weight" : ".lora_down.weight");
            else snprintf(name, sizeof name, "unet.%s.lora_%c.weight", l->module[i], k ? 'B' : 'A');
            float *nt = realloc(tmp, sizeof(float) * (size_t)n);
            uint16_t *nh = realloc(half, sizeof(uint16_t) * (size_t)n);
            if (!nt || !nh) {
                free(nt ? nt : tmp);
                free(nh ? nh : half);
                tmp = NULL, half = NULL;
                st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
                break;
            }
            tmp = nt, half = nh;
            /* peft files carry no alpha: B is saved pre-scaled so it loads at scale 1 */
            const float s = (fmt == LD_LORA_PEFT && k == 1) ? l->scale[i] : 1.0f;
            for (int64_t e = 0; e < n; e++) tmp[e] = s * ((const float *)t->data)[e];
            if (dtype == LD_F16) {
                for (int64_t e = 0; e < n; e++) half[e] = ld_f32_to_f16(tmp[e]);
                st = ld_st_builder_add(ctx, &b, name, LD_F16, t->ndim, t->shape, half);
            } else {
                st = ld_st_builder_add_f32(ctx, &b, name, t->ndim, t->shape, tmp);
            }
        }
        if (st == LD_OK && fmt == LD_LORA_KOHYA) {
            char name[1024];
            ld_lora_kohya_name(name, sizeof name, "lora_unet", l->module[i], ".alpha");
            st = ld_st_builder_add_f32(ctx, &b, name, 0, NULL, &l->layer[i].alpha);
        }
    }
    char rank[32], alpha[32];
    snprintf(rank, sizeof rank, "%d", l->rank);
    snprintf(alpha, sizeof alpha, "%g", (double)l->alpha);
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &b, "format", "pt");
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &b, "lora_rank", rank);
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &b, "lora_alpha", alpha);
    if (st == LD_OK && l->conv_rank) {
        snprintf(rank, sizeof rank, "%d", l->conv_rank);
        snprintf(alpha, sizeof alpha, "%g", (double)l->conv_alpha);
        st = ld_st_builder_meta(ctx, &b, "lora_conv_rank", rank);
        if (st == LD_OK) st = ld_st_builder_meta(ctx, &b, "lora_conv_alpha", alpha);
    }
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &b, "produced_by", "leandiff train");
    if (st == LD_OK) st = ld_st_builder_write(ctx, &b, path);
    ld_st_builder_free(&b);
    free(tmp);
    free(half);
    return st;
}
