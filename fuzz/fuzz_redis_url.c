/* libFuzzer target: redis_url_parse (app/redis_url.c) on arbitrary text.
 * Checks that a parsed URL is self-consistent (host non-empty and
 * NUL-terminated, port and db in range). */
#include "redis_url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    redis_url u;
    char err[256];
    if (redis_url_parse(s, &u, err, sizeof err)) {
        if (!u.host[0] || strlen(u.host) >= sizeof u.host || u.port < 1 || u.port > 65535 || u.db < 0) abort();
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
    free(s);
    return 0;
}
