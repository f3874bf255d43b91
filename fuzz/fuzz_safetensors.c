/* libFuzzer target: arbitrary bytes as a whole safetensors file image.
 * Build and run: fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined). */
#include "io/safetensors.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *st = NULL;
    if (ld_safetensors_from_memory(ctx, "fuzz", data, size, &st) == LD_OK) {
        /* Touch every tensor's bytes so a bad range would be caught by ASan. */
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const ld_tensor *t = ld_safetensors_at(st, i);
            size_t n = ld_tensor_nbytes(t);
            if (n) sink ^= ((const unsigned char *)t->data)[0] ^ ((const unsigned char *)t->data)[n - 1];
            (void)ld_safetensors_find(st, t->name);
        }
        (void)sink;
    }
    ld_safetensors_close(st);
    ld_ctx_free(ctx);
    return 0;
}
