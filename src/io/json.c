/* JSON helpers over jansson (see json.h). */
#include "io/json.h"

#include "io/fileio.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LD_JSON_MAX_FILE ((size_t)64 << 20)

ld_status ld_json_parse(ld_ctx *ctx, const char *where, const char *text, size_t len, json_t **out) {
    json_error_t err;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!*out) {
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", where, err.line, err.column,
                       err.text);
    }
    return LD_OK;
}

ld_status ld_json_load_file(ld_ctx *ctx, const char *path, json_t **out) {
    char *text;
    size_t len;
    *out = NULL;
    LD_TRY(ld_read_file(ctx, path, &text, &len, LD_JSON_MAX_FILE));
    ld_status st = ld_json_parse(ctx, path, text, len, out);
    free(text);
    return st;
}

const char *ld_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static const json_t *lookup(const json_t *obj, const char *key) {
    if (!obj || !json_is_object(obj)) return NULL;
    const json_t *v = json_object_get(obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

int ld_json_missing(const json_t *obj, const char *key) { return lookup(obj, key) == NULL; }

static ld_status as_int(ld_ctx *ctx, const char *where, const char *key, const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return LD_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.0e15) {
            *out = (int64_t)d;
            return LD_OK;
        }
    }
    return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be an integer, got %s", where, key, ld_json_type_name(v));
}

ld_status ld_json_int(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t dflt, int64_t *out) {
    const json_t *v = lookup(obj, key);
    if (!v) {
        *out = dflt;
        return LD_OK;
    }
    return as_int(ctx, where, key, v, out);
}

ld_status ld_json_int_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t *out) {
    const json_t *v = lookup(obj, key);
    if (!v) return ld_fail(ctx, LD_ERR_FORMAT, "%s: required field %s is missing", where, key);
    return as_int(ctx, where, key, v, out);
}

static ld_status as_num(ld_ctx *ctx, const char *where, const char *key, const json_t *v, double *out) {
    if (!json_is_number(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a number, got %s", where, key, ld_json_type_name(v));
    *out = json_number_value(v);
    return LD_OK;
}

ld_status ld_json_num(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double dflt, double *out) {
    const json_t *v = lookup(obj, key);
    if (!v) {
        *out = dflt;
        return LD_OK;
    }
    return as_num(ctx, where, key, v, out);
}

ld_status ld_json_num_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double *out) {
    const json_t *v = lookup(obj, key);
    if (!v) return ld_fail(ctx, LD_ERR_FORMAT, "%s: required field %s is missing", where, key);
    return as_num(ctx, where, key, v, out);
}

ld_status ld_json_bool(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int dflt, int *out) {
    const json_t *v = lookup(obj, key);
    if (!v) {
        *out = dflt;
        return LD_OK;
    }
    if (!json_is_boolean(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be true or false, got %s", where, key, ld_json_type_name(v));
    *out = json_is_true(v);
    return LD_OK;
}

ld_status ld_json_str(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char *dflt,
                      const char **out) {
    const json_t *v = lookup(obj, key);
    if (!v) {
        *out = dflt;
        return LD_OK;
    }
    if (!json_is_string(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a string, got %s", where, key, ld_json_type_name(v));
    *out = json_string_value(v);
    return LD_OK;
}

ld_status ld_json_str_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char **out) {
    const json_t *v = lookup(obj, key);
    if (!v) return ld_fail(ctx, LD_ERR_FORMAT, "%s: required field %s is missing", where, key);
    return ld_json_str(ctx, where, obj, key, NULL, out);
}

ld_status ld_json_int_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t *out,
                           int max, int broadcast_n, int *n) {
    const json_t *v = lookup(obj, key);
    *n = 0;
    if (!v) return LD_OK;
    if (!json_is_array(v)) {
        if (broadcast_n > 0 && json_is_number(v)) {
            int64_t x;
            LD_TRY(as_int(ctx, where, key, v, &x));
            if (broadcast_n > max) return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s: too many entries", where, key);
            for (int i = 0; i < broadcast_n; i++) out[i] = x;
            *n = broadcast_n;
            return LD_OK;
        }
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a list of integers, got %s", where, key,
                       ld_json_type_name(v));
    }
    size_t len = json_array_size(v);
    if (len > (size_t)max)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s has %zu entries, at most %d are supported", where, key, len, max);
    for (size_t i = 0; i < len; i++) {
        char item[256];
        snprintf(item, sizeof item, "%s[%zu]", key, i);
        LD_TRY(as_int(ctx, where, item, json_array_get(v, i), &out[i]));
    }
    *n = (int)len;
    return LD_OK;
}

ld_status ld_json_num_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double *out,
                           int max, int *n) {
    const json_t *v = lookup(obj, key);
    *n = 0;
    if (!v) return LD_OK;
    if (!json_is_array(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a list of numbers, got %s", where, key,
                       ld_json_type_name(v));
    size_t len = json_array_size(v);
    if (len > (size_t)max)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s has %zu entries, at most %d are supported", where, key, len, max);
    for (size_t i = 0; i < len; i++) {
        char item[256];
        snprintf(item, sizeof item, "%s[%zu]", key, i);
        LD_TRY(as_num(ctx, where, item, json_array_get(v, i), &out[i]));
    }
    *n = (int)len;
    return LD_OK;
}

ld_status ld_json_str_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char **out,
                           int max, int *n) {
    const json_t *v = lookup(obj, key);
    *n = 0;
    if (!v) return LD_OK;
    if (!json_is_array(v))
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a list of strings, got %s", where, key,
                       ld_json_type_name(v));
    size_t len = json_array_size(v);
    if (len > (size_t)max)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s has %zu entries, at most %d are supported", where, key, len, max);
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_array_get(v, i);
        if (json_is_null(e)) {
            out[i] = NULL;
        } else if (json_is_string(e)) {
            out[i] = json_string_value(e);
        } else {
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s[%zu] must be a string, got %s", where, key, i,
                           ld_json_type_name(e));
        }
    }
    *n = (int)len;
    return LD_OK;
}

ld_status ld_json_write_file(ld_ctx *ctx, const char *path, const json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot serialize the JSON", path);
    ld_status st = ld_write_file(ctx, path, text, strlen(text));
    free(text);
    return st;
}
