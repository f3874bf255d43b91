/* Minimal test harness shared by tests/test_*.c (header only).
 *
 *     int main(void) {
 *         CHECK(1 + 1 == 2, "arithmetic");
 *         const char *td = test_testdata_dir();   // NULL when the test data is absent
 *         if (!td) return test_skip("no testdata");
 *         return test_finish();
 *     }
 *
 * Exit status: 0 pass, 1 fail, 77 skip (ctest SKIP_RETURN_CODE).
 */
#ifndef LD_TEST_UTIL_H
#define LD_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_checks, test_failures;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        test_checks++;                                                \
        if (!(cond)) {                                                \
            test_failures++;                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, "\n");                                    \
        }                                                             \
    } while (0)

static inline int test_finish(void) {
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}

static inline int test_skip(const char *why) {
    printf("SKIP: %s\n", why);
    return 77;
}

static inline int test_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The one way the tests find the shared test data (README, Testing):
 * $LEANDIFF_TESTDATA when it is set, which must then be a folder (a set but
 * missing one ends the test with an error, never a silent fallback), else
 * <source>/../shared/testdata with <source> = $LEANDIFF_SOURCE_DIR (set by
 * ctest) or the folder above this header. NULL when that is absent (the
 * caller skips). */
static inline const char *test_testdata_dir(void) {
    static char buf[4096];
    const char *env = getenv("LEANDIFF_TESTDATA");
    if (env) {
        if (test_is_dir(env)) return env;
        fprintf(stderr, "FAIL: LEANDIFF_TESTDATA='%s' is not a folder (unset it to use ../shared/testdata)\n", env);
        exit(1);
    }
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    if (src) {
        snprintf(buf, sizeof buf, "%s/../shared/testdata", src);
    } else { /* __FILE__ is <source>/tests/test_util.h */
        const char *f = __FILE__, *cut = strstr(f, "tests/test_util.h");
        snprintf(buf, sizeof buf, "%.*s../shared/testdata", cut ? (int)(cut - f) : 0, f);
    }
    return test_is_dir(buf) ? buf : NULL;
}

/* Scratch directory under the build tree (or /tmp) for files a test writes. */
static inline const char *test_tmp_dir(const char *name) {
    static char buf[4096];
    const char *b = getenv("LEANDIFF_BUILD_DIR"), *tag = getenv("LEANDIFF_TEST_TAG");
    snprintf(buf, sizeof buf, "%s/test-tmp/%s%s%s", b ? b : "/tmp/leandiff-tests", name, tag ? "-" : "",
             tag ? tag : "");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", buf);
    if (system(cmd) != 0) fprintf(stderr, "cannot create %s\n", buf);
    return buf;
}

/* A random-weight tiny KOALA pipeline folder made by `leandiff init-random
 * --pipeline tiny` (the binary of $LEANDIFF_BIN, set by ctest) under the test's
 * scratch directory, for tests that need a model but no reference numbers.
 * NULL (and a message) when it cannot be made. */
static inline const char *test_make_tiny_model(const char *name) {
    static char dir[4200];
    const char *bin = getenv("LEANDIFF_BIN");
    if (!bin) {
        fprintf(stderr, "LEANDIFF_BIN is not set (run the tests through ctest)\n");
        return NULL;
    }
    snprintf(dir, sizeof dir, "%s/tiny", test_tmp_dir(name));
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s' init-random --pipeline tiny --out '%s' >/dev/null", dir, bin, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the tiny model: %s\n", cmd);
        return NULL;
    }
    return dir;
}

/* The tiny AutoencoderTiny of tests/data/taesd: its config with the random
 * weights the reference was made with (init-random, seed 20261204), written
 * under the test's scratch folder; NULL (and a message) when that fails. */
static inline const char *test_make_taesd(const char *name) {
    static char dir[4200];
    const char *bin = getenv("LEANDIFF_BIN"), *src = getenv("LEANDIFF_SOURCE_DIR");
    if (!bin || !src) {
        fprintf(stderr, "LEANDIFF_BIN or LEANDIFF_SOURCE_DIR is not set (run the tests through ctest)\n");
        return NULL;
    }
    snprintf(dir, sizeof dir, "%s/taesd", test_tmp_dir(name));
    char cmd[8600];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && '%s' init-random --config '%s/tests/data/taesd/config.json' --out '%s' --dtype f32 "
             "--seed 20261204 >/dev/null",
             dir, bin, src, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the tiny TAESD: %s\n", cmd);
        return NULL;
    }
    return dir;
}

/* Module tolerance of testdata/README.md: max|got-ref| <= tol * max(1, max|ref|).
 * Prints the error; returns 1 if within tolerance. */
static inline int test_close(const char *what, const float *got, const float *ref, int64_t n, double tol) {
    double maxdiff = 0, maxref = 0;
    int64_t where = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxdiff)) { /* also catches NaN */
            maxdiff = isnan(d) ? INFINITY : d;
            where = i;
        }
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    double limit = tol * (maxref > 1 ? maxref : 1);
    int ok = maxdiff <= limit;
    printf("%s %s: max|diff| %.3g (limit %.3g, max|ref| %.3g)", ok ? "ok  " : "FAIL", what, maxdiff, limit, maxref);
    if (!ok && where >= 0) printf(" at %lld: got %.7g ref %.7g", (long long)where, got[where], ref[where]);
    printf("\n");
    test_checks++;
    if (!ok) test_failures++;
    return ok;
}

/* Relative L2 error |a - b| / |b| (|a - b| when b is 0): the pipeline tolerance of testdata/README.md. */
static inline double test_rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Deterministic pseudo-random floats in [-1, 1) for test inputs. */
static inline float test_rand(uint64_t *state) {
    uint64_t x = (*state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (float)((x >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static inline void test_fill(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = test_rand(&seed);
}

#endif
