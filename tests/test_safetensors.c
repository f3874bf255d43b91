/* safetensors reader and writer: every file of ../shared/testdata loads with
 * valid dtypes and shapes; a written file reads back identically. */
#include "io/safetensors.h"
#include "test_util.h"

#include <dirent.h>

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
    ld_safetensors_close(st);
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
