/* The output rules of src/io/fileio.h: what may be written where, checked
 * before any work (ld_output_check), when opening, and again just before the
 * rename; streaming to stdout; no-replace commits; folders made for outputs.
 * Targets are FIFOs, folders and links this test makes itself (never a real
 * device). */
#include "test_util.h"

#include "io/fileio.h"
#include "io/png.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static const char *at(const char *name) {
    static char buf[4][4200];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

static int count_tmp(void) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '\\.tmp\\.' > '%s/.count'", dir, dir);
    if (system(cmd) < 0) return -1;
    FILE *f = fopen(at(".count"), "r");
    int n = -1;
    if (f && fscanf(f, "%d", &n) != 1) n = -1;
    if (f) fclose(f);
    return n;
}

static char *slurp(const char *path) {
    char *d = NULL;
    size_t n;
    ld_ctx *ctx = ld_ctx_new();
    ld_read_file(ctx, path, &d, &n, 1 << 20);
    ld_ctx_free(ctx);
    return d;
}

/* The call fails and its message holds want. */
#define REFUSED(ctx, call, want)                                                                              \
    do {                                                                                                      \
        ld_ctx_clear_error(ctx);                                                                              \
        ld_status st_ = (call);                                                                               \
        CHECK(st_ != LD_OK && strstr(ld_ctx_error(ctx), want), "%s: status %d, message '%s', want '%s'", #call, \
              (int)st_, ld_ctx_error(ctx), want);                                                             \
        if (st_ != LD_OK) printf("ok   refused: %s\n", ld_ctx_error(ctx));                                    \
    } while (0)

static ld_status write_text(ld_ctx *ctx, const char *path, const char *text, int no_replace) {
    ld_atomic_file af;
    LD_TRY(no_replace ? ld_atomic_open_new(ctx, &af, path) : ld_atomic_open(ctx, &af, path));
    fputs(text, af.f);
    return ld_atomic_commit(ctx, &af);
}

static void test_refusals(ld_ctx *ctx) {
    CHECK(mkfifo(at("fifo"), 0644) == 0, "mkfifo: %s", strerror(errno));
    CHECK(mkdir(at("sub"), 0755) == 0, "mkdir");
    CHECK(symlink(at("fifo"), at("to-fifo")) == 0, "symlink");
    CHECK(write_text(ctx, at("plain.txt"), "x", 0) == LD_OK, "plain file: %s", ld_ctx_error(ctx));
    char want[4300];
    snprintf(want, sizeof want, "%s is a FIFO (named pipe)", at("fifo"));
    REFUSED(ctx, ld_output_check(ctx, at("fifo")), want);
    snprintf(want, sizeof want, "%s is a folder", at("sub"));
    REFUSED(ctx, ld_output_check(ctx, at("sub")), want);
    snprintf(want, sizeof want, "%s is a symbolic link", at("to-fifo"));
    REFUSED(ctx, ld_output_check(ctx, at("to-fifo")), want);
    snprintf(want, sizeof want, "%s is not a folder", at("plain.txt"));
    REFUSED(ctx, ld_output_check(ctx, at("plain.txt/x.png")), want);
    snprintf(want, sizeof want, "the folder %s does not exist", at("missing"));
    REFUSED(ctx, ld_output_check(ctx, at("missing/x.png")), want);
    REFUSED(ctx, ld_output_check(ctx, ""), "no output file name");
    /* The PNG writer follows the same rules: a FIFO is refused, never opened (no hang). */
    uint8_t rgb[12] = {0};
    snprintf(want, sizeof want, "%s is a FIFO", at("fifo"));
    REFUSED(ctx, ld_png_write(ctx, at("fifo"), rgb, 2, 2, NULL), want);
    struct stat st;
    CHECK(lstat(at("fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
    CHECK(ld_output_check(ctx, at("new.png")) == LD_OK, "a new name is fine: %s", ld_ctx_error(ctx));
    CHECK(ld_output_check(ctx, at("plain.txt")) == LD_OK, "a regular file of ours is fine: %s", ld_ctx_error(ctx));
}

static void test_write_and_replace(ld_ctx *ctx) {
    CHECK(write_text(ctx, at("a.txt"), "first", 0) == LD_OK, "write: %s", ld_ctx_error(ctx));
    char *d = slurp(at("a.txt"));
    CHECK(d && !strcmp(d, "first"), "content: %s", d ? d : "(none)");
    free(d);
    CHECK(chmod(at("a.txt"), 0600) == 0, "chmod");
    CHECK(write_text(ctx, at("a.txt"), "second", 0) == LD_OK, "replace: %s", ld_ctx_error(ctx));
    d = slurp(at("a.txt"));
    CHECK(d && !strcmp(d, "second"), "replaced content: %s", d ? d : "(none)");
    free(d);
    struct stat st;
    CHECK(stat(at("a.txt"), &st) == 0 && (st.st_mode & 0777) == 0600, "mode kept: %o", st.st_mode & 0777);
    /* abort leaves nothing */
    ld_atomic_file af;
    CHECK(ld_atomic_open(ctx, &af, at("aborted.txt")) == LD_OK, "open");
    fputs("half", af.f);
    ld_atomic_abort(&af);
    CHECK(access(at("aborted.txt"), F_OK) != 0, "aborted file absent");
    CHECK(count_tmp() == 0, "no temp files left: %d", count_tmp());
}

/* Between open and commit, what is at the path changes: checked again. */
static void test_commit_recheck(ld_ctx *ctx) {
    ld_atomic_file af;
    CHECK(ld_atomic_open(ctx, &af, at("late-fifo")) == LD_OK, "open");
    fputs("data", af.f);
    CHECK(mkfifo(at("late-fifo"), 0644) == 0, "mkfifo");
    char want[4300];
    snprintf(want, sizeof want, "%s is a FIFO", at("late-fifo"));
    REFUSED(ctx, ld_atomic_commit(ctx, &af), want);
    struct stat st;
    CHECK(lstat(at("late-fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was not replaced");

    CHECK(write_text(ctx, at("victim.txt"), "victim", 0) == LD_OK, "victim");
    CHECK(ld_atomic_open(ctx, &af, at("late-link")) == LD_OK, "open");
    fputs("data", af.f);
    CHECK(symlink(at("victim.txt"), at("late-link")) == 0, "symlink");
    snprintf(want, sizeof want, "%s is a symbolic link", at("late-link"));
    REFUSED(ctx, ld_atomic_commit(ctx, &af), want);
    char *d = slurp(at("victim.txt"));
    CHECK(d && !strcmp(d, "victim"), "the link's target untouched: %s", d ? d : "(none)");
    free(d);
    CHECK(lstat(at("late-link"), &st) == 0 && S_ISLNK(st.st_mode), "the link is still a link");
    CHECK(count_tmp() == 0, "no temp files left after refused commits: %d", count_tmp());
}

static void test_no_replace(ld_ctx *ctx) {
    CHECK(write_text(ctx, at("once.txt"), "one", 1) == LD_OK, "new file: %s", ld_ctx_error(ctx));
    char want[4300];
    snprintf(want, sizeof want, "%s already exists", at("once.txt"));
    REFUSED(ctx, write_text(ctx, at("once.txt"), "two", 1), want);
    /* created by someone else while we wrote */
    ld_atomic_file af;
    CHECK(ld_atomic_open_new(ctx, &af, at("race.txt")) == LD_OK, "open_new");
    fputs("ours", af.f);
    CHECK(write_text(ctx, at("race.txt"), "theirs", 0) == LD_OK, "the other writer");
    snprintf(want, sizeof want, "%s already exists", at("race.txt"));
    REFUSED(ctx, ld_atomic_commit(ctx, &af), want);
    char *d = slurp(at("race.txt"));
    CHECK(d && !strcmp(d, "theirs"), "the other file kept: %s", d ? d : "(none)");
    free(d);
    CHECK(count_tmp() == 0, "no temp files left: %d", count_tmp());
}

/* "-" and /dev/stdout write into fd 1, here a pipe. */
static void test_stdout(ld_ctx *ctx) {
    fflush(stdout);
    int saved = dup(1), p[2];
    CHECK(saved >= 0 && pipe(p) == 0, "pipe");
    dup2(p[1], 1);
    close(p[1]);
    ld_status a = write_text(ctx, "-", "streamed ", 0);
    /* Only when it is known to stream: a build that renamed over /dev/stdout
     * would replace the system's link (as root). */
    int dev_stdout = ld_output_is_stdout("/dev/stdout") && ld_output_is_stdout("-");
    ld_status b = dev_stdout ? write_text(ctx, "/dev/stdout", "twice", 0) : LD_ERR_INTERNAL;
    dup2(saved, 1);
    close(saved);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    CHECK(dev_stdout, "/dev/stdout and - are standard output");
    CHECK(a == LD_OK && b == LD_OK, "stream writes: %s", ld_ctx_error(ctx));
    CHECK(n == 14 && !strcmp(buf, "streamed twice"), "read back %zd bytes: '%s'", n, buf);
    struct stat st;
    CHECK(lstat("-", &st) != 0, "no file named '-' was made");
    /* stdout closed */
    fflush(stdout);
    saved = dup(1);
    close(1);
    ld_ctx_clear_error(ctx);
    ld_status c = ld_output_check(ctx, "-");
    char msg[256];
    snprintf(msg, sizeof msg, "%s", ld_ctx_error(ctx));
    dup2(saved, 1);
    close(saved);
    CHECK(c != LD_OK && strstr(msg, "standard output is closed"), "closed stdout: '%s'", msg);
}

static void test_dirs(ld_ctx *ctx) {
    CHECK(ld_output_dir(ctx, at("made/a/b")) == LD_OK, "nested folders: %s", ld_ctx_error(ctx));
    CHECK(test_is_dir(at("made/a/b")), "made/a/b exists");
    CHECK(ld_output_dir(ctx, at("made/a/b")) == LD_OK, "existing folder: %s", ld_ctx_error(ctx));
    char want[4300];
    snprintf(want, sizeof want, "%s is not a folder", at("plain.txt"));
    REFUSED(ctx, ld_output_dir(ctx, at("plain.txt")), want);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s", test_tmp_dir("fileio"));
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) return 1;
    ld_ctx *ctx = ld_ctx_new();
    test_refusals(ctx);
    test_write_and_replace(ctx);
    test_commit_recheck(ctx);
    test_no_replace(ctx);
    test_stdout(ctx);
    test_dirs(ctx);
    ld_ctx_free(ctx);
    return test_finish();
}
