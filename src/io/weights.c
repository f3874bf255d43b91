/* Weight sources: folders, files, shards, aliases and the init-random recorder
 * (see weights.h). */
#include "io/weights.h"

#include "base/mix.h"
#include "io/fileio.h"
#include "io/json.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char *target;
    int64_t row_begin, row_end;
    ld_tensor view;
    int resolved;
} alias_entry;

struct ld_weights {
    char where[4096];
    ld_safetensors **files;
    size_t nfiles;
    alias_entry *aliases;
    size_t naliases, alias_cap;
    int recorder;
    ld_tensor *recorded; /* recorder: names strdup'ed into t.name */
    size_t nrec, rec_cap;
    const ld_tensor *mem; /* memory source: the caller's tensors (views) */
    size_t nmem;
    ld_tensor *over;      /* owned f32 replacements (LoRA-patched layers), looked up first */
    size_t nover;
};

static ld_status add_file(ld_ctx *ctx, ld_weights *ws, const char *path) {
    ld_safetensors *st;
    LD_TRY(ld_safetensors_open(ctx, path, &st));
    ld_safetensors **p = realloc(ws->files, (ws->nfiles + 1) * sizeof *p);
    if (!p) {
        ld_safetensors_close(st);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    ws->files = p;
    ws->files[ws->nfiles++] = st;
    return LD_OK;
}

static ld_status open_index(ld_ctx *ctx, ld_weights *ws, const char *index_path) {
    json_t *root;
    LD_TRY(ld_json_load_file(ctx, index_path, &root));
    ld_status rc = LD_OK;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: weight_map must be an object", index_path);
        goto out;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    /* Open each distinct shard once. */
    const char *name;
    json_t *val;
    json_object_foreach(map, name, val) {
        if (!json_is_string(val)) {
            rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: weight_map entry '%s' must name a file", index_path, name);
            goto out;
        }
        const char *file = json_string_value(val);
        if (strchr(file, '/') || strcmp(file, "..") == 0) {
            rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: shard name '%s' must be a plain file name", index_path, file);
            goto out;
        }
        char path[4096 + 256];
        if ((rc = ld_path_join(ctx, path, sizeof path, dir, file)) != LD_OK) goto out;
        int have = 0;
        for (size_t i = 0; i < ws->nfiles && !have; i++) have = strcmp(ld_safetensors_path(ws->files[i]), path) == 0;
        if (!have && (rc = add_file(ctx, ws, path)) != LD_OK) goto out;
        const ld_tensor *t = NULL;
        for (size_t i = 0; i < ws->nfiles && !t; i++)
            if (strcmp(ld_safetensors_path(ws->files[i]), path) == 0) t = ld_safetensors_find(ws->files[i], name);
        if (!t) {
            rc = ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s' is mapped to %s but that shard does not contain it",
                         index_path, name, file);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

static ld_status new_ws(ld_ctx *ctx, ld_weights **out, const char *where) {
    *out = calloc(1, sizeof **out);
    if (!*out) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    snprintf((*out)->where, sizeof (*out)->where, "%s", where);
    return LD_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

ld_status ld_weights_open_file(ld_ctx *ctx, const char *path, ld_weights **out) {
    LD_TRY(new_ws(ctx, out, path));
    ld_status rc = ends_with(path, ".index.json") ? open_index(ctx, *out, path) : add_file(ctx, *out, path);
    if (rc != LD_OK) {
        ld_weights_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Finds "<base>[.variant].safetensors" or its sharded index in dir. */
static int find_candidate(const char *dir, const char *base, const char *variant, char *path, size_t n) {
    const char *exts[] = {"safetensors", "safetensors.index.json"};
    for (int e = 0; e < 2; e++) {
        if (variant)
            snprintf(path, n, "%s/%s.%s.%s", dir, base, variant, exts[e]);
        else
            snprintf(path, n, "%s/%s.%s", dir, base, exts[e]);
        if (ld_file_exists(path)) return 1;
    }
    return 0;
}

ld_status ld_weights_open_dir(ld_ctx *ctx, const char *dir, const char *variant, ld_weights **out) {
    *out = NULL;
    if (!ld_dir_exists(dir)) return ld_fail(ctx, LD_ERR_MODEL, "%s: component folder not found", dir);
    const char *bases[] = {"diffusion_pytorch_model", "model"};
    const char *variants[] = {variant, NULL, "fp16", "bf16"};
    char path[4096 + 128];
    for (int v = 0; v < 4; v++) {
        if (v > 0 && variants[v] && variant && strcmp(variants[v], variant) == 0) continue;
        for (int b = 0; b < 2; b++) {
            if (find_candidate(dir, bases[b], variants[v], path, sizeof path)) {
                if (v > 0 && variant) ld_log_info("%s: no '%s' variant, using %s", dir, variant, path);
                return ld_weights_open_file(ctx, path, out);
            }
        }
    }
    /* Nothing usable: say why. */
    DIR *d = opendir(dir);
    int has_bin = 0, has_other = 0;
    char other[256] = "";
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (ends_with(e->d_name, ".bin") || ends_with(e->d_name, ".ckpt") || ends_with(e->d_name, ".pt")) has_bin = 1;
            if (ends_with(e->d_name, ".safetensors") && !has_other) {
                has_other = 1;
                snprintf(other, sizeof other, "%s", e->d_name);
            }
        }
        closedir(d);
    }
    if (has_bin)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "%s: only PyTorch pickle weights (.bin/.ckpt/.pt) found; leandiff reads safetensors only "
                       "(pickle files can run arbitrary code and cannot be mmapped). Download the .safetensors files "
                       "of this repository or convert them",
                       dir);
    if (has_other) return ld_weights_open_file(ctx, (snprintf(path, sizeof path, "%s/%s", dir, other), path), out);
    return ld_fail(ctx, LD_ERR_MODEL, "%s: no weights file (expected diffusion_pytorch_model.safetensors or model.safetensors)",
                   dir);
}

ld_status ld_weights_new_recorder(ld_ctx *ctx, ld_weights **out) {
    LD_TRY(new_ws(ctx, out, "(init-random)"));
    (*out)->recorder = 1;
    return LD_OK;
}

ld_status ld_weights_new_memory(ld_ctx *ctx, const char *where, const ld_tensor *tensors, size_t n,
                                ld_weights **out) {
    LD_TRY(new_ws(ctx, out, where));
    (*out)->mem = tensors;
    (*out)->nmem = n;
    return LD_OK;
}

void ld_weights_free(ld_weights *ws) {
    if (!ws) return;
    for (size_t i = 0; i < ws->nfiles; i++) ld_safetensors_close(ws->files[i]);
    free(ws->files);
    for (size_t i = 0; i < ws->naliases; i++) {
        free(ws->aliases[i].name);
        free(ws->aliases[i].target);
    }
    free(ws->aliases);
    for (size_t i = 0; i < ws->nover; i++) {
        free((char *)ws->over[i].name);
        free(ws->over[i].data);
    }
    free(ws->over);
    for (size_t i = 0; i < ws->nrec; i++) free((char *)ws->recorded[i].name);
    free(ws->recorded);
    free(ws);
}

int ld_weights_is_recorder(const ld_weights *ws) { return ws->recorder; }
const char *ld_weights_where(const ld_weights *ws) { return ws->where; }
size_t ld_weights_file_count(const ld_weights *ws) { return ws->nfiles; }
const ld_safetensors *ld_weights_file(const ld_weights *ws, size_t i) { return i < ws->nfiles ? ws->files[i] : NULL; }
size_t ld_weights_recorded_count(const ld_weights *ws) { return ws->nrec; }
const ld_tensor *ld_weights_recorded(const ld_weights *ws, size_t i) { return i < ws->nrec ? &ws->recorded[i] : NULL; }

static const ld_tensor *find_file_tensor(const ld_weights *ws, const char *name, const char **file) {
    for (size_t i = 0; i < ws->nfiles; i++) {
        const ld_tensor *t = ld_safetensors_find(ws->files[i], name);
        if (t) {
            if (file) *file = ld_safetensors_path(ws->files[i]);
            return t;
        }
    }
    return NULL;
}

static const ld_tensor *find_any(const ld_weights *ws, const char *name, const char **file) {
    for (size_t i = 0; i < ws->nover; i++)
        if (strcmp(ws->over[i].name, name) == 0) {
            find_file_tensor(ws, name, file);
            return &ws->over[i];
        }
    const ld_tensor *t = find_file_tensor(ws, name, file);
    if (t) return t;
    for (size_t i = 0; i < ws->nmem; i++)
        if (strcmp(ws->mem[i].name, name) == 0) return &ws->mem[i];
    for (size_t i = 0; i < ws->naliases; i++)
        if (ws->aliases[i].resolved && strcmp(ws->aliases[i].name, name) == 0) {
            find_file_tensor(ws, ws->aliases[i].target, file);
            return &ws->aliases[i].view;
        }
    return NULL;
}

const ld_tensor *ld_weights_find(const ld_weights *ws, const char *name) { return find_any(ws, name, NULL); }

int ld_weights_has(const ld_weights *ws, const char *fmt, ...) {
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return find_any(ws, name, NULL) != NULL;
}

ld_status ld_weights_override_f32(ld_ctx *ctx, ld_weights *ws, const char *name, float **out) {
    const ld_tensor *t = find_any(ws, name, NULL);
    if (!t) return ld_fail(ctx, LD_ERR_MODEL, "%s: tensor '%s' is missing", ws->where, name);
    for (size_t i = 0; i < ws->nover; i++)
        if (t == &ws->over[i]) { /* already a copy */
            *out = t->data;
            return LD_OK;
        }
    const int64_t n = ld_tensor_numel(t);
    ld_tensor *p = realloc(ws->over, (ws->nover + 1) * sizeof *p);
    if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    ws->over = p;
    ld_tensor *o = &ws->over[ws->nover];
    *o = *t;
    o->dtype = LD_F32;
    o->owned = 0;
    o->data = malloc(sizeof(float) * (size_t)(n ? n : 1));
    o->name = strdup(name);
    if (!o->data || !o->name) {
        free(o->data);
        free((char *)o->name);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory copying '%s'", name);
    }
    ld_convert_to_f32(o->data, t->data, t->dtype, 0, n);
    ws->nover++;
    *out = o->data;
    return LD_OK;
}

ld_status ld_weights_alias(ld_ctx *ctx, ld_weights *ws, const char *alias, const char *target, int64_t row_begin,
                           int64_t row_end) {
    const ld_tensor *t = find_file_tensor(ws, target, NULL);
    if (!t) return ld_fail(ctx, LD_ERR_MODEL, "%s: alias target '%s' not found", ws->where, target);
    if (t->ndim < 1 && (row_begin != 0 || row_end >= 0))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: cannot slice scalar '%s'", ws->where, target);
    int64_t rows = t->ndim ? t->shape[0] : 1;
    if (row_end < 0) row_end = rows;
    if (row_begin < 0 || row_begin > row_end || row_end > rows)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: rows [%lld, %lld) out of range for '%s' with %lld rows", ws->where,
                       (long long)row_begin, (long long)row_end, target, (long long)rows);
    if (ws->naliases == ws->alias_cap) {
        size_t cap = ws->alias_cap ? ws->alias_cap * 2 : 64;
        alias_entry *p = realloc(ws->aliases, cap * sizeof *p);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        ws->aliases = p;
        ws->alias_cap = cap;
    }
    alias_entry *a = &ws->aliases[ws->naliases];
    memset(a, 0, sizeof *a);
    a->name = strdup(alias);
    a->target = strdup(target);
    if (!a->name || !a->target) {
        free(a->name);
        free(a->target);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    a->row_begin = row_begin;
    a->row_end = row_end;
    a->view = *t;
    a->view.owned = 0;
    a->view.name = a->name;
    if (t->ndim) {
        size_t row_bytes = ld_dtype_size(t->dtype);
        for (int d = 1; d < t->ndim; d++) row_bytes *= (size_t)t->shape[d];
        a->view.shape[0] = row_end - row_begin;
        a->view.data = (char *)t->data + (size_t)row_begin * row_bytes;
    }
    a->resolved = 1;
    ws->naliases++;
    return LD_OK;
}

static ld_status record(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                        const char *name) {
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return ld_fail(ctx, LD_ERR_INTERNAL, "init-random: tensor '%s' requested without a full shape", name);
    for (size_t i = 0; i < ws->nrec; i++)
        if (strcmp(ws->recorded[i].name, name) == 0) {
            if (!ld_shape_equal(ws->recorded[i].ndim, ws->recorded[i].shape, ndim, shape))
                return ld_fail(ctx, LD_ERR_INTERNAL, "init-random: tensor '%s' requested with two shapes", name);
            *out = ws->recorded[i];
            return LD_OK;
        }
    if (ws->nrec == ws->rec_cap) {
        size_t cap = ws->rec_cap ? ws->rec_cap * 2 : 256;
        ld_tensor *p = realloc(ws->recorded, cap * sizeof *p);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        ws->recorded = p;
        ws->rec_cap = cap;
    }
    ld_tensor *t = &ws->recorded[ws->nrec];
    memset(t, 0, sizeof *t);
    t->dtype = LD_F32;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->name = strdup(name);
    if (!t->name) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    ws->nrec++;
    *out = *t;
    return LD_OK;
}

static ld_status get_impl(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                          const char *name, int optional) {
    memset(out, 0, sizeof *out);
    if (ws->recorder) return optional ? LD_OK : record(ctx, ws, out, ndim, shape, name);
    const char *file = ws->where;
    const ld_tensor *t = find_any(ws, name, &file);
    if (!t) {
        if (optional) return LD_OK;
        return ld_fail(ctx, LD_ERR_MODEL, "%s: tensor '%s' is missing", file, name);
    }
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char a[128], b[128];
        return ld_fail(ctx, LD_ERR_MODEL, "%s: tensor '%s' has shape %s but the config implies %s", file, name,
                       ld_shape_str(a, sizeof a, t->ndim, t->shape), ld_shape_str(b, sizeof b, ndim, shape));
    }
    if (t->dtype != LD_F32 && t->dtype != LD_F16 && t->dtype != LD_BF16)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file,
                       name, ld_dtype_name(t->dtype));
    *out = *t;
    out->owned = 0;
    return LD_OK;
}

ld_status ld_weights_get(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                         const char *fmt, ...) {
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return get_impl(ctx, ws, out, ndim, shape, name, 0);
}

ld_status ld_weights_get_opt(ld_ctx *ctx, ld_weights *ws, ld_tensor *out, int ndim, const int64_t *shape,
                             const char *fmt, ...) {
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return get_impl(ctx, ws, out, ndim, shape, name, 1);
}

/* ---- random weights ---- */

typedef struct {
    const ld_weights *rec;
    ld_dtype dtype;
    uint64_t seed;
} rand_fill;

static int name_has(const char *name, const char *s) { return strstr(name, s) != NULL; }

/* Picks (constant, uniform half-width) for a tensor by its role. */
static void init_rule(const ld_tensor *t, float *constant, float *width) {
    const char *n = t->name;
    *constant = 0.0f;
    *width = 0.0f;
    if (name_has(n, "running_var")) { *constant = 1.0f; return; }
    if (name_has(n, "running_mean") || name_has(n, "num_batches")) return;
    if (ends_with(n, "bias") || ends_with(n, ".beta")) { *width = 0.02f; return; }
    if (ends_with(n, ".gamma") || ends_with(n, "gammas")) { *width = 0.1f; return; }
    if (t->ndim <= 1) { *constant = 1.0f; return; } /* norm scales */
    int64_t fan_in = 1;
    for (int d = 1; d < t->ndim; d++) fan_in *= t->shape[d];
    if (fan_in < 1) fan_in = 1;
    *width = sqrtf(3.0f / (float)fan_in);
}

static void fill_random(void *user, size_t index, void *dst, int64_t offset, int64_t count) {
    rand_fill *rf = user;
    const ld_tensor *t = &rf->rec->recorded[index];
    float c, w;
    init_rule(t, &c, &w);
    uint64_t base = ld_mix64(rf->seed ^ ld_mix64(index + 1));
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) {
        uint64_t r = ld_mix64(base + (uint64_t)(offset + i));
        float u = (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        float v = c + w * u;
        switch (rf->dtype) {
        case LD_F16: ((uint16_t *)dst)[i] = ld_f32_to_f16(v); break;
        case LD_BF16: ((uint16_t *)dst)[i] = ld_f32_to_bf16(v); break;
        default: ((float *)dst)[i] = v; break;
        }
    }
}

ld_status ld_weights_write_random(ld_ctx *ctx, const ld_weights *rec, const char *path, ld_dtype dtype,
                                  uint64_t seed) {
    if (dtype != LD_F32 && dtype != LD_F16 && dtype != LD_BF16)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "random weights must be f32, f16 or bf16");
    ld_st_write_entry *ents = calloc(rec->nrec ? rec->nrec : 1, sizeof *ents);
    if (!ents) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    rand_fill rf = {rec, dtype, seed};
    for (size_t i = 0; i < rec->nrec; i++) {
        const ld_tensor *t = &rec->recorded[i];
        ents[i].name = t->name;
        ents[i].dtype = dtype;
        ents[i].ndim = t->ndim;
        memcpy(ents[i].shape, t->shape, sizeof t->shape);
        ents[i].fill = fill_random;
        ents[i].fill_user = &rf;
    }
    const char *meta[] = {"format", "pt", "generator", "leandiff init-random", NULL};
    ld_status rc = ld_safetensors_write(ctx, path, ents, rec->nrec, meta);
    free(ents);
    return rc;
}
