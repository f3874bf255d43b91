/* Activation kernels on vectors, compiled once per instruction set: included
 * by ops_elementwise.c (portable), ops_act_avx2.c and ops_act_avx512.c with
 * ACT_FN (the function's name), OPS_VBYTES and OPS_BCAST defined (see
 * ops_vmath.h). Not a public header.
 *
 *     ACT_FN(kind, y, x, n);        // y[i] = act(x[i]) for i < n; y may equal x
 *     ACT_MUL_FN(kind, y, x, m, n); // y[i] = act(x[i]) * m[i] (GEGLU), the bits of
 *                                   // ACT_FN and then the product; only where
 *                                   // the includer defines ACT_MUL_FN
 *
 * VN vectors at a time (ops_vmath.h); the last partial group goes through the
 * same vector code (padded), so an element's result does not depend on where
 * a thread's chunk starts. */
#include "tensor/ops_vmath.h"

/* x[l] = act(x[l]) for the VN vectors (see ops_vmath.h) */
VM_INLINE void act_vec_n(int kind, vf *x) {
    const vf one = OPS_BCAST(1.0f);
    vf e[VN];
    switch (kind) {
    case OPS_ACT_SILU:
        VN_EACH e[l] = -x[l];
        vexp_n(e);
        VN_EACH x[l] = x[l] / (one + e[l]);
        break;
    case OPS_ACT_GELU_ERF: /* x/2 (1 + erf(x/sqrt 2)) = x/2 erfc(-x/sqrt 2) */
        VN_EACH e[l] = -x[l] * OPS_BCAST(0.70710678118654752f);
        verfc_n(e);
        VN_EACH x[l] = x[l] * OPS_BCAST(0.5f) * e[l];
        break;
    case OPS_ACT_GELU_TANH: /* x/2 (1 + tanh u) = x sigmoid(2u) */
        VN_EACH e[l] = OPS_BCAST(-2.0f) *
                        (OPS_BCAST(0.7978845608028654f) * (x[l] + OPS_BCAST(0.044715f) * x[l] * x[l] * x[l]));
        vexp_n(e);
        VN_EACH x[l] = x[l] / (one + e[l]);
        break;
    case OPS_ACT_QUICK_GELU:
        VN_EACH e[l] = OPS_BCAST(-1.702f) * x[l];
        vexp_n(e);
        VN_EACH x[l] = x[l] / (one + e[l]);
        break;
    case OPS_ACT_EXP: vexp_n(x); break;
    case OPS_ACT_NORMCDF:
        VN_EACH e[l] = -x[l] * OPS_BCAST(0.70710678118654752f);
        verfc_n(e);
        VN_EACH x[l] = OPS_BCAST(0.5f) * e[l];
        break;
    default: /* OPS_ACT_SIGMOID */
        VN_EACH e[l] = -x[l];
        vexp_n(e);
        VN_EACH x[l] = one / (one + e[l]);
        break;
    }
}

static void ACT_FN(int kind, float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + VN * VL <= n; i += VN * VL) {
        vf v[VN];
        VN_EACH v[l] = vload(x + i + l * VL);
        act_vec_n(kind, v);
        VN_EACH vstore(y + i + l * VL, v[l]);
    }
    if (i < n) {
        float buf[VN * VL];
        vf v[VN];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        VN_EACH v[l] = vload(buf + l * VL);
        act_vec_n(kind, v);
        VN_EACH vstore(buf + l * VL, v[l]);
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}

#ifdef ACT_MUL_FN
/* The activation times m, one pass: the product is rounded once, from the
 * activation as ACT_FN stores it, so the bits are those of ACT_FN followed
 * by y[i] *= m[i] (the GEGLU's multiply, which as a loop of its own was
 * left scalar by gcc -O2 and took 1.7 % of a bf16 KOALA U-Net evaluation). */
static void ACT_MUL_FN(int kind, float *y, const float *x, const float *m, int64_t n) {
    int64_t i = 0;
    for (; i + VN * VL <= n; i += VN * VL) {
        vf v[VN];
        VN_EACH v[l] = vload(x + i + l * VL);
        act_vec_n(kind, v);
        VN_EACH vstore(y + i + l * VL, v[l] * vload(m + i + l * VL));
    }
    if (i < n) {
        float buf[VN * VL], mb[VN * VL];
        vf v[VN];
        memset(buf, 0, sizeof buf);
        memset(mb, 0, sizeof mb);
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        memcpy(mb, m + i, (size_t)(n - i) * sizeof(float));
        VN_EACH v[l] = vload(buf + l * VL);
        act_vec_n(kind, v);
        VN_EACH vstore(buf + l * VL, v[l] * vload(mb + l * VL));
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}
#endif
