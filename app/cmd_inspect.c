/* `leandiff inspect FILE.safetensors`: metadata and each tensor's name, dtype
 * and shape; on a bad file the reason on stderr and exit status 1. */
#include "commands.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: leandiff inspect FILE.safetensors\n");
        return argc == 2 ? 0 : 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *st;
    if (ld_safetensors_open(ctx, argv[1], &st) != LD_OK) {
        fprintf(stderr, "leandiff: %s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 1;
    }
    size_t nmeta = ld_safetensors_meta_count(st);
    if (nmeta) {
        printf("metadata:\n");
        for (size_t i = 0; i < nmeta; i++) {
            const char *k = ld_safetensors_meta_key(st, i);
            printf("  %s: %s\n", k, ld_safetensors_meta_get(st, k));
        }
    }
    size_t n = ld_safetensors_count(st);
    size_t total = 0;
    printf("tensors: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *t = ld_safetensors_at(st, i);
        char shape[256];
        printf("  %-5s %-20s %s\n", ld_dtype_name(t->dtype), ld_shape_str(shape, sizeof shape, t->ndim, t->shape),
               t->name);
        total += ld_tensor_nbytes(t);
    }
    printf("data bytes: %zu\n", total);
    ld_safetensors_close(st);
    ld_ctx_free(ctx);
    return 0;
}
