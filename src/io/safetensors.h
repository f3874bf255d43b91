/* safetensors files: a validating mmap reader with a hash index by tensor
 * name, and a streaming writer.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}},
 * then the raw little-endian data (offsets relative to its start).
 *
 * The reader checks everything before handing out a tensor: header length vs
 * file size, well-formed JSON, known dtypes, shape x dtype size equal to the
 * byte range, ranges inside the file and not overlapping. Errors name the
 * file, the tensor and the problem.
 */
#ifndef LD_IO_SAFETENSORS_H
#define LD_IO_SAFETENSORS_H

#include "tensor/tensor.h"

#define LD_ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct ld_safetensors ld_safetensors;

ld_status ld_safetensors_open(ld_ctx *ctx, const char *path, ld_safetensors **out);
/* Parses a complete file image held in memory (not copied; must outlive the
 * result). Used by the fuzzer and tests. */
ld_status ld_safetensors_from_memory(ld_ctx *ctx, const char *where, const void *buf, size_t len,
                                     ld_safetensors **out);
void ld_safetensors_close(ld_safetensors *st);

const char *ld_safetensors_path(const ld_safetensors *st);
size_t ld_safetensors_count(const ld_safetensors *st);
/* Tensors in file order of their data (sorted by offset). */
const ld_tensor *ld_safetensors_at(const ld_safetensors *st, size_t i);
/* NULL if absent. The tensor's name field points at its name. */
const ld_tensor *ld_safetensors_find(const ld_safetensors *st, const char *name);
/* __metadata__ entries. */
size_t ld_safetensors_meta_count(const ld_safetensors *st);
const char *ld_safetensors_meta_key(const ld_safetensors *st, size_t i);
const char *ld_safetensors_meta_get(const ld_safetensors *st, const char *key);

/* ---- writer ---- */

/* Fills `count` elements starting at element `offset` of tensor `index`. */
typedef void (*ld_st_fill_fn)(void *user, size_t index, void *dst, int64_t offset, int64_t count);

typedef struct {
    const char *name;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_DIMS];
    const void *data;   /* raw bytes in dtype, or NULL to use fill */
    ld_st_fill_fn fill;
    void *fill_user;
} ld_st_write_entry;

/* Writes atomically (temp file + rename). meta: NULL-terminated key, value pairs or NULL. */
ld_status ld_safetensors_write(ld_ctx *ctx, const char *path, const ld_st_write_entry *entries, size_t n,
                               const char *const *meta);

/* Convenience collection for dumps and tests: entries whose data is copied. */
typedef struct {
    ld_st_write_entry *entries;
    size_t count, cap;
    char **meta; /* key, value, key, value, ..., NULL */
    size_t meta_count;
} ld_st_builder;

void ld_st_builder_init(ld_st_builder *b);
ld_status ld_st_builder_add(ld_ctx *ctx, ld_st_builder *b, const char *name, ld_dtype dtype, int ndim,
                            const int64_t *shape, const void *data);
ld_status ld_st_builder_add_f32(ld_ctx *ctx, ld_st_builder *b, const char *name, int ndim, const int64_t *shape,
                                const float *data);
ld_status ld_st_builder_meta(ld_ctx *ctx, ld_st_builder *b, const char *key, const char *value);
ld_status ld_st_builder_write(ld_ctx *ctx, ld_st_builder *b, const char *path);
void ld_st_builder_free(ld_st_builder *b);

#endif
