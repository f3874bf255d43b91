/* Tensors: a dtype, a shape and data that is either owned (malloc) or a view
 * (into an mmapped safetensors file, or into another buffer).
 *
 * Weights stay in their stored dtype (f32/f16/bf16) and are converted inside
 * the kernels; activations are plain f32 arrays, NCHW unless a function says
 * otherwise. Shapes are row-major, last dimension fastest.
 */
#ifndef LD_TENSOR_TENSOR_H
#define LD_TENSOR_TENSOR_H

#include "base/status.h"
#include <stdint.h>
#include <string.h>

#define LD_MAX_DIMS 8

typedef enum {
    LD_F32 = 0,
    LD_F16,
    LD_BF16,
    LD_I64,
    LD_U8,
    LD_F64, /* the following are readable (inspect, tests) but no model uses them */
    LD_I32,
    LD_I16,
    LD_I8,
    LD_BOOL,
    LD_DTYPE_COUNT
} ld_dtype;

size_t ld_dtype_size(ld_dtype t);
const char *ld_dtype_name(ld_dtype t); /* safetensors spelling: "F32", "BF16", ... */
/* Parses a safetensors dtype string; returns 0 if unknown. */
int ld_dtype_parse(const char *s, ld_dtype *out);

typedef struct {
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_DIMS];
    void *data;      /* NULL for a recorded-only tensor (init-random planning) */
    int owned;       /* data was allocated by ld_tensor_alloc */
    const char *name; /* optional, not owned */
} ld_tensor;

int64_t ld_tensor_numel(const ld_tensor *t);
size_t ld_tensor_nbytes(const ld_tensor *t);
/* Allocates zeroed, 64-byte aligned, owned data. */
ld_status ld_tensor_alloc(ld_ctx *ctx, ld_tensor *t, ld_dtype dtype, int ndim, const int64_t *shape);
void ld_tensor_free(ld_tensor *t);
/* "[2, 4, 16, 16]" into buf. */
const char *ld_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
int ld_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b);

/* Element i of a f32/f16/bf16 tensor as f32 (slow; for setup code, not kernels). */
float ld_tensor_get_f32(const ld_tensor *t, int64_t i);
/* Converts n elements of src (f32/f16/bf16) starting at element `offset` into f32. */
void ld_convert_to_f32(float *dst, const void *src, ld_dtype dtype, int64_t offset, int64_t n);
/* Copies a float tensor of any float dtype into a new owned f32 tensor. */
ld_status ld_tensor_to_f32(ld_ctx *ctx, const ld_tensor *src, ld_tensor *dst);

/* ---- half precision ---- */

static inline float ld_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t ld_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float ld_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, overflow to inf. */
static inline uint16_t ld_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (a < 0x38800000u) {                                    /* subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((a >> 13) - (112u << 10));
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

#endif
