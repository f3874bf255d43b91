/* The AdamW update (adamw_kernel.h) compiled for aarch64 Advanced SIMD. */
#include <arm_neon.h>

#define ADAMW_FN adamw_run
#define OPS_VBYTES 16
#define OPS_BCAST(x) vdupq_n_f32(x)
#define VSQRT(x) ((vf)vsqrtq_f32((float32x4_t)(x)))
#include "train/adamw_kernel.h"

void ld_adamw_run_neon(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n) {
    adamw_run(c, p, g, m, v, n);
}
