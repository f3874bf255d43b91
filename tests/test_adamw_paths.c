/* AdamW's SIMD kernels (AVX-512, AVX2, NEON) against its portable loop: the
 * same bits on every path this machine has. Needs only base/ and
 * train/adamw*, so tools/cross-test-arm64.sh also runs it under qemu for the
 * NEON kernel. */
#include "test_util.h"

#include "base/cpu.h"
#include "train/adamw.h"

/* The SIMD AdamW kernels give the portable loop's bits on every path of this
 * machine, over whole vectors, a padded tail and several OpenMP chunks. */
static void check_adamw_paths(ld_ctx *ctx) {
    enum { N = (1 << 16) * 2 + 37 };
    const ld_cpu_level_t levels[] = {LD_CPU_PORTABLE, LD_CPU_NEON, LD_CPU_AVX2, LD_CPU_AVX512};
    const ld_cpu_level_t was = ld_cpu_level();
    float *ref = NULL;
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
        if (ld_cpu_force(levels[l]) != levels[l]) continue; /* not on this machine */
        float *p = malloc(sizeof(float) * N), *g = malloc(sizeof(float) * N);
        ld_adamw o;
        CHECK(p && g && ld_adamw_init(ctx, &o, N, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f) == LD_OK, "adamw init");
        test_fill(p, N, 5);
        for (int step = 1; step <= 3; step++) {
            test_fill(g, N, 20 + (uint64_t)step);
            ld_adamw_update(&o, p, g, 1e-3f);
        }
        if (!ref) ref = p, p = NULL; /* the portable path comes first */
        else {
            int64_t diff = 0;
            for (int64_t i = 0; i < N; i++) diff += memcmp(&p[i], &ref[i], sizeof(float)) != 0;
            CHECK(diff == 0, "AdamW on path %s: %lld of %d parameters differ from the portable loop",
                  ld_cpu_level_name(levels[l]), (long long)diff, (int)N);
        }
        ld_adamw_free(&o);
        free(p), free(g);
    }
    free(ref);
    ld_cpu_force(was);
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    check_adamw_paths(ctx);
    ld_ctx_free(ctx);
    return test_finish();
}
