/* The AdamW update (adamw_kernel.h) compiled for AVX-512. */
#include <immintrin.h>

#define ADAMW_FN adamw_run
#define OPS_VBYTES 64
#define OPS_BCAST(x) _mm512_set1_ps(x)
#define VSQRT(x) ((vf)_mm512_sqrt_ps((__m512)(x)))
#include "train/adamw_kernel.h"

void ld_adamw_run_avx512(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n) {
    adamw_run(c, p, g, m, v, n);
}
