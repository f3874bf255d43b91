/* libFuzzer target: arbitrary bytes through the JSON reader and the typed
 * accessors the model loaders use (config.json style). */
#include "io/json.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ld_ctx *ctx = ld_ctx_new();
    json_t *root = NULL;
    if (ld_json_parse(ctx, "fuzz", (const char *)data, size, &root) == LD_OK) {
        int64_t i, list[16];
        double d, nums[16];
        int b, n;
        const char *s, *strs[16];
        static const char *keys[] = {"a", "in_channels", "block_out_channels", "_class_name", "x"};
        for (int k = 0; k < 5; k++) {
            ld_json_int(ctx, "fuzz", root, keys[k], 0, &i);
            ld_json_num(ctx, "fuzz", root, keys[k], 0, &d);
            ld_json_bool(ctx, "fuzz", root, keys[k], 0, &b);
            ld_json_str(ctx, "fuzz", root, keys[k], NULL, &s);
            ld_json_int_list(ctx, "fuzz", root, keys[k], list, 16, 4, &n);
            ld_json_num_list(ctx, "fuzz", root, keys[k], nums, 16, &n);
            ld_json_str_list(ctx, "fuzz", root, keys[k], strs, 16, &n);
        }
        json_decref(root);
    }
    ld_ctx_free(ctx);
    return 0;
}
