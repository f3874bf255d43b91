/* Activation kernels on vectors, compiled once per instruction set: included
 * by ops_elementwise.c (portable), ops_act_avx2.c and ops_act_avx512.c with
 * ACT_FN (the function's name), OPS_VBYTES and OPS_BCAST defined (see
 * ops_vmath.h). Not a public header.
 *
 *     ACT_FN(kind, y, x, n);   // y[i] = act(x[i]) for i < n; y may equal x
 *
 * The last partial vector goes through the same vector code (padded), so an
 * element's result does not depend on where a thread's chunk starts. */
#include "tensor/ops_vmath.h"

static inline vf act_vec(int kind, vf x) {
    const vf one = OPS_BCAST(1.0f);
    switch (kind) {
    case OPS_ACT_SILU: return x / (one + vexp(-x));
    case OPS_ACT_GELU_ERF: /* x/2 (1 + erf(x/sqrt 2)) = x/2 erfc(-x/sqrt 2) */
        return x * OPS_BCAST(0.5f) * verfc(-x * OPS_BCAST(0.70710678118654752f));
    case OPS_ACT_GELU_TANH: { /* x/2 (1 + tanh u) = x sigmoid(2u) */
        vf u = OPS_BCAST(0.7978845608028654f) * (x + OPS_BCAST(0.044715f) * x * x * x);
        return x / (one + vexp(OPS_BCAST(-2.0f) * u));
    }
    case OPS_ACT_QUICK_GELU: return x / (one + vexp(OPS_BCAST(-1.702f) * x));
    case OPS_ACT_EXP: return vexp(x);
    case OPS_ACT_NORMCDF: return OPS_BCAST(0.5f) * verfc(-x * OPS_BCAST(0.70710678118654752f));
    default: return one / (one + vexp(-x)); /* OPS_ACT_SIGMOID */
    }
}

static void ACT_FN(int kind, float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstore(y + i, act_vec(kind, vload(x + i)));
    if (i < n) {
        float buf[VL];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        vstore(buf, act_vec(kind, vload(buf)));
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}
