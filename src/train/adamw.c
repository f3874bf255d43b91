/* AdamW and gradient clipping (see adamw.h). */
#include "train/adamw.h"

#include "base/cpu.h"

#include <math.h>
#include <stdlib.h>

ld_status ld_adamw_init(ld_ctx *ctx, ld_adamw *o, int64_t n, float lr, float beta1, float beta2, float eps,
                        float weight_decay) {
    *o = (ld_adamw){.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps, .weight_decay = weight_decay, .n = n};
    const size_t bytes = sizeof(float) * (size_t)(n > 0 ? n : 1);
    if (ld_calloc_huge(NULL, (void **)&o->m, bytes, "") != LD_OK || /* huge pages: see base/status.h */
        ld_calloc_huge(NULL, (void **)&o->v, bytes, "") != LD_OK) {
        ld_adamw_free(o);
        return ld_fail(ctx, LD_ERR_NOMEM, "AdamW: cannot hold the two moments of %lld parameters", (long long)n);
    }
    return LD_OK;
}

void ld_adamw_free(ld_adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* the portable loop; the kernels of adamw_kernel.h do the same operations in the same order */
static void adamw_run_portable(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, decay = c->decay, step_size = c->step_size,
                bc2_sqrt = c->bc2_sqrt;
    for (int64_t i = 0; i < n; i++) {
        p[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
        g[i] = 0.0f; /* ready for the next step's accumulation, in the same pass */
    }
}

typedef void (*adamw_run_fn)(const ld_adamw_coef *, float *, float *, float *, float *, int64_t);

static adamw_run_fn adamw_kernel(void) {
    const ld_cpu_level_t level = ld_cpu_level();
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    if (level >= LD_CPU_AVX512) return ld_adamw_run_avx512;
    if (level >= LD_CPU_AVX2) return ld_adamw_run_avx2;
#elif defined(__aarch64__)
    if (level >= LD_CPU_NEON) return ld_adamw_run_neon;
#endif
    (void)level;
    return adamw_run_portable;
}

void ld_adamw_update(ld_adamw *o, float *p, float *g, float lr) {
    o->step++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
    const ld_adamw_coef c = {.beta1 = o->beta1,
                             .beta2 = o->beta2,
                             .eps = o->eps,
                             .decay = 1.0f - lr * o->weight_decay,
                             .step_size = (float)(lr / bc1),
                             .bc2_sqrt = (float)sqrt(bc2)};
    const adamw_run_fn run = adamw_kernel();
    enum { CHUNK = 1 << 16 }; /* a multiple of every vector length: chunks never split a vector */
    const int64_t n = o->n, chunks = (n + CHUNK - 1) / CHUNK;
    float *m = o->m, *v = o->v;
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++) {
        const int64_t i = k * CHUNK, len = n - i < CHUNK ? n - i : CHUNK;
        run(&c, p + i, g + i, m + i, v + i, len);
    }
}

double ld_clip_grad_norm(float *g, int64_t n, double max_norm) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i]; /* one thread, fixed order */
    const double norm = sqrt(ss), coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (int64_t i = 0; i < n; i++) g[i] = (float)(g[i] * coef);
    return norm;
}
