/* Malformed safetensors files, made here, must each fail with a clear error
 * that names the problem (and the tensor when there is one), never crash or
 * leak (run under ASan in CI). Also checks the sharded index and the
 * `leandiff inspect` exit status on a bad file. The malformed files are
 * opened both ways a file's bytes can be held (read into memory and mapped,
 * io/weights_memory.h). */
#include "io/safetensors.h"
#include "io/weights.h"
#include "test_util.h"

#include <sys/wait.h>

static const char *dir;

/* Writes 8-byte length + header + data bytes; the length may lie. */
static void write_raw(const char *path, const char *header, uint64_t declared_len, const void *data, size_t dlen) {
    FILE *f = fopen(path, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(declared_len >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
}

static int cases_run;

/* Expects failure whose message contains every one of the given fragments. */
static void expect_fail(const char *label, const char *header, int64_t len_delta, size_t data_len,
                        const char *frag1, const char *frag2) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, label);
    static unsigned char data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)i;
    write_raw(path, header, (uint64_t)((int64_t)strlen(header) + len_delta), data, data_len);
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *st = NULL;
    ld_status rc = ld_safetensors_open(ctx, path, &st);
    const char *msg = ld_ctx_error(ctx);
    CHECK(rc != LD_OK && st == NULL, "%s: expected failure", label);
    CHECK(strstr(msg, path) != NULL, "%s: message does not name the file: %s", label, msg);
    CHECK(!frag1 || strstr(msg, frag1), "%s: message lacks '%s': %s", label, frag1, msg);
    CHECK(!frag2 || strstr(msg, frag2), "%s: message lacks '%s': %s", label, frag2, msg);
    printf("ok   %-22s %s\n", label, msg);
    cases_run++;
    ld_safetensors_close(st);
    ld_ctx_free(ctx);
}

static void expect_fail_bytes(const char *label, const void *bytes, size_t n, const char *frag) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, label);
    FILE *f = fopen(path, "wb");
    if (n) fwrite(bytes, 1, n, f);
    fclose(f);
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *st = NULL;
    ld_status rc = ld_safetensors_open(ctx, path, &st);
    CHECK(rc != LD_OK, "%s: expected failure", label);
    CHECK(strstr(ld_ctx_error(ctx), frag), "%s: message lacks '%s': %s", label, frag, ld_ctx_error(ctx));
    printf("ok   %-22s %s\n", label, ld_ctx_error(ctx));
    cases_run++;
    ld_safetensors_close(st);
    ld_ctx_free(ctx);
}

static void malformed_files(void) {
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    expect_fail_bytes("empty", "", 0, "too short");
    expect_fail_bytes("tiny", "\x05\x00\x00", 3, "too short");
    expect_fail("header_longer", good, 100, 16, "exceeds the file size", NULL);
    expect_fail("huge_header_len", good, (int64_t)1 << 40, 16, "exceeds", NULL);
    expect_fail("truncated_data", good, 0, 8, "'a'", "past the end");
    expect_fail("offsets_past_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 0, 8, "'a'",
                "past the end");
    expect_fail("overlap",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                0, 16, "overlap", "'b'");
    expect_fail("unknown_dtype", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
                "unknown dtype 'Q4'", "'a'");
    expect_fail("size_mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 16,
                "needs 12 bytes", "'a'");
    expect_fail("not_json", "{\"a\": nope}", 0, 0, "not valid JSON", NULL);
    expect_fail("not_object", "[1,2,3]", 0, 0, "JSON object", NULL);
    expect_fail("negative_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, "shape[0]",
                "'a'");
    expect_fail("huge_declared",
                "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8,
                "overflows", "'a'");
    expect_fail("reversed_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8,
                "increasing", NULL);
    expect_fail("missing_dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "dtype", "'a'");
    expect_fail("missing_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8, "data_offsets", "'a'");
    expect_fail("shape_not_list", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 0, 16, "shape",
                "'a'");
    expect_fail("bad_metadata", "{\"__metadata__\":{\"k\":1}}", 0, 0, "__metadata__", NULL);
    expect_fail("duplicate_key",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                0, 8, "not valid JSON", NULL);
    expect_fail("rank_too_high",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 0, 1, "rank", "'a'");
    /* Non-UTF-8 tensor name: a raw 0xff byte inside the JSON string. */
    char bad_name[128];
    snprintf(bad_name, sizeof bad_name, "{\"a%cb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0xff);
    expect_fail("non_utf8_name", bad_name, 0, 4, "not valid JSON", NULL);
    expect_fail("header_not_object_start", " {}", 0, 0, "JSON object", NULL);
    expect_fail("empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "empty name",
                NULL);
}

/* A valid file with 0 tensors and odd alignment still works; a misaligned F32
 * tensor is copied to aligned memory and reads back. */
static void edge_cases(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/misaligned.safetensors", dir);
    const char *hdr = "{\"h\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}";
    unsigned char data[5] = {7, 0, 0, 0x80, 0x3f};
    write_raw(path, hdr, strlen(hdr), data, 5);
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *st;
    CHECK(ld_safetensors_open(ctx, path, &st) == LD_OK, "misaligned: %s", ld_ctx_error(ctx));
    if (st) {
        const ld_tensor *f = ld_safetensors_find(st, "f");
        CHECK(f && ((uintptr_t)f->data % 4) == 0 && *(const float *)f->data == 1.0f, "misaligned f32 read back");
        ld_safetensors_close(st);
    }
    ld_ctx_free(ctx);
}

static void write_good(const char *path, const char *name, float value) {
    ld_ctx *ctx = ld_ctx_new();
    int64_t shape[2] = {2, 3};
    float v[6];
    for (int i = 0; i < 6; i++) v[i] = value + (float)i;
    ld_st_write_entry e = {.name = name, .dtype = LD_F32, .ndim = 2, .shape = {2, 3}, .data = v};
    (void)shape;
    CHECK(ld_safetensors_write(ctx, path, &e, 1, NULL) == LD_OK, "write %s: %s", path, ld_ctx_error(ctx));
    ld_ctx_free(ctx);
}

static void weights_sources(void) {
    char sub[4200], path[4300];
    snprintf(sub, sizeof sub, "%s/component", dir);
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", sub, sub);
    CHECK(system(cmd) == 0, "mkdir");
    ld_ctx *ctx = ld_ctx_new();
    ld_weights *ws = NULL;
    /* No weights at all. */
    CHECK(ld_weights_open_dir(ctx, sub, NULL, &ws) == LD_ERR_MODEL, "empty folder: %s", ld_ctx_error(ctx));
    /* Only a pickle .bin: unsupported with a reason. */
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.bin", sub);
    FILE *f = fopen(path, "wb");
    fputs("PK", f);
    fclose(f);
    CHECK(ld_weights_open_dir(ctx, sub, NULL, &ws) == LD_ERR_UNSUPPORTED && strstr(ld_ctx_error(ctx), "safetensors"),
          ".bin only: %s", ld_ctx_error(ctx));
    /* Plain and fp16 variants: the variant is preferred when asked. */
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", sub);
    write_good(path, "w", 1.0f);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.fp16.safetensors", sub);
    write_good(path, "w", 10.0f);
    ld_tensor t;
    int64_t shape[2] = {2, 3}, bad[2] = {3, 2}, any[2] = {-1, 3};
    CHECK(ld_weights_open_dir(ctx, sub, "fp16", &ws) == LD_OK, "variant open: %s", ld_ctx_error(ctx));
    CHECK(ws && ld_weights_get(ctx, ws, &t, 2, shape, "w") == LD_OK && ld_tensor_get_f32(&t, 0) == 10.0f,
          "fp16 variant chosen");
    ld_weights_free(ws);
    CHECK(ld_weights_open_dir(ctx, sub, NULL, &ws) == LD_OK, "plain open");
    CHECK(ld_weights_get(ctx, ws, &t, 2, shape, "w") == LD_OK && ld_tensor_get_f32(&t, 0) == 1.0f, "plain chosen");
    CHECK(ld_weights_get(ctx, ws, &t, 2, any, "w") == LD_OK, "wildcard dim");
    CHECK(ld_weights_get(ctx, ws, &t, 2, bad, "w") == LD_ERR_MODEL && strstr(ld_ctx_error(ctx), "[2, 3]") &&
              strstr(ld_ctx_error(ctx), "[3, 2]") && strstr(ld_ctx_error(ctx), "'w'"),
          "shape mismatch names both shapes: %s", ld_ctx_error(ctx));
    CHECK(ld_weights_get(ctx, ws, &t, 2, shape, "missing.%d", 3) == LD_ERR_MODEL &&
              strstr(ld_ctx_error(ctx), "'missing.3'"),
          "missing tensor: %s", ld_ctx_error(ctx));
    CHECK(ld_weights_get_opt(ctx, ws, &t, 2, shape, "missing") == LD_OK && t.data == NULL, "optional absent");
    /* Aliases: rows of a tensor as a view. */
    CHECK(ld_weights_alias(ctx, ws, "w.row1", "w", 1, 2) == LD_OK, "alias");
    int64_t row[2] = {1, 3};
    CHECK(ld_weights_get(ctx, ws, &t, 2, row, "w.row1") == LD_OK && ld_tensor_get_f32(&t, 0) == 4.0f, "alias view");
    CHECK(ld_weights_alias(ctx, ws, "bad", "w", 1, 5) != LD_OK, "alias out of range");
    ld_weights_free(ws);
    /* Sharded index with a lying entry. */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    f = fopen(path, "w");
    fputs("{\"weight_map\": {\"w\": \"diffusion_pytorch_model.safetensors\", \"x\": "
          "\"diffusion_pytorch_model.safetensors\"}}",
          f);
    fclose(f);
    CHECK(ld_weights_open_file(ctx, path, &ws) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "'x'"),
          "lying shard index: %s", ld_ctx_error(ctx));
    f = fopen(path, "w");
    fputs("{\"weight_map\": {\"w\": \"diffusion_pytorch_model.safetensors\"}}", f);
    fclose(f);
    CHECK(ld_weights_open_file(ctx, path, &ws) == LD_OK, "shard index: %s", ld_ctx_error(ctx));
    CHECK(ws && ld_weights_get(ctx, ws, &t, 2, shape, "w") == LD_OK, "tensor via shard index");
    ld_weights_free(ws);
    f = fopen(path, "w");
    fputs("{\"weight_map\": {\"w\": \"../../etc/passwd\"}}", f);
    fclose(f);
    CHECK(ld_weights_open_file(ctx, path, &ws) == LD_ERR_FORMAT, "path traversal in shard index rejected");
    /* Recorder. */
    CHECK(ld_weights_new_recorder(ctx, &ws) == LD_OK, "recorder");
    CHECK(ld_weights_get(ctx, ws, &t, 2, shape, "a.weight") == LD_OK && t.data == NULL, "record a");
    CHECK(ld_weights_get(ctx, ws, &t, 2, shape, "a.weight") == LD_OK, "record a again");
    CHECK(ld_weights_get(ctx, ws, &t, 2, bad, "a.weight") != LD_OK, "record conflicting shape");
    CHECK(ld_weights_recorded_count(ws) == 1, "one recorded");
    snprintf(path, sizeof path, "%s/random.safetensors", dir);
    CHECK(ld_weights_write_random(ctx, ws, path, LD_BF16, 7) == LD_OK, "write random");
    ld_weights_free(ws);
    ld_safetensors *st;
    CHECK(ld_safetensors_open(ctx, path, &st) == LD_OK, "random reopen");
    if (st) {
        const ld_tensor *r = ld_safetensors_find(st, "a.weight");
        int in_range = r && r->dtype == LD_BF16;
        for (int i = 0; in_range && i < 6; i++) in_range = fabsf(ld_tensor_get_f32(r, i)) <= 1.0f;
        CHECK(in_range, "random values in fan-in range");
        ld_safetensors_close(st);
    }
    ld_ctx_free(ctx);
}

static void inspect_cli(void) {
    const char *bin = getenv("LEANDIFF_BIN");
    if (!bin) return;
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/overlap.safetensors' >/dev/null 2>'%s/inspect.err'", bin, dir, dir);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "inspect on a bad file exits with 1");
    char err[4300];
    snprintf(err, sizeof err, "%s/inspect.err", dir);
    FILE *f = fopen(err, "r");
    char line[1024] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    CHECK(strstr(line, "overlap") != NULL, "inspect prints the reason: %s", line);
}

int main(void) {
    dir = test_tmp_dir("malformed");
    setenv("LEANDIFF_WEIGHTS", "read", 1);
    malformed_files();
    CHECK(cases_run >= 15, "only %d malformed cases read into memory", cases_run);
    setenv("LEANDIFF_WEIGHTS", "mmap", 1);
    cases_run = 0;
    malformed_files();
    CHECK(cases_run >= 15, "only %d malformed cases mapped", cases_run);
    unsetenv("LEANDIFF_WEIGHTS");
    edge_cases();
    weights_sources();
    inspect_cli();
    return test_finish();
}
