/* Helpers shared by tests/test_ops_*.c (header only): weights in a chosen
 * dtype whose values are rounded in place so the naive references use exactly
 * what the kernels see, and a bitwise comparison for the thread-count checks.
 *
 *     float wv[N * K]; test_fill(wv, N * K, 1);
 *     ld_tensor w = tw_make(LD_F16, wv, 2, (int64_t[]){N, K});  // wv now rounded to f16
 *     ...
 *     tw_free(&w);
 */
#ifndef LD_TEST_OPS_UTIL_H
#define LD_TEST_OPS_UTIL_H

#include "tensor/ops.h"
#include "test_util.h"

#include <omp.h>

static const ld_dtype tw_dtypes[3] = {LD_F32, LD_F16, LD_BF16};

/* A weight tensor in `dt` holding vals (which are rounded to dt in place). */
static inline ld_tensor tw_make(ld_dtype dt, float *vals, int ndim, const int64_t *shape) {
    ld_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        n *= shape[i];
    }
    if (dt == LD_F32) {
        float *d = malloc((size_t)(n ? n : 1) * sizeof(float));
        memcpy(d, vals, (size_t)n * sizeof(float));
        t.data = d;
    } else {
        uint16_t *d = malloc((size_t)(n ? n : 1) * sizeof(uint16_t));
        for (int64_t i = 0; i < n; i++) {
            d[i] = dt == LD_F16 ? ld_f32_to_f16(vals[i]) : ld_f32_to_bf16(vals[i]);
            vals[i] = dt == LD_F16 ? ld_f16_to_f32(d[i]) : ld_bf16_to_f32(d[i]);
        }
        t.data = d;
    }
    return t;
}

static inline void tw_free(ld_tensor *t) {
    free(t->data);
    t->data = NULL;
}

static inline float *tw_alloc(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(float)); }

/* 1 if a and b hold bitwise-identical floats. */
static inline int tw_same(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

#endif
