/* The trainable parameters as the training engine holds them (DESIGN.md,
 * Training): f32 master weights and their gradients, each in one packed
 * allocation laid out in the checkpoint's tensor order, whatever the file's
 * dtype. A model is then built over the master weights through a memory
 * weight source, so its forward reads them in place and the gradient of a
 * weight is found at the same offset in `grad`.
 *
 *     ld_train_params p;
 *     LD_TRY(ld_train_params_from_weights(ctx, file_ws, &p));
 *     ... build the model on p.source ...
 *     float *g = ld_train_grad_of(&p, &resnet->conv1.w);
 */
#ifndef LD_TRAIN_TRAIN_PARAMS_H
#define LD_TRAIN_TRAIN_PARAMS_H

#include "io/weights.h"

typedef struct {
    size_t count;
    ld_tensor *tensors; /* f32 views into value, names owned, in checkpoint order */
    int64_t *offset;    /* element offset of tensor i in value/grad */
    int64_t total;      /* elements in all */
    float *value, *grad;
    ld_weights *source; /* memory source over `tensors` (a model built on it owns it) */
} ld_train_params;

/* Copies every float tensor of the files of ws into f32 master weights. */
ld_status ld_train_params_from_weights(ld_ctx *ctx, const ld_weights *ws, ld_train_params *p);
/* Zeroed parameters of the given names (copied) and shapes, with no source. */
ld_status ld_train_params_alloc(ld_ctx *ctx, size_t n, const char *const *names, const int *ndims,
                                const int64_t (*shapes)[LD_MAX_DIMS], ld_train_params *p);
void ld_train_params_free(ld_train_params *p);
void ld_train_params_zero_grad(ld_train_params *p);

/* Gradient of a tensor of the built model (one of p's views), or NULL. */
float *ld_train_grad_of(const ld_train_params *p, const ld_tensor *t);
/* Index of a tensor by name, or -1. */
int64_t ld_train_params_find(const ld_train_params *p, const char *name);

/* Writes data (p->value, p->grad or an array laid out like them) as a
 * safetensors file of `dtype` (F32, F16 or BF16), names prefixed by prefix
 * ("" for a loadable checkpoint). Atomic. meta: NULL-terminated pairs or NULL. */
ld_status ld_train_params_save(ld_ctx *ctx, const ld_train_params *p, const float *data, const char *prefix,
                               ld_dtype dtype, const char *path, const char *const *meta);

#endif
