/* Tensor bookkeeping: dtypes, shapes, owned buffers, dtype conversion. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[LD_DTYPE_COUNT] = {
    [LD_F32] = {"F32", 4}, [LD_F16] = {"F16", 2}, [LD_BF16] = {"BF16", 2}, [LD_I64] = {"I64", 8},
    [LD_U8] = {"U8", 1},   [LD_F64] = {"F64", 8}, [LD_I32] = {"I32", 4},   [LD_I16] = {"I16", 2},
    [LD_I8] = {"I8", 1},   [LD_BOOL] = {"BOOL", 1},
};

size_t ld_dtype_size(ld_dtype t) { return (unsigned)t < LD_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *ld_dtype_name(ld_dtype t) { return (unsigned)t < LD_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int ld_dtype_parse(const char *s, ld_dtype *out) {
    for (int i = 0; i < LD_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (ld_dtype)i;
            return 1;
        }
    }
    return 0;
}

int64_t ld_tensor_numel(const ld_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t ld_tensor_nbytes(const ld_tensor *t) { return (size_t)ld_tensor_numel(t) * ld_dtype_size(t->dtype); }

ld_status ld_tensor_alloc(ld_ctx *ctx, ld_tensor *t, ld_dtype dtype, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    if (ndim < 0 || ndim > LD_MAX_DIMS) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "tensor rank %d out of range", ndim);
    size_t bytes = ld_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "negative tensor dimension %lld", (long long)shape[i]);
        if (!ld_mul_overflow_size(bytes, (size_t)shape[i], &bytes))
            return ld_fail(ctx, LD_ERR_NOMEM, "tensor size overflows");
        t->shape[i] = shape[i];
    }
    t->dtype = dtype;
    t->ndim = ndim;
    void *p;
    LD_TRY(ld_aligned_alloc(ctx, &p, bytes, "tensor"));
    memset(p, 0, bytes);
    t->data = p;
    t->owned = 1;
    return LD_OK;
}

void ld_tensor_free(ld_tensor *t) {
    if (t->owned) ld_aligned_free(t->data);
    t->data = NULL;
    t->owned = 0;
}

const char *ld_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, off < n ? n - off : 0, "[");
    for (int i = 0; i < ndim; i++)
        off += (size_t)snprintf(buf + off, off < n ? n - off : 0, "%s%lld", i ? ", " : "", (long long)shape[i]);
    snprintf(buf + off, off < n ? n - off : 0, "]");
    return buf;
}

int ld_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b) {
    if (ndim_a != ndim_b) return 0;
    for (int i = 0; i < ndim_a; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

float ld_tensor_get_f32(const ld_tensor *t, int64_t i) {
    switch (t->dtype) {
    case LD_F32: return ((const float *)t->data)[i];
    case LD_F16: return ld_f16_to_f32(((const uint16_t *)t->data)[i]);
    case LD_BF16: return ld_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case LD_F64: return (float)((const double *)t->data)[i];
    case LD_I64: return (float)((const int64_t *)t->data)[i];
    case LD_I32: return (float)((const int32_t *)t->data)[i];
    case LD_U8: return (float)((const uint8_t *)t->data)[i];
    default: return 0.0f;
    }
}

void ld_convert_to_f32(float *dst, const void *src, ld_dtype dtype, int64_t offset, int64_t n) {
    switch (dtype) {
    case LD_F32: memcpy(dst, (const float *)src + offset, (size_t)n * 4); break;
    case LD_F16: {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (int64_t i = 0; i < n; i++) dst[i] = ld_f16_to_f32(s[i]);
        break;
    }
    case LD_BF16: {
        const uint16_t *s = (const uint16_t *)src + offset;
        for (int64_t i = 0; i < n; i++) dst[i] = ld_bf16_to_f32(s[i]);
        break;
    }
    default: {
        ld_tensor t = {.dtype = dtype, .data = (void *)src};
        for (int64_t i = 0; i < n; i++) dst[i] = ld_tensor_get_f32(&t, offset + i);
    }
    }
}

ld_status ld_tensor_to_f32(ld_ctx *ctx, const ld_tensor *src, ld_tensor *dst) {
    LD_TRY(ld_tensor_alloc(ctx, dst, LD_F32, src->ndim, src->shape));
    ld_convert_to_f32(dst->data, src->data, src->dtype, 0, ld_tensor_numel(src));
    return LD_OK;
}
