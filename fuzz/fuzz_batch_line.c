/* libFuzzer target: batch_line_parse (app/batch_line.c) on arbitrary bytes,
 * with and without defaults. Checks the contract: a job is a JSON object
 * holding every default field, a refusal says why, and nothing is returned
 * for a skipped or bad line. */
#include "batch_line.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *defaults = json_pack("{s:i, s:i, s:s}", "width", 64, "seed", 7, "negative_prompt", "blurry");
    if (!defaults) return 0;
    for (int pass = 0; pass < 2; pass++) {
        json_t *params = (json_t *)1;
        char err[256];
        batch_line_kind k = batch_line_parse((const char *)data, size, pass ? defaults : NULL, &params, err, sizeof err);
        if (k == BATCH_LINE_JOB) {
            if (!json_is_object(params)) abort();
            if (pass && (!json_object_get(params, "width") || !json_object_get(params, "seed") ||
                         !json_object_get(params, "negative_prompt")))
                abort();
            char *s = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS); /* what the batch submits */
            free(s);
            json_decref(params);
        } else if (params != NULL || (k == BATCH_LINE_BAD && !err[0])) {
            abort();
        }
    }
    json_decref(defaults);
    return 0;
}
