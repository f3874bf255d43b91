/* The vector kernels of ops_vec_kernel.h for portable C, and the choice of
 * the table for the CPU path in force (base/cpu.h). */
#include "tensor/ops_internal.h"

#include "base/cpu.h"

#define VEC_TABLE ops_vec_portable
#define ACT_FN vec_act_portable
#define OPS_VBYTES 16
#define OPS_BCAST(x) ((vf){(x), (x), (x), (x)})
#include "tensor/ops_vec_kernel.h"

const ops_vec_kernels *ops_vec(void) {
#if defined(__x86_64__) || defined(__i386__)
    ld_cpu_level_t level = ld_cpu_level();
    if (level >= LD_CPU_AVX512) return &ops_vec_avx512;
    if (level >= LD_CPU_AVX2) return &ops_vec_avx2;
#endif
    return &ops_vec_portable;
}
