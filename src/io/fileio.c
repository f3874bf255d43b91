/* File helpers (see fileio.h). */
#include "io/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ld_status ld_read_file(ld_ctx *ctx, const char *path, char **data, size_t *len, size_t max_len) {
    *data = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ld_fail(ctx, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ld_fail(ctx, LD_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > max_len) {
        fclose(f);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_len);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return ld_fail(ctx, LD_ERR_IO, "%s: read failed", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return LD_OK;
}

int ld_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ld_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

ld_status ld_path_join(ld_ctx *ctx, char *buf, size_t n, const char *a, const char *b) {
    size_t la = strlen(a);
    int sep = la > 0 && a[la - 1] != '/';
    int w = snprintf(buf, n, "%s%s%s", a, sep ? "/" : "", b);
    if (w < 0 || (size_t)w >= n) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "path too long: %s/%s", a, b);
    return LD_OK;
}

const char *ld_path_basename(char *buf, size_t n, const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t m = len - start;
    if (m >= n) m = n - 1;
    memcpy(buf, path + start, m);
    buf[m] = 0;
    return buf;
}

ld_status ld_atomic_open(ld_ctx *ctx, ld_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->final_path) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "output path too long");
    snprintf(af->final_path, sizeof af->final_path, "%s", path);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) return ld_fail(ctx, LD_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return LD_OK;
}

ld_status ld_atomic_commit(ld_ctx *ctx, ld_atomic_file *af) {
    if (!af->f) return ld_fail(ctx, LD_ERR_INTERNAL, "%s: file not open", af->final_path);
    int bad = fflush(af->f) != 0 || ferror(af->f);
    if (!bad) bad = fsync(fileno(af->f)) != 0 && errno != EINVAL;
    int err = errno;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        remove(af->tmp_path);
        return ld_fail(ctx, LD_ERR_IO, "%s: write failed: %s", af->final_path, strerror(err));
    }
    if (rename(af->tmp_path, af->final_path) != 0) {
        err = errno;
        remove(af->tmp_path);
        return ld_fail(ctx, LD_ERR_IO, "%s: cannot rename into place: %s", af->final_path, strerror(err));
    }
    return LD_OK;
}

void ld_atomic_abort(ld_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp_path[0]) remove(af->tmp_path);
}
