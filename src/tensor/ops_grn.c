/* GlobalResponseNorm in two fused steps (see ops.h): the GELU in front of it
 * together with its per-channel L2 norms (one pass over the activations),
 * and the 1x1 convolution after it, whose input is normalized while the
 * product packs it (ld_gemm_fill_b), so the normalized activations are never
 * written. Each channel's norm is summed by one thread in a fixed order;
 * the GRN arithmetic is elementwise: results do not depend on the thread
 * count or the instruction set (ops_vec_kernel.h). */
#include "tensor/ops_internal.h"

#include <math.h>

void ld_gelu_channel_norms(float *x, int64_t B, int64_t C, int64_t HW, float *norm) {
    const ops_vec_kernels *k = ops_vec();
    #pragma omp parallel for schedule(static)
    for (int64_t bc = 0; bc < B * C; bc++) norm[bc] = (float)sqrt(k->gelu_sumsq(x + bc * HW, HW));
}

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
