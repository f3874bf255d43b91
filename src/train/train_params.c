/* Packed f32 master weights and gradients (see train_params.h). */
#include "train/train_params.h"

#include "base/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float(ld_dtype t) { return t == LD_F32 || t == LD_F16 || t == LD_BF16; }

ld_status ld_train_params_from_weights(ld_ctx *ctx, const ld_weights *ws, ld_train_params *p) {
    memset(p, 0, sizeof *p);
    size_t n = 0;
    int64_t total = 0;
    for (size_t f = 0; f < ld_weights_file_count(ws); f++) {
        const ld_safetensors *st = ld_weights_file(ws, f);
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const ld_tensor *t = ld_safetensors_at(st, i);
            if (!is_float(t->dtype)) continue;
            n++;
            total += ld_tensor_numel(t);
        }
    }
    if (n == 0) return ld_fail(ctx, LD_ERR_MODEL, "%s: no float tensors to train", ld_weights_where(ws));
    p->tensors = calloc(n, sizeof *p->tensors);
    p->offset = calloc(n, sizeof *p->offset);
    /* huge-page blocks: 2 x 3 GB for KOALA-700M, first touched here and in the first backward */
    const size_t bytes = sizeof(float) * (size_t)total;
    if (!p->tensors || !p->offset || ld_calloc_huge(NULL, (void **)&p->value, bytes, "") != LD_OK ||
        ld_calloc_huge(NULL, (void **)&p->grad, bytes, "") != LD_OK) {
        ld_train_params_free(p);
        return ld_fail(ctx, LD_ERR_NOMEM, "training: cannot hold %lld f32 parameters and their gradients (%.1f GB)",
                       (long long)total, 8.0 * (double)total / 1e9);
    }
    int64_t off = 0;
    for (size_t f = 0; f < ld_weights_file_count(ws); f++) {
        const ld_safetensors *st = ld_weights_file(ws, f);
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const ld_tensor *t = ld_safetensors_at(st, i);
            if (!is_float(t->dtype)) continue;
            ld_tensor *d = &p->tensors[p->count];
            *d = *t;
            d->dtype = LD_F32;
            d->owned = 0;
            d->data = p->value + off;
            d->name = strdup(t->name);
            p->offset[p->count++] = off;
            if (!d->name) {
                ld_train_params_free(p);
                return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            }
            ld_convert_to_f32(p->value + off, t->data, t->dtype, 0, ld_tensor_numel(t));
            off += ld_tensor_numel(t);
        }
    }
    p->total = total;
    ld_status st = ld_weights_new_memory(ctx, ld_weights_where(ws), p->tensors, p->count, &p->source);
    if (st != LD_OK) ld_train_params_free(p);
    return st;
}

ld_status ld_train_params_alloc(ld_ctx *ctx, size_t n, const char *const *names, const int *ndims,
                                const int64_t (*shapes)[LD_MAX_DIMS], ld_train_params *p) {
    memset(p, 0, sizeof *p);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t e = 1;
        for (int d = 0; d < ndims[i]; d++) e *= shapes[i][d];
        total += e;
    }
    p->tensors = calloc(n ? n : 1, sizeof *p->tensors);
    p->offset = calloc(n ? n : 1, sizeof *p->offset);
    const size_t bytes = sizeof(float) * (size_t)(total ? total : 1);
    if (!p->tensors || !p->offset || ld_calloc_huge(NULL, (void **)&p->value, bytes, "") != LD_OK ||
        ld_calloc_huge(NULL, (void **)&p->grad, bytes, "") != LD_OK) {
        ld_train_params_free(p);
        return ld_fail(ctx, LD_ERR_NOMEM, "training: cannot hold %lld parameters", (long long)total);
    }
    int64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        ld_tensor *t = &p->tensors[i];
        t->dtype = LD_F32;
        t->ndim = ndims[i];
        memcpy(t->shape, shapes[i], sizeof t->shape);
        t->data = p->value + off;
        p->offset[i] = off;
        p->count++;
        if (!(t->name = strdup(names[i]))) {
            ld_train_params_free(p);
            return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        }
        off += ld_tensor_numel(t);
    }
    p->total = total;
    return LD_OK;
}

void ld_train_params_free(ld_train_params *p) {
    if (!p) return;
    for (size_t i = 0; i < p->count; i++) free((char *)p->tensors[i].name);
    free(p->tensors);
    free(p->offset);
    free(p->value);
    free(p->grad);
    ld_weights_free(p->source);
    memset(p, 0, sizeof *p);
}

void ld_train_params_zero_grad(ld_train_params *p) { memset(p->grad, 0, sizeof(float) * (size_t)p->total); }

float *ld_train_grad_of(const ld_train_params *p, const ld_tensor *t) {
    if (!t || !t->data) return NULL;
    const float *d = t->data;
    if (d < p->value || d >= p->value + p->total) return NULL;
    return p->grad + (d - p->value);
}

int64_t ld_train_params_find(const ld_train_params *p, const char *name) {
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return (int64_t)i;
    return -1;
}

typedef struct {
    const ld_train_params *p;
    const float *data;
    ld_dtype dtype;
} save_src;

static void save_fill(void *user, size_t index, void *dst, int64_t offset, int64_t count) {
    const save_src *s = user;
    const float *src = s->data + s->p->offset[index] + offset;
    for (int64_t i = 0; i < count; i++) {
        if (s->dtype == LD_F32) ((float *)dst)[i] = src[i];
        else if (s->dtype == LD_F16) ((uint16_t *)dst)[i] = ld_f32_to_f16(src[i]);
        else ((uint16_t *)dst)[i] = ld_f32_to_bf16(src[i]);
    }
}

ld_status ld_train_params_save(ld_ctx *ctx, const ld_train_params *p, const float *data, const char *prefix,
                               ld_dtype dtype, const char *path, const char *const *meta) {
    if (!is_float(dtype)) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: parameters are saved as F32, F16 or BF16", path);
    ld_st_write_entry *e = calloc(p->count, sizeof *e);
    char **names = calloc(p->count, sizeof *names);
    ld_status st = LD_OK;
    if (!e || !names) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    save_src src = {p, data, dtype};
    for (size_t i = 0; st == LD_OK && i < p->count; i++) {
        const ld_tensor *t = &p->tensors[i];
        size_t len = strlen(prefix) + strlen(t->name) + 1;
        if (!(names[i] = malloc(len))) {
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(names[i], len, "%s%s", prefix, t->name);
        e[i].name = names[i];
        e[i].dtype = dtype;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
        e[i].fill = save_fill;
        e[i].fill_user = &src;
    }
    if (st == LD_OK) st = ld_safetensors_write(ctx, path, e, p->count, meta);
    for (size_t i = 0; names && i < p->count; i++) free(names[i]);
    free(names);
    free(e);
    return st;
}
