/* AdamW with PyTorch's semantics (torch.optim.AdamW, single-tensor path):
 *     p -= lr * wd * p
 *     m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * over the packed parameters in one loop, and max-norm gradient clipping as
 * torch.nn.utils.clip_grad_norm_. The moments are f32, laid out like the
 * parameters (so saving them is one pass over the names). */
#ifndef LD_TRAIN_ADAMW_H
#define LD_TRAIN_ADAMW_H

#include "base/status.h"

#include <stdint.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* updates done */
    int64_t n;
    float *m, *v;
} ld_adamw;

ld_status ld_adamw_init(ld_ctx *ctx, ld_adamw *o, int64_t n, float lr, float beta1, float beta2, float eps,
                        float weight_decay);
void ld_adamw_free(ld_adamw *o);
/* One update of p[n] with gradient g[n] at learning rate lr (a schedule
 * changes it per step); g is zeroed in the same pass, ready for the next
 * step's accumulation. */
void ld_adamw_update(ld_adamw *o, float *p, float *g, float lr);

/* Scales g so its global L2 norm is at most max_norm (total / (norm + 1e-6),
 * as PyTorch); returns the norm before clipping. */
double ld_clip_grad_norm(float *g, int64_t n, double max_norm);

/* The SIMD kernels of one update over n parameters (adamw_kernel.h), the
 * per-step constants computed once by ld_adamw_update. */
typedef struct {
    float beta1, beta2, eps, decay, step_size, bc2_sqrt;
} ld_adamw_coef;
void ld_adamw_run_avx512(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n);
void ld_adamw_run_avx2(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n);
void ld_adamw_run_neon(const ld_adamw_coef *c, float *p, float *g, float *m, float *v, int64_t n);

#endif
