/* Small file helpers: whole-file reads, path joins, atomic writes
 * (write to "<path>.tmp.<pid>", then rename, so no half-written output is
 * ever visible under the final name).
 */
#ifndef LD_IO_FILEIO_H
#define LD_IO_FILEIO_H

#include "base/status.h"
#include <stdio.h>

/* Reads a whole file (NUL-terminated for convenience); free() the result. */
ld_status ld_read_file(ld_ctx *ctx, const char *path, char **data, size_t *len, size_t max_len);
int ld_file_exists(const char *path);
int ld_dir_exists(const char *path);
/* Joins with '/' into buf; fails if it does not fit. */
ld_status ld_path_join(ld_ctx *ctx, char *buf, size_t n, const char *a, const char *b);
/* Last path component without trailing slashes into buf. */
const char *ld_path_basename(char *buf, size_t n, const char *path);

typedef struct {
    FILE *f;
    char final_path[4096];
    char tmp_path[4096 + 32];
} ld_atomic_file;

ld_status ld_atomic_open(ld_ctx *ctx, ld_atomic_file *af, const char *path);
/* Flushes, fsyncs and renames into place; on failure removes the temp file. */
ld_status ld_atomic_commit(ld_ctx *ctx, ld_atomic_file *af);
/* Closes and removes the temp file. */
void ld_atomic_abort(ld_atomic_file *af);

#endif
