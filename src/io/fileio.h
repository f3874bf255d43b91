/* Small file helpers: whole-file reads, path joins, and the one way leandiff
 * writes a file (every PNG, --dump, safetensors, the server's --outputs,
 * training checkpoints):
 *
 *     LD_TRY(ld_output_check(ctx, path));        // before any long work: fails fast, naming path
 *     ld_atomic_file af;
 *     LD_TRY(ld_atomic_open(ctx, &af, path));    // temp file next to path (or stdout)
 *     if (fwrite(data, 1, n, af.f) != n) { ld_atomic_abort(&af); return ld_fail(...); }
 *     LD_TRY(ld_atomic_commit(ctx, &af));        // fsync + rename into place
 *
 * The rules (the same for every caller):
 *  - "-" and "/dev/stdout" stream to standard output (never renamed; refused
 *    when stdout is closed or a terminal).
 *  - Anything else is written to "<path>.tmp.<pid>.<n>" in the same folder,
 *    created exclusively (O_EXCL, O_NOFOLLOW), then renamed over path. Only
 *    a regular file that belongs to this user and is writable is ever
 *    replaced (it keeps its permission bits); a symbolic link, a folder, a
 *    FIFO, a device or a socket at path is an error naming it, checked when
 *    opening and again just before the rename. Nothing is followed.
 *  - A missing folder, a path that is not a folder, or a folder we cannot
 *    write into is an error naming the folder.
 *  - ld_atomic_open_new() never replaces anything: the commit fails if path
 *    exists by then (the server's --outputs; names it makes itself).
 *  - Nothing half-written is ever visible under path: a failed write or an
 *    abort removes the temp file.
 * Training checkpoints: write each file with ld_atomic_open / commit (the
 * safetensors writer, ld_st_write, already does); a checkpoint folder made of
 * several files gets its folder from ld_output_dir() first.
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

/* 1 for "-" and "/dev/stdout": the output streams to standard output. */
int ld_output_is_stdout(const char *path);
/* Could path be written by ld_atomic_open + commit? Checks everything the
 * rules above say, creates nothing. */
ld_status ld_output_check(ld_ctx *ctx, const char *path);
/* A folder to write outputs into: created with its missing parents, then
 * checked to be a folder this process can write into. */
ld_status ld_output_dir(ld_ctx *ctx, const char *path);

typedef struct {
    FILE *f;
    int stream;     /* writing to stdout */
    int no_replace; /* ld_atomic_open_new */
    char final_path[4096];
    char tmp_path[4096 + 48];
} ld_atomic_file;

ld_status ld_atomic_open(ld_ctx *ctx, ld_atomic_file *af, const char *path);
ld_status ld_atomic_open_new(ld_ctx *ctx, ld_atomic_file *af, const char *path);
/* Flushes, fsyncs and renames into place (stdout: flushes); on failure
 * removes the temp file. */
ld_status ld_atomic_commit(ld_ctx *ctx, ld_atomic_file *af);
/* Closes and removes the temp file (stdout: what was written stays written). */
void ld_atomic_abort(ld_atomic_file *af);

/* A whole file from memory, by the rules above. */
ld_status ld_write_file(ld_ctx *ctx, const char *path, const void *data, size_t len);

#endif
