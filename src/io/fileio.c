/* File helpers and the output rules (see fileio.h). */
#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
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

/* ---- outputs ---------------------------------------------------------------- */

int ld_output_is_stdout(const char *path) { return !strcmp(path, "-") || !strcmp(path, "/dev/stdout"); }

static const char *kind_name(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

static ld_status check_stdout(ld_ctx *ctx) {
    int fl = fcntl(STDOUT_FILENO, F_GETFL);
    if (fl < 0) return ld_fail(ctx, LD_ERR_IO, "standard output is closed");
    if ((fl & O_ACCMODE) == O_RDONLY) return ld_fail(ctx, LD_ERR_IO, "standard output is not open for writing");
    if (isatty(STDOUT_FILENO))
        return ld_fail(ctx, LD_ERR_IO, "standard output is a terminal: redirect it to a file or a pipe "
                                       "(for example -o - > image.png)");
    return LD_OK;
}

/* The folder part of path into buf ("." when there is none). */
static void folder_of(char *buf, size_t n, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, n, ".");
        return;
    }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= n) len = n - 1;
    memcpy(buf, path, len);
    buf[len] = 0;
}

static ld_status check_writable_folder(ld_ctx *ctx, const char *dir, const char *for_path) {
    struct stat st;
    const char *pre = for_path ? for_path : "", *sep = for_path ? ": " : "";
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) return ld_fail(ctx, LD_ERR_IO, "%s%sthe folder %s does not exist", pre, sep, dir);
        if (errno == ENOTDIR) return ld_fail(ctx, LD_ERR_IO, "%s%s%s is not a folder", pre, sep, dir);
        return ld_fail(ctx, LD_ERR_IO, "%s%sthe folder %s: %s", pre, sep, dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return ld_fail(ctx, LD_ERR_IO, "%s%s%s is not a folder", pre, sep, dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return ld_fail(ctx, LD_ERR_IO, "%s%scannot write into the folder %s: %s", pre, sep, dir, strerror(errno));
    return LD_OK;
}

/* What is at path now (never followed): nothing, or a regular file of this
 * user that it may write. Anything else is an error naming it. */
static ld_status check_target(ld_ctx *ctx, const char *path, int *exists, struct stat *st) {
    *exists = 0;
    if (lstat(path, st) != 0) {
        if (errno == ENOENT) return LD_OK;
        return ld_fail(ctx, LD_ERR_IO, "%s: %s", path, strerror(errno));
    }
    *exists = 1;
    if (!S_ISREG(st->st_mode))
        return ld_fail(ctx, LD_ERR_IO, "%s is %s: leandiff writes only regular files and will not replace it", path,
                       kind_name(st->st_mode));
    if (st->st_uid != geteuid())
        return ld_fail(ctx, LD_ERR_IO, "%s belongs to another user (uid %u): leandiff replaces only its own files",
                       path, (unsigned)st->st_uid);
    if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0)
        return ld_fail(ctx, LD_ERR_IO, "%s is read-only: leandiff will not replace it", path);
    return LD_OK;
}

ld_status ld_output_check(ld_ctx *ctx, const char *path) {
    if (!path || !*path) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "no output file name given");
    if (ld_output_is_stdout(path)) return check_stdout(ctx);
    size_t len = strlen(path);
    if (len >= sizeof(((ld_atomic_file *)0)->final_path))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "output path too long (%zu bytes)", len);
    if (path[len - 1] == '/') return ld_fail(ctx, LD_ERR_IO, "%s names a folder: give a file name", path);
    char dir[4096];
    folder_of(dir, sizeof dir, path);
    LD_TRY(check_writable_folder(ctx, dir, path));
    int exists;
    struct stat st;
    return check_target(ctx, path, &exists, &st);
}

ld_status ld_output_dir(ld_ctx *ctx, const char *path) {
    if (!path || !*path) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "no output folder given");
    char buf[4096];
    if (strlen(path) >= sizeof buf) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "folder path too long");
    snprintf(buf, sizeof buf, "%s", path);
    /* Each parent, then the folder itself. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ld_fail(ctx, LD_ERR_IO, "cannot create the folder %s: %s", buf, strerror(errno));
        *p = c;
        if (!c) break;
    }
    return check_writable_folder(ctx, path, NULL);
}

static ld_status open_output(ld_ctx *ctx, ld_atomic_file *af, const char *path, int no_replace) {
    memset(af, 0, sizeof *af);
    LD_TRY(ld_output_check(ctx, path));
    snprintf(af->final_path, sizeof af->final_path, "%s", path);
    af->no_replace = no_replace;
    if (ld_output_is_stdout(path)) {
        /* A duplicate, so that closing it leaves the process's stdout open. */
        int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        af->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!af->f) {
            if (fd >= 0) close(fd);
            return ld_fail(ctx, LD_ERR_IO, "standard output: %s", strerror(errno));
        }
        af->stream = 1;
        return LD_OK;
    }
    int exists;
    struct stat st;
    LD_TRY(check_target(ctx, path, &exists, &st));
    if (exists && no_replace) return ld_fail(ctx, LD_ERR_IO, "%s already exists", path);
    static atomic_uint counter;
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        int err = errno;
        af->tmp_path[0] = 0;
        return ld_fail(ctx, LD_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    if (exists) (void)fchmod(fd, st.st_mode & 07777); /* the replaced file's permissions */
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        ld_atomic_abort(af);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
    }
    return LD_OK;
}

ld_status ld_atomic_open(ld_ctx *ctx, ld_atomic_file *af, const char *path) { return open_output(ctx, af, path, 0); }

ld_status ld_atomic_open_new(ld_ctx *ctx, ld_atomic_file *af, const char *path) {
    return open_output(ctx, af, path, 1);
}

/* Renames tmp to final only if final does not exist (atomically). Returns 0,
 * or -1 with errno (EEXIST: final exists). */
static int rename_new(const char *tmp, const char *final) {
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
    /* A file system without RENAME_NOREPLACE: link() refuses an existing name too. */
    if (link(tmp, final) != 0) return -1;
    unlink(tmp);
    return 0;
}

ld_status ld_atomic_commit(ld_ctx *ctx, ld_atomic_file *af) {
    if (!af->f) return ld_fail(ctx, LD_ERR_INTERNAL, "%s: file not open", af->final_path);
    int bad = fflush(af->f) != 0 || ferror(af->f);
    if (!bad && !af->stream) bad = fsync(fileno(af->f)) != 0 && errno != EINVAL;
    int err = errno;
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    af->f = NULL;
    if (af->stream)
        return bad ? ld_fail(ctx, LD_ERR_IO, "standard output: write failed: %s", strerror(err)) : LD_OK;
    if (bad) {
        ld_atomic_abort(af);
        return ld_fail(ctx, LD_ERR_IO, "%s: write failed: %s", af->final_path, strerror(err));
    }
    /* The target is checked again: it may have changed during a long run. */
    for (int attempt = 0; attempt < 3; attempt++) {
        int exists;
        struct stat st;
        ld_status st_check = check_target(ctx, af->final_path, &exists, &st);
        if (st_check == LD_OK && exists && af->no_replace)
            st_check = ld_fail(ctx, LD_ERR_IO, "%s already exists", af->final_path);
        if (st_check != LD_OK) {
            ld_atomic_abort(af);
            return st_check;
        }
        int r = exists ? rename(af->tmp_path, af->final_path) : rename_new(af->tmp_path, af->final_path);
        if (r == 0) {
            af->tmp_path[0] = 0;
            return LD_OK;
        }
        if (errno != EEXIST) break; /* created meanwhile: look at it again */
    }
    err = errno;
    ld_atomic_abort(af);
    return ld_fail(ctx, LD_ERR_IO, "%s: cannot rename into place: %s", af->final_path, strerror(err));
}

void ld_atomic_abort(ld_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (!af->stream && af->tmp_path[0]) remove(af->tmp_path);
    af->tmp_path[0] = 0;
}

ld_status ld_write_file(ld_ctx *ctx, const char *path, const void *data, size_t len) {
    ld_atomic_file af;
    LD_TRY(ld_atomic_open(ctx, &af, path));
    if (len && fwrite(data, 1, len, af.f) != len) {
        int err = errno;
        ld_atomic_abort(&af);
        return ld_fail(ctx, LD_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return ld_atomic_commit(ctx, &af);
}
