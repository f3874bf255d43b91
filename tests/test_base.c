/* Base layer: error context, arena, half-precision conversion (checked
 * exhaustively against an independent bit-level reference), JSON helpers. */
#include "base/arena.h"
#include "io/json.h"
#include "tensor/tensor.h"
#include "test_util.h"

static void test_ctx(void) {
    ld_ctx *ctx = ld_ctx_new();
    CHECK(ld_ctx_status(ctx) == LD_OK && ld_ctx_error(ctx)[0] == 0, "fresh context");
    CHECK(ld_fail(ctx, LD_ERR_FORMAT, "tensor '%s' bad", "x") == LD_ERR_FORMAT, "fail returns status");
    CHECK(ld_prefix_error(ctx, "%s: ", "file") == LD_ERR_FORMAT, "prefix keeps status");
    CHECK(!strcmp(ld_ctx_error(ctx), "file: tensor 'x' bad"), "message: %s", ld_ctx_error(ctx));
    ld_ctx_clear_error(ctx);
    CHECK(ld_ctx_status(ctx) == LD_OK, "cleared");
    CHECK(strcmp(ld_status_name(LD_ERR_NOMEM), "out of memory") == 0, "status name");
    ld_ctx_free(ctx);
}

static void test_arena(void) {
    ld_ctx *ctx = ld_ctx_new();
    ld_arena a;
    ld_arena_init(&a, 0);
    size_t m0 = ld_arena_mark(&a);
    float *x = ld_arena_alloc_f32(ctx, &a, 1000);
    CHECK(x && ((uintptr_t)x % 64) == 0, "aligned");
    for (int i = 0; i < 1000; i++) x[i] = (float)i;
    size_t m1 = ld_arena_mark(&a);
    float *big = ld_arena_alloc_f32(ctx, &a, 3u << 20); /* forces a new chunk */
    CHECK(big != NULL, "grow");
    big[(3u << 20) - 1] = 1.0f;
    CHECK(x[999] == 999.0f, "old data intact after growth");
    ld_arena_reset(&a, m1);
    CHECK(ld_arena_mark(&a) == m1, "reset mark");
    float *y = ld_arena_alloc_f32(ctx, &a, 10);
    CHECK(y != NULL && x[999] == 999.0f, "reuse after reset");
    size_t peak = a.peak;
    CHECK(peak >= (3u << 20) * 4, "peak recorded");
    ld_arena_reset(&a, m0);
    CHECK(ld_arena_reserve(ctx, &a, peak) == LD_OK, "reserve peak");
    float *z = ld_arena_alloc_f32(ctx, &a, (3u << 20));
    CHECK(z && a.capacity >= peak, "planned block used");
    CHECK(ld_arena_alloc(ctx, &a, SIZE_MAX - 10) == NULL && ld_ctx_status(ctx) == LD_ERR_NOMEM, "overflow refused");
    ld_arena_free(&a);

    /* A pass repeated after a reset takes its chunks from the spares, not from new memory. */
    ld_arena_init(&a, 0);
    float *p1 = NULL, *p2 = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t base = ld_arena_mark(&a);
        CHECK(ld_arena_alloc_f32(ctx, &a, 1000) != NULL, "small");
        float *b1 = ld_arena_alloc_f32(ctx, &a, 3u << 20), *b2 = ld_arena_alloc_f32(ctx, &a, 3u << 20);
        CHECK(b1 && b2 && b1 != b2, "two grown chunks");
        b1[0] = b2[(3u << 20) - 1] = 2.0f;
        if (pass == 0) {
            p1 = b1;
            p2 = b2;
        } else {
            CHECK((b1 == p1 || b1 == p2) && (b2 == p1 || b2 == p2), "second pass reuses the spare chunks");
            CHECK(a.spare == NULL, "no spare left");
        }
        ld_arena_reset(&a, base);
        CHECK(a.spare != NULL, "chunks above the mark kept as spares");
    }
    CHECK(ld_arena_reserve(ctx, &a, 1u << 20) == LD_OK && a.spare == NULL, "reserve releases the spares");
    ld_arena_free(&a);
    ld_ctx_free(ctx);
}

/* Independent reference: decode f16 by the IEEE formula with ldexp. */
static float f16_ref(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ld_f16_to_f32((uint16_t)h), r = f16_ref((uint16_t)h);
        if (isnan(r)) {
            if (!isnan(f)) bad++;
            continue;
        }
        if (f != r || signbit(f) != signbit(r)) bad++;
        if (ld_f32_to_f16(f) != h) bad++; /* round trip of every finite value */
    }
    CHECK(bad == 0, "f16 exhaustive: %d mismatches", bad);
    /* Rounding to nearest even: halfway between 1 and 1+2^-10 goes to 1. */
    CHECK(ld_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "f16 ties to even");
    CHECK(ld_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02, "f16 ties to even (odd)");
    CHECK(ld_f32_to_f16(65520.0f) == 0x7c00 && ld_f32_to_f16(65504.0f) == 0x7bff, "f16 overflow");
    CHECK(ld_f32_to_f16(ldexpf(1, -25)) == 0 && ld_f32_to_f16(ldexpf(1.5f, -25)) == 1, "f16 subnormal rounding");
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ld_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && ld_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "bf16 round trip: %d mismatches", bad);
    CHECK(ld_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 ties to even");
    CHECK(ld_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82, "bf16 ties to even (odd)");
    CHECK(isnan(ld_bf16_to_f32(ld_f32_to_bf16(NAN))), "bf16 NaN stays NaN");
}

static void test_json(void) {
    ld_ctx *ctx = ld_ctx_new();
    const char *text = "{\"a\": 3, \"f\": 2.5, \"s\": \"x\", \"l\": [1, 2, 3], \"b\": true, \"n\": null, \"r\": 4.0}";
    json_t *j;
    CHECK(ld_json_parse(ctx, "t.json", text, strlen(text), &j) == LD_OK, "parse");
    int64_t i, list[4];
    double d;
    int b, n;
    const char *s;
    CHECK(ld_json_int(ctx, "t.json", j, "a", 0, &i) == LD_OK && i == 3, "int");
    CHECK(ld_json_int(ctx, "t.json", j, "r", 0, &i) == LD_OK && i == 4, "integral real as int");
    CHECK(ld_json_int(ctx, "t.json", j, "zz", 9, &i) == LD_OK && i == 9, "default");
    CHECK(ld_json_int(ctx, "t.json", j, "n", 9, &i) == LD_OK && i == 9, "null gives default");
    CHECK(ld_json_int(ctx, "t.json", j, "f", 0, &i) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "t.json: f must be"),
          "non-integral: %s", ld_ctx_error(ctx));
    CHECK(ld_json_int(ctx, "t.json", j, "s", 0, &i) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "string"),
          "wrong type names the type");
    CHECK(ld_json_num(ctx, "t.json", j, "f", 0, &d) == LD_OK && d == 2.5, "num");
    CHECK(ld_json_bool(ctx, "t.json", j, "b", 0, &b) == LD_OK && b == 1, "bool");
    CHECK(ld_json_str(ctx, "t.json", j, "s", NULL, &s) == LD_OK && !strcmp(s, "x"), "str");
    CHECK(ld_json_int_req(ctx, "t.json", j, "missing", &i) == LD_ERR_FORMAT &&
              strstr(ld_ctx_error(ctx), "required field missing"),
          "required: %s", ld_ctx_error(ctx));
    CHECK(ld_json_int_list(ctx, "t.json", j, "l", list, 4, 0, &n) == LD_OK && n == 3 && list[2] == 3, "list");
    CHECK(ld_json_int_list(ctx, "t.json", j, "l", list, 2, 0, &n) == LD_ERR_FORMAT, "list too long");
    CHECK(ld_json_int_list(ctx, "t.json", j, "a", list, 4, 3, &n) == LD_OK && n == 3 && list[1] == 3, "broadcast");
    json_decref(j);
    CHECK(ld_json_parse(ctx, "bad.json", "{\"a\": 1,}", 9, &j) == LD_ERR_FORMAT &&
              strstr(ld_ctx_error(ctx), "bad.json: invalid JSON at line 1"),
          "broken JSON: %s", ld_ctx_error(ctx));
    CHECK(ld_json_parse(ctx, "dup.json", "{\"a\":1,\"a\":2}", 13, &j) == LD_ERR_FORMAT, "duplicate keys rejected");
    CHECK(ld_json_load_file(ctx, "/nonexistent/x.json", &j) == LD_ERR_IO && strstr(ld_ctx_error(ctx), "/nonexistent"),
          "missing file");
    ld_ctx_free(ctx);
}

int main(void) {
    test_ctx();
    test_arena();
    test_half();
    test_json();
    return test_finish();
}
