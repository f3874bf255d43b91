/* The vector kernels of ops_vec_kernel.h compiled for AVX-512 (picked by
 * ops_vec() when the CPU path is AVX-512). */
#include "tensor/ops_internal.h"

#include <immintrin.h>

#define VEC_TABLE ops_vec_avx512
#define ACT_FN vec_act_avx512
#define OPS_VBYTES 64
#define OPS_BCAST(x) _mm512_set1_ps(x)
#include "tensor/ops_vec_kernel.h"
