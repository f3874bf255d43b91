/* libFuzzer target: arbitrary bytes as a dataset's metadata.jsonl (the
 * Hugging Face imagefolder layout of `leandiff train --data`) and as a
 * prompts file (`--prompts`), both with bad lines skipped and with the first
 * bad line an error. */
#include "train/dataset.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ld_ctx *ctx = ld_ctx_new();
    for (int skip = 0; skip < 2; skip++) {
        ld_dataset d = {0};
        ld_dataset_parse_jsonl(ctx, "fuzz", (const char *)data, size, "data", skip, 0, &d);
        ld_dataset_free(&d);
        ld_dataset_parse_prompts(ctx, "fuzz", (const char *)data, size, skip, &d);
        ld_dataset_free(&d);
    }
    ld_ctx_free(ctx);
    return 0;
}
