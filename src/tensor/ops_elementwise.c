/* Elementwise ops, activations, linear layers and the timestep embedding
 * (see ops.h for the contracts). Each loop is split over the OpenMP threads
 * with a static schedule; every element is computed independently, so the
 * result does not depend on the thread count. The activations run on vectors
 * (ops_act_kernel.h: exp and erfc polynomials of about 1 ulp / 2e-7 relative),
 * compiled for portable C, AVX2 and AVX-512; all three give the same bits. */
#include "tensor/ops_internal.h"

#include "base/cpu.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 16384
/* Elements per work item of the activations (a multiple of every vector width). */
#define ACT_BLOCK 4096

#define ACT_FN act_portable
#define ACT_MUL_FN act_mul_portable
#define OPS_VBYTES 16
#define OPS_BCAST(x) ((vf){(x), (x), (x), (x)})
#include "tensor/ops_act_kernel.h"

/* The activation kernels of one instruction set: act (ACT_FN) and act times m (ACT_MUL_FN). */
typedef struct {
    void (*act)(int kind, float *y, const float *x, int64_t n);
    void (*mul)(int kind, float *y, const float *x, const float *m, int64_t n);
} act_kernels;

static act_kernels pick_act(void) {
#if defined(__x86_64__) || defined(__i386__)
    ld_cpu_level_t level = ld_cpu_level();
    if (level >= LD_CPU_AVX512) return (act_kernels){ops_act_avx512, ops_act_mul_avx512};
    if (level >= LD_CPU_AVX2) return (act_kernels){ops_act_avx2, ops_act_mul_avx2};
#endif
    return (act_kernels){act_portable, act_mul_portable};
}

void ops_act_serial(int kind, float *y, const float *x, int64_t n) { pick_act().act(kind, y, x, n); }

/* y = act(x) over blocks of ACT_BLOCK elements split across the threads. */
static void act_run(int kind, float *y, const float *x, int64_t n) {
    const act_kernels k = pick_act();
    int64_t nb = (n + ACT_BLOCK - 1) / ACT_BLOCK;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t b = 0; b < nb; b++)
        k.act(kind, y + b * ACT_BLOCK, x + b * ACT_BLOCK, ops_min64(ACT_BLOCK, n - b * ACT_BLOCK));
}

void ld_silu(float *x, int64_t n) { act_run(OPS_ACT_SILU, x, x, n); }
void ld_gelu_erf(float *x, int64_t n) { act_run(OPS_ACT_GELU_ERF, x, x, n); }
void ld_gelu_tanh(float *x, int64_t n) { act_run(OPS_ACT_GELU_TANH, x, x, n); }
void ld_quick_gelu(float *x, int64_t n) { act_run(OPS_ACT_QUICK_GELU, x, x, n); }
void ld_sigmoid(float *x, int64_t n) { act_run(OPS_ACT_SIGMOID, x, x, n); }

void ld_leaky_relu(float *x, int64_t n, float slope) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void ld_scale(float *x, int64_t n, float s) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void ld_add(float *y, const float *a, const float *b, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void ld_add_scaled(float *y, const float *x, float s, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i] * s;
}

void ld_add_channel_bias(float *x, int64_t B, int64_t C, int64_t HW, const float *bias) {
    #pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (int64_t bc = 0; bc < B * C; bc++) {
        float v = bias[bc % C];
        float *p = x + bc * HW;
        #pragma omp simd
        for (int64_t i = 0; i < HW; i++) p[i] += v;
    }
}

void ld_channel_affine(float *x, int64_t B, int64_t C, int64_t HW, const float *a, const float *t) {
    const ops_vec_kernels *k = ops_vec();
    #pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (int64_t bc = 0; bc < B * C; bc++) k->affine_row(x + bc * HW, x + bc * HW, HW, a[bc], t[bc]);
}

void ld_geglu(float *y, const float *x, int64_t rows, int64_t d) {
    const act_kernels k = pick_act();
    #pragma omp parallel for schedule(static) if (rows * d > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * d;
        k.mul(OPS_ACT_GELU_ERF, y + r * d, h + d, h, d); /* gelu of the gate half times the value half */
    }
}

/* ---- linear ---- */

void ld_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const ld_tensor *w,
                       const ld_tensor *b) {
    int64_t N = w->shape[0];
    int64_t K = N > 0 ? ld_tensor_numel(w) / N : 0; /* [N, K] or a 1x1 conv weight [N, K, 1, 1] */
    ld_mat A = ld_mat_f32(x, ldx, 1);
    ld_mat Bm = ops_wmat(w, 0, 1, K);
    ld_gemm(M, N, K, &A, &Bm, y, ldy, 0.0f, ops_has(b) ? b : NULL, NULL);
}

void ld_linear(float *y, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b) {
    int64_t N = w->shape[0];
    int64_t K = N > 0 ? ld_tensor_numel(w) / N : 0;
    ld_linear_strided(y, N, x, K, M, w, b);
}

void ld_linear_add(float *y, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b) {
    int64_t N = w->shape[0];
    int64_t K = N > 0 ? ld_tensor_numel(w) / N : 0;
    ld_mat A = ld_mat_f32(x, K, 1);
    ld_mat Bm = ops_wmat(w, 0, 1, K);
    ld_gemm(M, N, K, &A, &Bm, y, N, 1.0f, ops_has(b) ? b : NULL, NULL);
}

void ld_linear_to_channels(float *y, float beta, const float *x, int64_t M, const ld_tensor *w, const ld_tensor *b) {
    int64_t N = w->shape[0];
    int64_t K = N > 0 ? ld_tensor_numel(w) / N : 0;
    /* y^T = w x^T: A = w [N, K], B(k, m) = x[m*K + k] */
    ld_mat A = ops_wmat(w, 0, K, 1);
    ld_mat Bm = ld_mat_f32(x, 1, K);
    ld_gemm(N, M, K, &A, &Bm, y, M, beta, NULL, ops_has(b) ? b : NULL);
}

/* ---- embeddings ---- */

void ld_timestep_embedding(float *y, const float *t, int64_t n, int dim, int flip_sin_to_cos, float shift,
                           float scale, float max_period) {
    int half = dim / 2;
    /* Same float32 steps as diffusers: exponent = -ln(max_period) * i / (half - shift), freq = exp(exponent). */
    float neg_log = (float)-log((double)max_period);
    for (int64_t r = 0; r < n; r++) {
        float *o = y + r * dim;
        for (int i = 0; i < half; i++) {
            float e = neg_log * (float)i;
            e = e / ((float)half - shift);
            float arg = scale * (t[r] * expf(e));
            float s = sinf(arg), c = cosf(arg);
            o[flip_sin_to_cos ? half + i : i] = s;
            o[flip_sin_to_cos ? i : half + i] = c;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}
