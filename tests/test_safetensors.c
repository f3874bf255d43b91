/* safetensors reader and writer: every file of ../shared/testdata loads with
 * valid dtypes and shapes, the same whether read into memory or mapped
 * (io/weights_memory.h), with the pipelines' rule for which to do; a written
 * file reads back identically. */
#include "io/safetensors.h"
#include "io/weights_memory.h"
#include "pipeline/run.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static int files_checked;

static void check_file(ld_ctx *ctx, const char *path) {
    ld_safetensors *st;
    ld_status rc = ld_safetensors_open(ctx, path, &st);
    CHECK(rc == LD_OK, "%s: %s", path, ld_ctx_error(ctx));
    if (rc != LD_OK) return;
    files_checked++;
    size_t n = ld_safetensors_count(st);
    CHECK(n > 0, "%s: no tensors", path);
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *t = ld_safetensors_at(st, i);
        CHECK(t->dtype == LD_F32 || t->dtype == LD_F16 || t->dtype == LD_BF16 || t->dtype == LD_I64 ||
                  t->dtype == LD_U8,
              "%s: %s has dtype %s", path, t->name, ld_dtype_name(t->dtype));
        CHECK(ld_safetensors_find(st, t->name) == t, "%s: index lookup of %s", path, t->name);
        for (int64_t j = 0; t->dtype == LD_F32 && j < ld_tensor_numel(t); j++)
            if (!isfinite(((const float *)t->data)[j])) {
                CHECK(0, "%s: %s has a non-finite value", path, t->name);
                break;
            }
    }
    CHECK(ld_safetensors_find(st, "no.such.tensor") == NULL, "absent lookup");
    /* the other way of holding the bytes gives the same tensors, byte for byte */
    const char *mode = getenv("LEANDIFF_WEIGHTS");
    setenv("LEANDIFF_WEIGHTS", mode && !strcmp(mode, "read") ? "mmap" : "read", 1);
    ld_safetensors *other = NULL;
    CHECK(ld_safetensors_open(ctx, path, &other) == LD_OK, "%s, the other way: %s", path, ld_ctx_error(ctx));
    setenv("LEANDIFF_WEIGHTS", mode ? mode : "auto", 1);
    if (other) {
        CHECK(ld_safetensors_count(other) == n, "%s: %zu tensors one way, %zu the other", path, n,
              ld_safetensors_count(other));
        for (size_t i = 0; i < n && i < ld_safetensors_count(other); i++) {
            const ld_tensor *a = ld_safetensors_at(st, i), *b = ld_safetensors_at(other, i);
            CHECK(!strcmp(a->name, b->name) && a->dtype == b->dtype && ld_tensor_nbytes(a) == ld_tensor_nbytes(b) &&
                      (ld_tensor_nbytes(a) == 0 || a->data != b->data) && !memcmp(a->data, b->data, ld_tensor_nbytes(a)),
                  "%s: %s differs between read and mapped", path, a->name);
        }
        ld_safetensors_close(other);
    }
    ld_safetensors_close(st);
}

/* The policy: small files are mapped unless told otherwise; reading a file
 * that is shorter than expected is an error naming it. */
static void *other_thread(void *arg) {
    (void)arg;
    return (void *)(intptr_t)ld_weights_prefer_read(0);
}

/* The pipelines' rule (pipeline/run.h): an exact-path run reads its
 * denoiser, a bf16 run maps it, and the thread's setting comes back after;
 * other threads keep their own. */
static void denoiser_rule(void) {
    ld_run run = {.precision = LD_PRECISION_F32};
    ld_run_denoiser_loading(&run);
    CHECK(ld_weights_prefer_read(1) == 1, "an exact-path run reads its denoiser");
    pthread_t t;
    void *other = (void *)1;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0 && pthread_join(t, &other) == 0, "thread");
    CHECK(other == NULL, "another thread keeps its own setting");
    ld_run_denoiser_loaded(&run);
    CHECK(ld_weights_prefer_read(0) == 0, "the setting before the load comes back");
    run.precision = LD_PRECISION_BF16;
    ld_weights_prefer_read(1);
    ld_run_denoiser_loading(&run);
    CHECK(ld_weights_prefer_read(0) == 0, "a bf16 run maps its denoiser");
    ld_run_denoiser_loaded(&run);
    CHECK(ld_weights_prefer_read(0) == 1, "and gives back the setting it found");
}

static void read_or_map(ld_ctx *ctx) {
    unsetenv("LEANDIFF_WEIGHTS");
    CHECK(!ld_weights_should_read("big", (size_t)1 << 30), "generation maps by default");
    CHECK(ld_weights_prefer_read(1) == 0, "the preference was off");
    CHECK(!ld_weights_should_read("small", (size_t)1 << 20), "a 1 MB file is mapped when training");
    CHECK(ld_weights_prefer_read(0) == 1, "the preference was on");
    setenv("LEANDIFF_WEIGHTS", "auto", 1);
    CHECK(!ld_weights_should_read("small", (size_t)1 << 20), "auto: a 1 MB file is mapped");
    setenv("LEANDIFF_WEIGHTS", "sometimes", 1); /* not a mode: a warning, then as if unset */
    CHECK(!ld_weights_should_read("big", (size_t)1 << 30), "an unknown LEANDIFF_WEIGHTS maps as generation does");
    setenv("LEANDIFF_WEIGHTS", "mmap", 1);
    CHECK(!ld_weights_should_read("big", (size_t)1 << 30), "mmap: mapped");
    setenv("LEANDIFF_WEIGHTS", "read", 1);
    CHECK(ld_weights_should_read("small", 100), "read: read");
    CHECK(!ld_weights_should_read("empty", 0), "an empty file is never read");
    unsetenv("LEANDIFF_WEIGHTS");

    const char *dir = test_tmp_dir("safetensors");
    char path[4200];
    snprintf(path, sizeof path, "%s/short.bin", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "create %s", path);
    if (!f) return;
    for (int i = 0; i < 1000; i++) fputc(i & 0xff, f);
    fclose(f);
    int fd = open(path, O_RDONLY);
    unsigned char buf[2000];
    CHECK(ld_read_all(ctx, path, fd, buf, 1000) == LD_OK && buf[999] == (999 & 0xff), "read 1000 bytes");
    CHECK(ld_read_all(ctx, path, fd, buf, 2000) == LD_ERR_IO && strstr(ld_ctx_error(ctx), "shrank") &&
              strstr(ld_ctx_error(ctx), "short.bin"),
          "a short file: %s", ld_ctx_error(ctx));
    close(fd);
}

static void walk(ld_ctx *ctx, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = strlen(e->d_name);
        if (test_is_dir(path))
            walk(ctx, path);
        else if (len > 12 && !strcmp(e->d_name + len - 12, ".safetensors"))
            check_file(ctx, path);
    }
    closedir(d);
}

static void roundtrip(ld_ctx *ctx) {
    const char *dir = test_tmp_dir("safetensors");
    char path[4200];
    snprintf(path, sizeof path, "%s/roundtrip.safetensors", dir);
    ld_st_builder b;
    ld_st_builder_init(&b);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0xc000, 0x0000};
    int64_t sa[2] = {2, 3}, sh[1] = {3};
    CHECK(ld_st_builder_add_f32(ctx, &b, "a", 2, sa, a) == LD_OK, "add a");
    CHECK(ld_st_builder_add(ctx, &b, "h", LD_F16, 1, sh, h) == LD_OK, "add h");
    CHECK(ld_st_builder_meta(ctx, &b, "prompt", "a koala") == LD_OK, "meta");
    CHECK(ld_st_builder_write(ctx, &b, path) == LD_OK, "write: %s", ld_ctx_error(ctx));
    ld_st_builder_free(&b);
    ld_safetensors *st;
    CHECK(ld_safetensors_open(ctx, path, &st) == LD_OK, "reopen: %s", ld_ctx_error(ctx));
    if (!st) return;
    const ld_tensor *ta = ld_safetensors_find(st, "a"), *th = ld_safetensors_find(st, "h");
    CHECK(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3 && !memcmp(ta->data, a, sizeof a), "a back");
    CHECK(th && th->dtype == LD_F16 && ld_tensor_get_f32(th, 1) == -2.0f, "h back");
    const char *m = ld_safetensors_meta_get(st, "prompt");
    CHECK(m && !strcmp(m, "a koala"), "metadata back");
    ld_safetensors_close(st);
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    roundtrip(ctx);
    read_or_map(ctx);
    denoiser_rule();
    const char *td = test_testdata_dir();
    if (td) {
        walk(ctx, td);
        CHECK(files_checked >= 20, "only %d testdata files found", files_checked);
        printf("%d testdata files loaded\n", files_checked);
    } else {
        printf("testdata absent: only the round trip ran\n");
    }
    ld_ctx_free(ctx);
    return test_finish();
}
