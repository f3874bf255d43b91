/* The AdamW update (adamw_kernel.h) compiled for AVX2. */
#include <immintrin.h>

#define ADAMW_FN adamw_run
#define OPS_VBYTES 32
#define OPS_BCAST(x) _mm256_set1_ps(x)
#define VSQRT(x) ((vf)_mm256_sqrt_ps((__m256)(x)))
#include "train/adamw_kernel.h"

void ld_adamw_run_avx2(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n) {
    adamw_run(c, p, g, m, v, n);
}
