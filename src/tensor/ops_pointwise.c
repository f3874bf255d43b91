/* Pointwise (1x1) convolutions whose input is built while the product packs
 * it (ld_gemm_fill_b), so the built input is never written out: a channel
 * concatenation whose first part is LayerNorm-ed per pixel, and the
 * GlobalResponseNorm; plus the GELU pass that yields the GRN's channel
 * norms. Each channel norm is summed by one thread in a fixed order; the
 * rest is elementwise: results do not depend on the thread count or the
 * instruction set (ops_vec_kernel.h). Routing the products through the
 * fill also keeps all output channels in one row of GEMM tasks, so the
 * input is packed once (see gemm.c). */
#include "tensor/ops_internal.h"

#include <math.h>

void ld_gelu_channel_norms(float *x, int64_t B, int64_t C, int64_t HW, float *norm) {
    const ops_vec_kernels *k = ops_vec();
    #pragma omp parallel for schedule(static)
    for (int64_t bc = 0; bc < B * C; bc++) norm[bc] = (float)sqrt(k->gelu_sumsq(x + bc * HW, HW));
}

/* ---- GRN ---- */

typedef struct {
    const ops_vec_kernels *k;
    const float *x; /* one image [C, HW] */
    int64_t HW;
    const float *g, *s, *t;
} grn_src;

/* dst[kk*ld + jj] = GRN(x)[k0 + kk, j0 + jj] */
static void grn_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const grn_src *u = user;
    for (int64_t kk = 0; kk < kc; kk++) {
        int64_t c = k0 + kk;
        u->k->grn_row(dst + kk * ld, u->x + c * u->HW + j0, n, u->g[c], u->s[c], u->t[c]);
    }
}

void ld_conv1x1_grn(float *y, float beta, const float *x, int64_t B, int64_t C, int64_t HW, const float *g,
                    const float *s, const float *t, const ld_tensor *w, const ld_tensor *bias) {
    int64_t Cout = w->shape[0];
    ld_mat A = ops_wmat(w, 0, C, 1);
    for (int64_t b = 0; b < B; b++) {
        grn_src src = {ops_vec(), x + b * C * HW, HW, g, s + b * C, t};
        ld_gemm_bfill fill = {grn_fill, &src};
        ld_gemm_fill_b(Cout, HW, C, &A, &fill, y + b * Cout * HW, HW, beta, NULL, ops_has(bias) ? bias : NULL);
    }
}

/* ---- concatenation with a per-pixel LayerNorm ---- */

typedef struct {
    const ops_vec_kernels *k;
    const float *a, *c2; /* one image each: [Ca, HW], [Cb, HW] */
    int64_t Ca, HW;
    const float *mean, *rstd; /* [HW] each, or NULL */
} cat_src;

static void cat_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const cat_src *u = user;
    for (int64_t kk = 0; kk < kc; kk++) {
        int64_t c = k0 + kk;
        float *d = dst + kk * ld;
        if (c >= u->Ca)
            memcpy(d, u->c2 + (c - u->Ca) * u->HW + j0, (size_t)n * sizeof(float));
        else if (u->mean)
            u->k->norm_row(d, u->a + c * u->HW + j0, n, u->mean + j0, u->rstd + j0, 1.0f, 0.0f);
        else
            memcpy(d, u->a + c * u->HW + j0, (size_t)n * sizeof(float));
    }
}

void ld_conv1x1_cat(float *y, float beta, const float *a, int64_t Ca, const float *mean, const float *rstd,
                    const float *c2, int64_t Cb, int64_t B, int64_t HW, const ld_tensor *w, const ld_tensor *bias) {
    int64_t Cout = w->shape[0], K = Ca + Cb;
    ld_mat A = ops_wmat(w, 0, K, 1);
    for (int64_t b = 0; b < B; b++) {
        cat_src src = {ops_vec(), a + b * Ca * HW, Cb ? c2 + b * Cb * HW : NULL, Ca, HW,
                       mean ? mean + b * HW : NULL, rstd ? rstd + b * HW : NULL};
        ld_gemm_bfill fill = {cat_fill, &src};
        ld_gemm_fill_b(Cout, HW, K, &A, &fill, y + b * Cout * HW, HW, beta, NULL, ops_has(bias) ? bias : NULL);
    }
}
