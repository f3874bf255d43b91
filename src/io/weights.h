/* Weight sources: where a model component gets its tensors by name.
 *
 * A source is a component folder (diffusers layout: diffusion_pytorch_model
 * [.variant].safetensors, model[.variant].safetensors, or a sharded
 * *.safetensors.index.json), a single file, tensors in memory, or a *recording* source used by
 * `init-random`: it accepts every request and remembers names and shapes, so
 * the model's own build code defines what a random-weight file must hold.
 *
 *     ld_tensor w;
 *     int64_t shape[4] = {320, 4, 3, 3};
 *     LD_TRY(ld_weights_get(ctx, ws, &w, 4, shape, "%sconv_in.weight", prefix));
 *
 * A missing tensor or a shape mismatch is an error naming the tensor, the file
 * and both shapes. A -1 in the expected shape accepts any size there (not in
 * recording mode). In recording mode the returned tensor has data == NULL:
 * build code must not read weight values while building.
 *
 * Aliases map a name to (part of) another tensor: rows [begin, end) of its
 * first dimension, as a view without copying. Loaders for other naming
 * schemes (Stability's packed in_proj_weight) add aliases after opening.
 */
#ifndef LD_IO_WEIGHTS_H
#define LD_IO_WEIGHTS_H

#include "io/safetensors.h"

typedef struct ld_weights ld_weights;

/* variant: "fp16", "bf16" or NULL. Prefers the variant file, falls back to the
 * plain one (and the other way round) with an info log line. */
ld_status ld_weights_open_dir(ld_ctx *ctx, const char *dir, const char *variant, ld_weights **out);
/* A .safetensors file or a .safetensors.index.json. */
ld_status ld_weights_open_file(ld_ctx *ctx, const char *path, ld_weights **out);
/* A source over n tensors the caller holds (views: their names and data must
 * outlive the source), such as the training engine's f32 master weights. */
ld_status ld_weights_new_memory(ld_ctx *ctx, const char *where, const ld_tensor *tensors, size_t n,
                                ld_weights **out);
/* A recording source (init-random); never fails except out of memory. */
ld_status ld_weights_new_recorder(ld_ctx *ctx, ld_weights **out);
void ld_weights_free(ld_weights *ws);

int ld_weights_is_recorder(const ld_weights *ws);
/* Folder or file the weights come from (for messages). */
const char *ld_weights_where(const ld_weights *ws);

ld_status ld_weights_get(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                         const char *fmt, ...) LD_PRINTF(6, 7);
/* Like ld_weights_get but an absent tensor is fine: returns LD_OK with
 * out->data == NULL and out->ndim == 0 (a recorder records nothing). */
ld_status ld_weights_get_opt(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                             const char *fmt, ...) LD_PRINTF(6, 7);
/* Is the tensor present (for structure detection)? A recorder answers 0. */
int ld_weights_has(const ld_weights *ws, const char *fmt, ...) LD_PRINTF(2, 3);
/* Looks a tensor up without shape checks (NULL if absent). */
const ld_tensor *ld_weights_find(const ld_weights *ws, const char *name);

/* Replaces tensor `name` (which must exist) by an f32 copy the source owns
 * (a LoRA-patched layer); later lookups see the copy. *out points at it. */
ld_status ld_weights_override_f32(ld_ctx *ctx, ld_weights *ws, const char *name, float **out);

ld_status ld_weights_alias(ld_ctx *ctx, ld_weights *ws, const char *alias, const char *target, int64_t row_begin,
                           int64_t row_end);

/* The underlying files (for converters that scan names). */
size_t ld_weights_file_count(const ld_weights *ws);
const ld_safetensors *ld_weights_file(const ld_weights *ws, size_t i);

/* Recorded tensors (name in t->name, owned by the recorder). */
size_t ld_weights_recorded_count(const ld_weights *ws);
const ld_tensor *ld_weights_recorded(const ld_weights *ws, size_t i);
/* Writes the recorded tensors with deterministic random values of a scale
 * that keeps activations finite (fan-in scaled weights, unit norm scales,
 * small biases, positive running variances). */
ld_status ld_weights_write_random(ld_ctx *ctx, const ld_weights *rec, const char *path, ld_dtype dtype,
                                  uint64_t seed);

#endif
