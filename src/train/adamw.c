/* AdamW and gradient clipping (see adamw.h). */
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>

ld_status ld_adamw_init(ld_ctx *ctx, ld_adamw *o, int64_t n, float lr, float beta1, float beta2, float eps,
                        float weight_decay) {
    *o = (ld_adamw){.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps, .weight_decay = weight_decay, .n = n};
    o->m = calloc((size_t)n, sizeof(float));
    o->v = calloc((size_t)n, sizeof(float));
    if (!o->m || !o->v) {
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

void ld_adamw_update(ld_adamw *o, float *p, float *g, float lr) {
    o->step++;
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, decay = 1.0f - lr * o->weight_decay;
    const double bc1 = 1.0 - pow(b1, (double)o->step), bc2 = 1.0 - pow(b2, (double)o->step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float *m = o->m, *v = o->v;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < o->n; i++) {
        p[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
        g[i] = 0.0f; /* ready for the next step's accumulation, in the same pass */
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
