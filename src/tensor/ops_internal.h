/* Internals shared by the ops_*.c files (not a public header): weight
 * access helpers, the SIMD kernel entry points of ops_act_*.c and
 * ops_attention_*.c, and the direct convolution loops (which the tests also
 * call to check them on every case).
 *
 *     float g = ops_wget(gamma, c);   // element c of an f32/f16/bf16 weight
 *
 * Kept inline so per-element weight reads in norm loops stay cheap. */
#ifndef LD_TENSOR_OPS_INTERNAL_H
#define LD_TENSOR_OPS_INTERNAL_H

#include "tensor/ops.h"

/* Element i of a weight tensor in f32/f16/bf16, converted to f32. */
static inline float ops_wget(const ld_tensor *t, int64_t i) {
    switch (t->dtype) {
    case LD_F16: return ld_f16_to_f32(((const uint16_t *)t->data)[i]);
    case LD_BF16: return ld_bf16_to_f32(((const uint16_t *)t->data)[i]);
    default: return ((const float *)t->data)[i];
    }
}

/* A tensor argument that is present (non-NULL and carrying data). */
static inline int ops_has(const ld_tensor *t) { return t && t->data; }

/* An ld_mat view of a weight tensor starting at element `offset`. */
static inline ld_mat ops_wmat(const ld_tensor *w, int64_t offset, int64_t rs, int64_t cs) {
    ld_mat m;
    m.dtype = w->dtype;
    m.data = (const char *)w->data + (size_t)offset * ld_dtype_size(w->dtype);
    m.rs = rs;
    m.cs = cs;
    return m;
}

/* A 1-D view of n elements of t starting at element `offset` (for per-group biases). */
static inline ld_tensor ops_wslice(const ld_tensor *t, int64_t offset, int64_t n) {
    ld_tensor v;
    memset(&v, 0, sizeof v);
    v.dtype = t->dtype;
    v.ndim = 1;
    v.shape[0] = n;
    v.data = (char *)t->data + (size_t)offset * ld_dtype_size(t->dtype);
    v.name = t->name;
    return v;
}

/* The direct-loop convolution behind ld_conv2d's depthwise path; handles any
 * parameters (tests run it on every case). */
void ops_conv2d_direct(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                       const ld_tensor *bias, const ld_conv2d_params *p, int64_t Ho, int64_t Wo);

/* ld_conv2d's 3x3 convolution (stride 1, zero padding 1, one group) by
 * Winograd's F(m x m, 3x3), see ops_conv_winograd.c: y [B, Cout, H, W].
 * Returns 0 (nothing written) when its buffers cannot be allocated. Products
 * in the calling thread's ld_gemm precision. m = 2 or 4 picks the tile, any
 * other value lets the function choose. For tests: item_tiles > 0 sets the
 * tiles a thread takes at a time (at most 256), u_bytes > 0 the most bytes of
 * packed filters at a time (blocks of output channels); 0 and 0 by default. */
int ops_conv3x3_winograd(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                         const ld_tensor *bias, int m, int64_t item_tiles, size_t u_bytes);
/* 0 when LEANDIFF_WINOGRAD=0 turned the Winograd path off or the calling
 * thread asked for the direct sums (ld_conv_set_direct). */
int ops_winograd_enabled(void);

/* ld_conv_transpose2d's fallback scatter loop; y must already hold the bias
 * (or zeros). */
void ops_conv_transpose2d_direct(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W,
                                 const ld_tensor *w, int stride, int pad, int64_t Ho, int64_t Wo);

/* ---- activation kernels (ops_act_kernel.h): y[i] = act(x[i]), y may equal x ---- */
enum { OPS_ACT_SILU, OPS_ACT_GELU_ERF, OPS_ACT_GELU_TANH, OPS_ACT_QUICK_GELU, OPS_ACT_SIGMOID, OPS_ACT_EXP,
       OPS_ACT_NORMCDF /* Phi(x) = (1 + erf(x / sqrt 2)) / 2 */ };
/* One of the kernels above on the calling thread only (for ops that call it
 * from their own parallel loops: the training backwards), SIMD path picked
 * at run time. */
void ops_act_serial(int kind, float *y, const float *x, int64_t n);
void ops_act_avx2(int kind, float *y, const float *x, int64_t n);
void ops_act_avx512(int kind, float *y, const float *x, int64_t n);
/* y[i] = act(x[i]) * m[i], the same bits as the kernel above and then the product */
void ops_act_mul_avx2(int kind, float *y, const float *x, const float *m, int64_t n);
void ops_act_mul_avx512(int kind, float *y, const float *x, const float *m, int64_t n);

/* ---- vector kernels of the non-GEMM ops (ops_vec_kernel.h), one table per
 * instruction set; every table gives the same bits ---- */

/* The transforms of Winograd's F(m x m, 3x3), m = 2 or 4, T = (m + 2)^2
 * elements (ops_conv_winograd.c). filter: n filters of 9 taps f -> U_xi[i]
 * at u[xi * xs + i] (tmp: 21 n floats for m = 2, 27 n for m = 4). in: for a
 * row of n tiles, d: m + 2 padded input rows of m n + m floats -> V_xi[k]
 * at v[xi * xs + k] (tmp: 8 (n + 1), 24 (n + 1)). out: M_xi[k] at m[xi * xs
 * + k] -> Y + bias into the output rows y[0 .. m - 1] (NULL: below the
 * image), w pixels of each (tmp: 4 n, 16 n). */
typedef struct {
    void (*filter)(float *u, int64_t xs, const float *f, int64_t n, float *tmp);
    void (*in)(float *v, int64_t xs, const float *d, int64_t n, float *tmp);
    void (*out)(float *const y[4], int64_t w, const float *m, int64_t xs, int64_t n, float bias, float *tmp);
} ops_wino_transforms;

typedef struct {
    int vl; /* floats per vector */
    /* x = gelu_erf(x) in place; returns sum of squares of the results (double) */
    double (*gelu_sumsq)(float *x, int64_t n);
    /* *s1 = sum of (x[i] - shift), *s2 = sum of (x[i] - shift)^2, in double,
     * one pass (the statistics of GroupNorm and LayerNorm) */
    void (*moments)(const float *x, int64_t n, double shift, double *s1, double *s2);
    /* y[i] = g * (x[i] * s) + b + x[i]; y may equal x */
    void (*grn_row)(float *y, const float *x, int64_t n, float g, float s, float b);
    /* y[i] = x[i] * a + b; y may equal x */
    void (*affine_row)(float *y, const float *x, int64_t n, float a, float b);
    /* per-pixel double sums over C rows of stride ldx: sum x (mean NULL) or
     * sum (x - mean[p])^2; acc, mean: np doubles */
    void (*chan_sums)(double *acc, const float *x, int64_t ldx, int64_t C, int64_t np, const double *mean);
    /* y[p] = (x[p] - mean[p]) * rstd[p] * g + b; y may equal x */
    void (*norm_row)(float *y, const float *x, int64_t np, const float *mean, const float *rstd, float g, float b);
    /* one output row of a 3x3 stride-1 depthwise convolution from three input
     * rows padded as ops_dw3_pad_row does (NULL: outside the image) */
    void (*dw3_row)(float *y, int64_t W, const float *const rows[3], const float *w9, float bias);
    /* Winograd transforms (ops_conv_winograd.c) of F(2x2, 3x3) and F(4x4, 3x3) */
    ops_wino_transforms wino2, wino4;
} ops_vec_kernels;

extern const ops_vec_kernels ops_vec_portable, ops_vec_avx2, ops_vec_avx512;
/* The table of the CPU path in force. */
const ops_vec_kernels *ops_vec(void);

static inline int64_t ops_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ops_max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif
