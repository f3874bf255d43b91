/* Elementwise ops, activations, linear layers and the timestep embedding
 * (see ops.h for the contracts). Each loop is split over the OpenMP threads
 * with a static schedule; every element is computed independently, so the
 * result does not depend on the thread count. */
#include "tensor/ops_internal.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 16384

void ld_silu(float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void ld_gelu_erf(float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void ld_gelu_tanh(float *x, int64_t n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void ld_quick_gelu(float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void ld_sigmoid(float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

void ld_leaky_relu(float *x, int64_t n, float slope) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void ld_scale(float *x, int64_t n, float s) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void ld_add(float *y, const float *a, const float *b, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void ld_add_channel_bias(float *x, int64_t B, int64_t C, int64_t HW, const float *bias) {
    #pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (int64_t bc = 0; bc < B * C; bc++) {
        float v = bias[bc % C];
        float *p = x + bc * HW;
        for (int64_t i = 0; i < HW; i++) p[i] += v;
    }
}

void ld_geglu(float *y, const float *x, int64_t rows, int64_t d) {
    #pragma omp parallel for schedule(static) if (rows * d > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * d, *g = h + d;
        float *o = y + r * d;
        for (int64_t i = 0; i < d; i++) o[i] = h[i] * (g[i] * 0.5f * (1.0f + erff(g[i] * (float)M_SQRT1_2)));
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
