/* Packed weights kept between products (tensor/gemm_cache.h): with bf16
 * precision, a half-precision operand inside a registered read-only file
 * mapping is packed once, at its second use, and reused. The products must give the same bits as
 * the same operand from ordinary memory (never cached), on the first call
 * (packed as always), the second (which keeps a copy), later ones (which reuse it), on 1 and 2 threads, as the B
 * operand of a linear layer and as the A operand of an implicit-GEMM
 * convolution; unregistering drops the copies, and a new mapping at the same
 * address with other contents is not served a stale copy. A weight file read
 * into memory (io/weights_memory.h) is cached the same way, and its bytes are
 * still there after the cache gave its pages back (the file mapped over them). */
#include <fcntl.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/weights_memory.h"
#include "tensor/gemm.h"
#include "tensor/gemm_cache.h"
#include "tensor/gemm_kernels.h"
#include "test_util.h"

/* n f16 values written to a temp file, mapped read-only and registered. */
static uint16_t *map_f16(const uint16_t *src, size_t n, size_t *len) {
    char path[] = "/tmp/ld_gemm_cache_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    unlink(path);
    *len = n * sizeof(uint16_t);
    void *m = MAP_FAILED;
    if (write(fd, src, *len) == (ssize_t)*len) m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return NULL;
    ld_gemm_const_register(m, *len);
    return m;
}

static void unmap_f16(uint16_t *m, size_t len) {
    ld_gemm_const_unregister(m, len);
    munmap(m, len);
}

static void fill_f16(uint16_t *w, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ld_f32_to_f16(((float)(s >> 8) / 16777216.0f - 0.5f) * 2.0f);
    }
}

static size_t copies(void) {
    size_t c;
    ld_gemm_cache_stats(&c, NULL);
    return c;
}

/* y = x W^T with W [N, K] f16 at w (the linear-layer layout). */
static void linear(float *y, const float *x, const uint16_t *w, int64_t M, int64_t N, int64_t K) {
    const ld_mat A = ld_mat_f32(x, K, 1), B = {LD_F16, w, 1, K};
    ld_gemm(M, N, K, &A, &B, y, N, 0.0f, NULL, NULL);
}

/* 3x3 convolution, weight [Co, Ci, 3, 3] f16 at w, image [Ci, H, W]. */
static void conv(float *y, const float *x, const uint16_t *w, int64_t Co, int64_t Ci, int64_t H, int64_t W) {
    const ld_mat A = {LD_F16, w, Ci * 9, 1};
    ld_im2col src = {x, Ci, H, W, 3, 3, 1, 1, 1, 1, 1, 1, H, W, 0};
    ld_gemm_bfill f = {ld_im2col_fill, &src};
    ld_gemm_fill_b(Co, H * W, Ci * 9, &A, &f, y, H * W, 0.0f, NULL, NULL);
}

static void test_linear(int have_bf16) {
    const int64_t shapes[][3] = {{300, 200, 1100}, {7, 96, 130}, {2048, 64, 320}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        uint16_t *plain = malloc(sizeof(uint16_t) * N * K);
        float *x = malloc(sizeof(float) * M * K), *want = malloc(sizeof(float) * M * N);
        float *got = malloc(sizeof(float) * M * N);
        fill_f16(plain, (size_t)(N * K), 7 + (unsigned)s);
        for (int64_t i = 0; i < M * K; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        size_t len;
        uint16_t *mapped = map_f16(plain, (size_t)(N * K), &len);
        CHECK(mapped != NULL, "map");
        if (!mapped) break;
        omp_set_num_threads(2);
        linear(want, x, plain, M, N, K);
        const size_t before = copies();
        for (int call = 0; call < 3; call++) {
            omp_set_num_threads(call == 1 ? 1 : 2);
            memset(got, 0, sizeof(float) * M * N);
            linear(got, x, mapped, M, N, K);
            CHECK(!memcmp(got, want, sizeof(float) * M * N), "linear %lldx%lldx%lld call %d: same bits as uncached",
                  (long long)M, (long long)N, (long long)K, call);
            if (call == 0) CHECK(copies() == before, "no copy after the first use");
        }
        if (have_bf16)
            CHECK(copies() == before + 1, "linear %lldx%lldx%lld: one packed copy (%zu -> %zu)", (long long)M,
                  (long long)N, (long long)K, before, copies());
        else
            CHECK(copies() == before, "no bf16 kernel: nothing cached");
        unmap_f16(mapped, len);
        CHECK(copies() == before, "unregister drops the copy");
        free(plain);
        free(x);
        free(want);
        free(got);
    }
}

/* y [M, N] = W x with W [M, K] f16 at w as A (a pointwise convolution on
 * NCHW planes or a projection to channels) and x [K, N]. */
static void weight_a(float *y, const float *x, const uint16_t *w, int64_t M, int64_t N, int64_t K) {
    const ld_mat A = {LD_F16, w, K, 1}, B = ld_mat_f32(x, N, 1);
    ld_gemm(M, N, K, &A, &B, y, N, 0.0f, NULL, NULL);
}

/* A filter as A, cached: a 3x3 convolution with one row of tasks; one with
 * many output channels and few pixels, whose rows the GEMM splits into
 * several task rows on 2 threads (Stage C's pointwise convolutions), and a
 * plain product of that kind that walks its column blocks. The copy made
 * on 2 threads is read on 1 (other task rows, same layout) and back. */
static void test_conv(int have_bf16) {
    const int64_t shapes[][4] = {{40, 12, 19, 23}, {600, 16, 12, 12}, {600, 64, 1, 1100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t Co = shapes[s][0], Ci = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
        const int plain_product = s == 2; /* a K = Ci product, no fill */
        const int64_t K = plain_product ? Ci : Ci * 9, n = H * W;
        uint16_t *plain = malloc(sizeof(uint16_t) * Co * K);
        float *x = malloc(sizeof(float) * K * n), *want = malloc(sizeof(float) * Co * n),
              *got = malloc(sizeof(float) * Co * n);
        fill_f16(plain, (size_t)(Co * K), 3 + (unsigned)s);
        for (int64_t i = 0; i < K * n; i++) x[i] = (float)((i * 13) % 29) / 14.0f - 1.0f;
        size_t len;
        uint16_t *mapped = map_f16(plain, (size_t)(Co * K), &len);
        CHECK(mapped != NULL, "map");
        if (mapped) {
            omp_set_num_threads(2);
            if (plain_product) weight_a(want, x, plain, Co, n, K);
            else conv(want, x, plain, Co, Ci, H, W);
            const size_t before = copies();
            for (int call = 0; call < 4; call++) {
                omp_set_num_threads(call == 2 ? 1 : 2);
                memset(got, 0, sizeof(float) * Co * n);
                if (plain_product) weight_a(got, x, mapped, Co, n, K);
                else conv(got, x, mapped, Co, Ci, H, W);
                CHECK(!memcmp(got, want, sizeof(float) * Co * n),
                      "filter %lldx%lldx%lld call %d: same bits as uncached", (long long)Co, (long long)n,
                      (long long)K, call);
            }
            CHECK(copies() == before + (have_bf16 ? 1 : 0), "filter %lldx%lldx%lld: %s", (long long)Co, (long long)n,
                  (long long)K, have_bf16 ? "one packed copy" : "nothing cached");
            unmap_f16(mapped, len);
        }
        free(plain);
        free(x);
        free(want);
        free(got);
    }
}

/* Two mappings of the same shape at once, then in turn (likely at the same
 * address): each product sees its own contents. */
static void test_no_stale_copy(void) {
    const int64_t M = 64, N = 48, K = 256;
    float *x = malloc(sizeof(float) * M * K), *want = malloc(sizeof(float) * M * N);
    float *got = malloc(sizeof(float) * M * N);
    uint16_t *plain = malloc(sizeof(uint16_t) * N * K);
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)(i % 17) / 8.0f - 1.0f;
    uint16_t *plain2 = malloc(sizeof(uint16_t) * N * K);
    fill_f16(plain, (size_t)(N * K), 1);
    fill_f16(plain2, (size_t)(N * K), 2);
    size_t len1, len2;
    uint16_t *m1 = map_f16(plain, (size_t)(N * K), &len1), *m2 = map_f16(plain2, (size_t)(N * K), &len2);
    CHECK(m1 && m2, "map two");
    for (int call = 0; m1 && m2 && call < 2; call++) {
        linear(want, x, plain, M, N, K);
        linear(got, x, m1, M, N, K);
        CHECK(!memcmp(got, want, sizeof(float) * M * N), "first of two mappings, call %d", call);
        linear(want, x, plain2, M, N, K);
        linear(got, x, m2, M, N, K);
        CHECK(!memcmp(got, want, sizeof(float) * M * N), "second of two mappings, call %d", call);
    }
    if (m1) unmap_f16(m1, len1);
    if (m2) unmap_f16(m2, len2);
    free(plain2);
    for (unsigned round = 0; round < 3; round++) {
        fill_f16(plain, (size_t)(N * K), 100 + round);
        size_t len;
        uint16_t *mapped = map_f16(plain, (size_t)(N * K), &len);
        if (!mapped) {
            CHECK(0, "map");
            break;
        }
        linear(want, x, plain, M, N, K);
        linear(got, x, mapped, M, N, K);
        CHECK(!memcmp(got, want, sizeof(float) * M * N), "mapping %u: its own contents", round);
        unmap_f16(mapped, len);
    }
    free(x);
    free(want);
    free(got);
    free(plain);
}

/* 1 if the page at p is now part of a file mapping (/proc/self/maps: inode != 0). */
static int file_backed(const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int r = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, inode = 0;
        char perm[8], off[32], dev[32];
        if (sscanf(line, "%lx-%lx %7s %31s %31s %lu", &lo, &hi, perm, off, dev, &inode) == 6 &&
            (uintptr_t)p >= lo && (uintptr_t)p < hi)
            r = inode != 0;
    }
    fclose(f);
    return r;
}

static void test_read_copy(int have_bf16) {
    const int64_t M = 300, N = 200, K = 1100;
    const size_t n = (size_t)(N * K), len = n * sizeof(uint16_t);
    uint16_t *plain = malloc(len);
    float *x = malloc(sizeof(float) * M * K), *want = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
    fill_f16(plain, n, 11);
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)((i * 29) % 97) / 48.0f - 1.0f;
    char path[] = "/tmp/ld_gemm_cache_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, plain, len) == (ssize_t)len, "temp file");
    unlink(path);
    ld_ctx *ctx = ld_ctx_new();
    uint16_t *copy = ld_weights_mem_alloc(ctx, "weights", len);
    CHECK(copy && ld_read_all(ctx, "weights", fd, copy, len) == LD_OK, "read: %s", ld_ctx_error(ctx));
    if (!copy) return;
    ld_gemm_const_register_copy(copy, len, fd);
    linear(want, x, plain, M, N, K);
    const size_t before = copies();
    for (int call = 0; call < 3; call++) {
        memset(got, 0, sizeof(float) * M * N);
        linear(got, x, copy, M, N, K);
        CHECK(!memcmp(got, want, sizeof(float) * M * N), "read copy, call %d: same bits as uncached", call);
    }
    CHECK(copies() == before + (have_bf16 ? 1 : 0), "read copy: %s", have_bf16 ? "one packed copy" : "nothing cached");
    if (have_bf16) CHECK(file_backed((char *)copy + 4096) == 1, "read copy: its pages given back to the file");
    CHECK(!memcmp(copy, plain, len), "read copy: the weight's bytes unchanged after the cache dropped them");
    ld_gemm_const_unregister(copy, len);
    CHECK(copies() == before, "unregister drops the copy");
    ld_weights_mem_free(copy, len);
    close(fd);
    ld_ctx_free(ctx);
    free(plain), free(x), free(want), free(got);
}

/* Resident kB of the mapping that holds p (/proc/self/smaps), or -1. */
static long mapping_rss_kb(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

/* Two threads run the same products of one mapped weight at the same time,
 * one thread each (the two halves of a guided step): the one that sees the
 * weight second packs and keeps the copy and gives the source's pages back
 * while the other is still packing from them. When both are done the pages
 * are given back all the same, and both got the uncached bits. */
static void test_two_at_once(int have_bf16) {
    const int64_t M = 64, N = 1536, K = 1536;
    const size_t n = (size_t)(N * K);
    uint16_t *plain = malloc(n * sizeof(uint16_t));
    float *x = malloc(sizeof(float) * M * K), *want = malloc(sizeof(float) * M * N);
    float *got[2] = {malloc(sizeof(float) * M * N), malloc(sizeof(float) * M * N)};
    fill_f16(plain, n, 5);
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)((i * 31) % 89) / 44.0f - 1.0f;
    size_t len;
    uint16_t *mapped = map_f16(plain, n, &len);
    CHECK(mapped && x && want && got[0] && got[1], "map");
    if (!mapped) return;
    omp_set_num_threads(1);
    linear(want, x, plain, M, N, K);
    const size_t before = copies();
    int same[2] = {1, 1};
    omp_set_num_threads(2);
    #pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num();
        ld_gemm_set_precision(LD_PRECISION_BF16);
        for (int call = 0; call < 2; call++) {
            linear(got[t], x, mapped, M, N, K);
            same[t] &= !memcmp(got[t], want, sizeof(float) * M * N);
        }
    }
    CHECK(same[0] && same[1], "two at once: the uncached bits on both threads");
    if (have_bf16) {
        const long left = mapping_rss_kb(mapped);
        CHECK(copies() == before + 1, "two at once: one copy");
        CHECK(left >= 0 && left <= 8, "two at once: %ld of %zu kB of the source left in memory", left, len / 1024);
    }
    unmap_f16(mapped, len);
    free(plain), free(x), free(want), free(got[0]), free(got[1]);
}

int main(void) {
    ld_gemm_set_precision(LD_PRECISION_BF16);
    const int have_bf16 = ld_gemm_kernel_bf16_for(256, 256, 0) != NULL;
    const char *e = getenv("LEANDIFF_PACK_CACHE");
    if (e && !strcmp(e, "0")) return test_skip("LEANDIFF_PACK_CACHE=0");
    printf("bf16 kernel: %s\n", have_bf16 ? "yes (copies are made)" : "no (nothing is cached)");
    test_linear(have_bf16);
    test_conv(have_bf16);
    test_no_stale_copy();
    test_read_copy(have_bf16);
    test_two_at_once(have_bf16);
    return test_finish();
}
