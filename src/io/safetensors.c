/* safetensors reader (read into huge-page memory or mapped, see io/weights_memory.h;
 * validated, hashed) and writer (see safetensors.h). */
#include "io/safetensors.h"

#include "io/fileio.h"
#include "io/json.h"
#include "io/weights_memory.h"
#include "tensor/gemm_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    ld_tensor t;
    uint64_t begin, end;
    char *name;
} st_entry;

struct ld_safetensors {
    char *path;
    void *map;           /* mmap of the whole file, or NULL (read, or from_memory) */
    void *copy;          /* or the whole file read into huge-page memory (ld_weights_mem_alloc) */
    int fd;              /* the file of a read copy, open while it lives (tensor/gemm_cache.h) */
    size_t map_size;
    const unsigned char *bytes;
    size_t size;
    st_entry *entries;
    size_t count;
    uint32_t *slots;     /* open addressing: entry index + 1, 0 = empty */
    size_t nslots;
    char **meta_keys, **meta_vals;
    size_t meta_count;
};

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static ld_status parse_entry(ld_ctx *ctx, const char *where, const char *name, json_t *v, uint64_t data_size,
                             st_entry *e) {
    if (!json_is_object(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': header entry must be an object, got %s", where, name,
                       ld_json_type_name(v));
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!dt || !json_is_string(dt))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype", where, name);
    if (!ld_dtype_parse(json_string_value(dt), &e->t.dtype))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", where, name, json_string_value(dt));
    if (!shape || !json_is_array(shape))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': missing or non-list shape", where, name);
    size_t rank = json_array_size(shape);
    if (rank > LD_MAX_DIMS)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': rank %zu exceeds the supported %d", where, name, rank,
                       LD_MAX_DIMS);
    uint64_t bytes = ld_dtype_size(e->t.dtype);
    for (size_t i = 0; i < rank; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", where,
                           name, i);
        e->t.shape[i] = (int64_t)json_integer_value(d);
        if (__builtin_mul_overflow(bytes, (uint64_t)e->t.shape[i], &bytes))
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': declared size overflows", where, name);
    }
    e->t.ndim = (int)rank;
    if (!offs || !json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end] integers", where, name);
    json_int_t b = json_integer_value(json_array_get(offs, 0)), en = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || en < b)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are not an increasing range",
                       where, name, (long long)b, (long long)en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end > data_size)
        return ld_fail(ctx, LD_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets end %llu is past the end of the data (%llu bytes; file truncated?)",
                       where, name, (unsigned long long)e->end, (unsigned long long)data_size);
    if (e->end - e->begin != bytes) {
        char sh[128];
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets span %llu",
                       where, name, ld_shape_str(sh, sizeof sh, e->t.ndim, e->t.shape), ld_dtype_name(e->t.dtype),
                       (unsigned long long)bytes, (unsigned long long)(e->end - e->begin));
    }
    return LD_OK;
}

static ld_status parse_metadata(ld_ctx *ctx, const char *where, json_t *v, ld_safetensors *st) {
    if (!json_is_object(v)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: __metadata__ must be an object", where);
    size_t n = json_object_size(v);
    st->meta_keys = calloc(n + 1, sizeof(char *));
    st->meta_vals = calloc(n + 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_vals) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", where);
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val) {
        if (!json_is_string(val))
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: __metadata__ value of '%s' must be a string, got %s", where, k,
                           ld_json_type_name(val));
        st->meta_keys[st->meta_count] = strdup(k);
        st->meta_vals[st->meta_count] = strdup(json_string_value(val));
        if (!st->meta_keys[st->meta_count] || !st->meta_vals[st->meta_count])
            return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", where);
        st->meta_count++;
    }
    return LD_OK;
}

static ld_status build_index(ld_ctx *ctx, const char *where, ld_safetensors *st) {
    size_t n = 16;
    while (n < st->count * 2) n <<= 1;
    st->slots = calloc(n, sizeof *st->slots);
    if (!st->slots) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory for the tensor index", where);
    st->nslots = n;
    for (size_t i = 0; i < st->count; i++) {
        size_t h = (size_t)hash_name(st->entries[i].name) & (n - 1);
        while (st->slots[h]) h = (h + 1) & (n - 1);
        st->slots[h] = (uint32_t)(i + 1);
    }
    return LD_OK;
}

/* Parses and validates the header of a complete file image. */
static ld_status parse(ld_ctx *ctx, const char *where, ld_safetensors *st) {
    if (st->size < 8)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", where,
                       st->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->bytes[i];
    if (hlen > st->size - 8)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu (truncated or not safetensors)",
                       where, (unsigned long long)hlen, st->size);
    if (hlen > LD_ST_MAX_HEADER)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", where,
                       (unsigned long long)hlen, (unsigned long long)LD_ST_MAX_HEADER);
    if (hlen < 2 || st->bytes[8] != '{')
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: header does not start with a JSON object", where);
    json_t *root;
    json_error_t jerr;
    root = json_loadb((const char *)st->bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: header is not valid JSON (column %d: %s)", where, jerr.column,
                       jerr.text);
    ld_status rc = LD_OK;
    if (!json_is_object(root)) {
        rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: header must be a JSON object", where);
        goto done;
    }
    size_t data_start = 8 + (size_t)hlen;
    uint64_t data_size = st->size - data_start;
    size_t n = json_object_size(root);
    st->entries = calloc(n ? n : 1, sizeof *st->entries);
    if (!st->entries) {
        rc = ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", where);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(ctx, where, val, st)) != LD_OK) goto done;
            continue;
        }
        if (key[0] == 0) {
            rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: a tensor has an empty name", where);
            goto done;
        }
        st_entry *e = &st->entries[st->count];
        if ((rc = parse_entry(ctx, where, key, val, data_size, e)) != LD_OK) goto done;
        e->name = strdup(key);
        if (!e->name) {
            rc = ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", where);
            goto done;
        }
        st->count++;
    }
    qsort(st->entries, st->count, sizeof *st->entries, cmp_begin);
    for (size_t i = 0; i < st->count; i++) {
        st_entry *e = &st->entries[i];
        if (i > 0 && e->begin < st->entries[i - 1].end) {
            rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", where,
                         st->entries[i - 1].name, e->name);
            goto done;
        }
        e->t.name = e->name;
        const unsigned char *p = st->bytes + data_start + e->begin;
        size_t esz = ld_dtype_size(e->t.dtype);
        if (e->end > e->begin && ((uintptr_t)p % esz) != 0) {
            /* Misaligned for its dtype: keep an aligned private copy so kernels stay portable. */
            void *copy;
            if ((rc = ld_aligned_alloc(ctx, &copy, e->end - e->begin, "misaligned tensor copy")) != LD_OK) goto done;
            memcpy(copy, p, e->end - e->begin);
            e->t.data = copy;
            e->t.owned = 1;
        } else {
            e->t.data = (void *)p;
        }
    }
    rc = build_index(ctx, where, st);
done:
    json_decref(root);
    return rc;
}

static ld_status finish(ld_ctx *ctx, const char *where, ld_safetensors *st, ld_safetensors **out) {
    ld_status rc = parse(ctx, where, st);
    if (rc != LD_OK) {
        ld_safetensors_close(st);
        return rc;
    }
    *out = st;
    return LD_OK;
}

ld_status ld_safetensors_open(ld_ctx *ctx, const char *path, ld_safetensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ld_fail(ctx, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ld_fail(ctx, LD_ERR_IO, "%s: not a regular file", path);
    }
    ld_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        close(fd);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
    }
    st->path = strdup(path);
    st->size = (size_t)sb.st_size;
    if (ld_weights_should_read(path, st->size)) {
        void *buf = ld_weights_mem_alloc(ctx, path, st->size);
        ld_status rc = buf ? ld_read_all(ctx, path, fd, buf, st->size) : LD_ERR_NOMEM;
        if (rc != LD_OK) {
            ld_weights_mem_free(buf, st->size);
            close(fd);
            ld_safetensors_close(st);
            return rc;
        }
        mprotect(buf, st->size, PROT_READ); /* read-only like the mapping (advice: a failure changes nothing) */
        st->copy = buf;
        st->bytes = buf;
        st->fd = fd; /* kept: the packed-weight cache maps the file over pages it no longer needs */
        ld_gemm_const_register_copy(buf, st->size, fd);
        return finish(ctx, path, st, out);
    } else if (st->size > 0) {
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int err = errno;
            close(fd);
            ld_safetensors_close(st);
            return ld_fail(ctx, LD_ERR_IO, "%s: cannot mmap: %s", path, strerror(err));
        }
        st->map = m;
        st->map_size = st->size;
        st->bytes = m;
        ld_gemm_const_register(m, st->size); /* read-only file pages: weights packed once (gemm_cache.h) */
    } else {
        st->bytes = (const unsigned char *)"";
    }
    close(fd);
    return finish(ctx, path, st, out);
}

ld_status ld_safetensors_from_memory(ld_ctx *ctx, const char *where, const void *buf, size_t len,
                                     ld_safetensors **out) {
    *out = NULL;
    ld_safetensors *st = calloc(1, sizeof *st);
    if (!st) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", where);
    st->path = strdup(where);
    st->bytes = buf ? buf : (const void *)"";
    st->size = len;
    return finish(ctx, where, st, out);
}

void ld_safetensors_close(ld_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) {
        ld_tensor_free(&st->entries[i].t);
        free(st->entries[i].name);
    }
    free(st->entries);
    free(st->slots);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    if (st->map) {
        ld_gemm_const_unregister(st->map, st->map_size);
        munmap(st->map, st->map_size);
    }
    if (st->copy) {
        ld_gemm_const_unregister(st->copy, st->size);
        ld_weights_mem_free(st->copy, st->size);
        close(st->fd);
    }
    free(st->path);
    free(st);
}

const char *ld_safetensors_path(const ld_safetensors *st) { return st->path; }
size_t ld_safetensors_count(const ld_safetensors *st) { return st->count; }
const ld_tensor *ld_safetensors_at(const ld_safetensors *st, size_t i) {
    return i < st->count ? &st->entries[i].t : NULL;
}

const ld_tensor *ld_safetensors_find(const ld_safetensors *st, const char *name) {
    if (!st->nslots) return NULL;
    size_t h = (size_t)hash_name(name) & (st->nslots - 1);
    while (st->slots[h]) {
        st_entry *e = &st->entries[st->slots[h] - 1];
        if (strcmp(e->name, name) == 0) return &e->t;
        h = (h + 1) & (st->nslots - 1);
    }
    return NULL;
}

size_t ld_safetensors_meta_count(const ld_safetensors *st) { return st->meta_count; }
const char *ld_safetensors_meta_key(const ld_safetensors *st, size_t i) {
    return i < st->meta_count ? st->meta_keys[i] : NULL;
}
const char *ld_safetensors_meta_get(const ld_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

/* ---- writer ---- */

#define FILL_CHUNK ((int64_t)1 << 20)

ld_status ld_safetensors_write(ld_ctx *ctx, const char *path, const ld_st_write_entry *entries, size_t n,
                               const char *const *meta) {
    json_t *root = json_object();
    if (!root) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
    ld_status rc = LD_OK;
    if (meta && meta[0]) {
        json_t *m = json_object();
        for (size_t i = 0; meta[i] && meta[i + 1]; i += 2) json_object_set_new(m, meta[i], json_string(meta[i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const ld_st_write_entry *e = &entries[i];
        uint64_t bytes = ld_dtype_size(e->dtype);
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) {
            bytes *= (uint64_t)e->shape[d];
            json_array_append_new(shape, json_integer(e->shape[d]));
        }
        json_t *ent = json_object();
        json_object_set_new(ent, "dtype", json_string(ld_dtype_name(e->dtype)));
        json_object_set_new(ent, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)offset));
        json_array_append_new(offs, json_integer((json_int_t)(offset + bytes)));
        json_object_set_new(ent, "data_offsets", offs);
        if (json_object_get(root, e->name)) {
            json_decref(ent);
            json_decref(root);
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: tensor '%s' written twice", path, e->name);
        }
        json_object_set_new(root, e->name, ent);
        offset += bytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot serialize the header", path);
    size_t tlen = strlen(text);
    size_t hlen = (tlen + 7) & ~(size_t)7; /* pad with spaces so the data starts 8-byte aligned */
    ld_atomic_file af;
    if ((rc = ld_atomic_open(ctx, &af, path)) != LD_OK) {
        free(text);
        return rc;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, af.f) == 8 && fwrite(text, 1, tlen, af.f) == tlen;
    for (size_t i = tlen; ok && i < hlen; i++) ok = fputc(' ', af.f) != EOF;
    free(text);
    void *chunk = NULL;
    for (size_t i = 0; ok && i < n; i++) {
        const ld_st_write_entry *e = &entries[i];
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        size_t esz = ld_dtype_size(e->dtype);
        if (e->data) {
            ok = numel == 0 || fwrite(e->data, esz, (size_t)numel, af.f) == (size_t)numel;
        } else if (e->fill) {
            if (!chunk && !(chunk = malloc((size_t)FILL_CHUNK * 8))) {
                ld_atomic_abort(&af);
                return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
            }
            for (int64_t off = 0; ok && off < numel; off += FILL_CHUNK) {
                int64_t cnt = numel - off < FILL_CHUNK ? numel - off : FILL_CHUNK;
                e->fill(e->fill_user, i, chunk, off, cnt);
                ok = fwrite(chunk, esz, (size_t)cnt, af.f) == (size_t)cnt;
            }
        } else {
            free(chunk);
            ld_atomic_abort(&af);
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has neither data nor fill", path, e->name);
        }
    }
    free(chunk);
    if (!ok) {
        int err = errno;
        ld_atomic_abort(&af);
        return ld_fail(ctx, LD_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return ld_atomic_commit(ctx, &af);
}

void ld_st_builder_init(ld_st_builder *b) { memset(b, 0, sizeof *b); }

ld_status ld_st_builder_add(ld_ctx *ctx, ld_st_builder *b, const char *name, ld_dtype dtype, int ndim,
                            const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > LD_MAX_DIMS) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "tensor '%s': bad rank", name);
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        void *p = realloc(b->entries, cap * sizeof *b->entries);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        b->entries = p;
        b->cap = cap;
    }
    ld_st_write_entry *e = &b->entries[b->count];
    memset(e, 0, sizeof *e);
    size_t bytes = ld_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        bytes *= (size_t)shape[d];
    }
    e->ndim = ndim;
    e->dtype = dtype;
    char *nm = strdup(name);
    void *copy = malloc(bytes ? bytes : 1);
    if (!nm || !copy) {
        free(nm);
        free(copy);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    }
    if (bytes) memcpy(copy, data, bytes);
    e->name = nm;
    e->data = copy;
    b->count++;
    return LD_OK;
}

ld_status ld_st_builder_add_f32(ld_ctx *ctx, ld_st_builder *b, const char *name, int ndim, const int64_t *shape,
                                const float *data) {
    return ld_st_builder_add(ctx, b, name, LD_F32, ndim, shape, data);
}

ld_status ld_st_builder_meta(ld_ctx *ctx, ld_st_builder *b, const char *key, const char *value) {
    char **p = realloc(b->meta, (b->meta_count + 3) * sizeof(char *));
    if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory adding metadata");
    b->meta = p;
    b->meta[b->meta_count] = strdup(key);
    b->meta[b->meta_count + 1] = strdup(value);
    b->meta_count += 2;
    b->meta[b->meta_count] = NULL;
    if (!b->meta[b->meta_count - 1] || !b->meta[b->meta_count - 2])
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory adding metadata");
    return LD_OK;
}

ld_status ld_st_builder_write(ld_ctx *ctx, ld_st_builder *b, const char *path) {
    return ld_safetensors_write(ctx, path, b->entries, b->count, (const char *const *)b->meta);
}

void ld_st_builder_free(ld_st_builder *b) {
    for (size_t i = 0; i < b->count; i++) {
        free((void *)b->entries[i].name);
        free((void *)b->entries[i].data);
    }
    free(b->entries);
    for (size_t i = 0; i < b->meta_count; i++) free(b->meta[i]);
    free(b->meta);
    memset(b, 0, sizeof *b);
}
