/* The AdamW update over a run of parameters, compiled once per instruction
 * set: included by adamw_avx2.c, adamw_avx512.c and adamw_neon.c with
 * ADAMW_FN (the function's name), OPS_VBYTES, OPS_BCAST and VSQRT (lane-wise
 * square root) defined. Not a public header.
 *
 * The same IEEE operations in the same order as the portable loop of
 * adamw.c (no fused multiply-add; division and square root are correctly
 * rounded in every lane), so every path gives the same bits. The last partial
 * vector goes through the same code, padded with zeros. */
#include "train/adamw.h"
#include "tensor/ops_vmath.h"

static inline void adamw_vec(const ld_adamw_coef *c, float *p, float *g, float *m, float *v) {
    const vf b1 = OPS_BCAST(c->beta1), b2 = OPS_BCAST(c->beta2);
    const vf gi = vload(g);
    vf mi = vload(m), vi_ = vload(v), pi = vload(p) * OPS_BCAST(c->decay);
    mi = b1 * mi + OPS_BCAST(1.0f - c->beta1) * gi;
    vi_ = b2 * vi_ + OPS_BCAST(1.0f - c->beta2) * gi * gi;
    pi -= OPS_BCAST(c->step_size) * (mi / (VSQRT(vi_) / OPS_BCAST(c->bc2_sqrt) + OPS_BCAST(c->eps)));
    vstore(p, pi), vstore(m, mi), vstore(v, vi_), vstore(g, vzero);
}

static void ADAMW_FN(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) adamw_vec(c, p + i, g + i, m + i, v + i);
    if (i < n) {
        float buf[4][VL];
        memset(buf, 0, sizeof buf);
        const size_t bytes = (size_t)(n - i) * sizeof(float);
        memcpy(buf[0], p + i, bytes), memcpy(buf[1], g + i, bytes), memcpy(buf[2], m + i, bytes),
            memcpy(buf[3], v + i, bytes);
        adamw_vec(c, buf[0], buf[1], buf[2], buf[3]);
        memcpy(p + i, buf[0], bytes), memcpy(g + i, buf[1], bytes), memcpy(m + i, buf[2], bytes),
            memcpy(v + i, buf[3], bytes);
    }
}
