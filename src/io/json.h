/* JSON reading on top of jansson, with errors that name the file and field.
 *
 *     json_t *cfg;
 *     LD_TRY(ld_json_load_file(ctx, "unet/config.json", &cfg));
 *     int64_t ch;
 *     LD_TRY(ld_json_int(ctx, "unet/config.json", cfg, "in_channels", 4, &ch));
 *     json_decref(cfg);
 *
 * Missing keys (and JSON null) give the default; a present value of the wrong
 * type is an error "<where>: <key> must be an integer, got string".
 * The *_req variants fail when the key is missing.
 * Writing: ld_json_write_file(ctx, "out/config.json", cfg).
 */
#ifndef LD_IO_JSON_H
#define LD_IO_JSON_H

#include "base/status.h"
#include <jansson.h>
#include <stdint.h>

/* Writes j as indented JSON (keys in their order) through ld_write_file
 * (io/fileio.h: temp file + rename, never over anything but a regular file). */
ld_status ld_json_write_file(ld_ctx *ctx, const char *path, const json_t *j);

/* Strict parse: duplicate keys rejected, invalid UTF-8 rejected. */
ld_status ld_json_parse(ld_ctx *ctx, const char *where, const char *text, size_t len, json_t **out);
ld_status ld_json_load_file(ld_ctx *ctx, const char *path, json_t **out);

const char *ld_json_type_name(const json_t *v);
/* 1 if key is absent or null. */
int ld_json_missing(const json_t *obj, const char *key);

ld_status ld_json_int(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t dflt, int64_t *out);
ld_status ld_json_int_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t *out);
ld_status ld_json_num(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double dflt, double *out);
ld_status ld_json_num_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double *out);
ld_status ld_json_bool(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int dflt, int *out);
/* *out points into obj (valid while obj lives); dflt may be NULL. */
ld_status ld_json_str(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char *dflt,
                      const char **out);
ld_status ld_json_str_req(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char **out);
/* Integer list of up to max entries. A scalar is accepted when broadcast_n > 0
 * and repeated broadcast_n times. Missing: *n = 0 (caller decides). */
ld_status ld_json_int_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, int64_t *out,
                           int max, int broadcast_n, int *n);
ld_status ld_json_num_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, double *out,
                           int max, int *n);
/* String list; pointers into obj; JSON null entries give NULL. */
ld_status ld_json_str_list(ld_ctx *ctx, const char *where, const json_t *obj, const char *key, const char **out,
                           int max, int *n);

#endif
