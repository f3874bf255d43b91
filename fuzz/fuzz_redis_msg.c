/* libFuzzer target: what `leandiff serve --redis` reads from the workers
 * (app/redis_msg.c) on arbitrary bytes: a progress message must come out in
 * range for the job (image < count, step <= total) or be ignored, and the
 * parameters of a stored image must fill ld_gen_info with terminated strings. */
#include "redis_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int count = 1; count <= 3; count += 2) {
        redis_progress p;
        redis_msg_kind k = redis_progress_parse((const char *)data, size, count, &p);
        if (k == REDIS_MSG_PROGRESS &&
            (p.image < 0 || p.image >= count || p.step < 0 || p.step > p.total || !memchr(p.stage, 0, sizeof p.stage)))
            abort();
    }
    ld_gen_info in;
    redis_params_info((const char *)data, size, &in);
    if (!memchr(in.sampler, 0, sizeof in.sampler) || !memchr(in.schedule, 0, sizeof in.schedule) ||
        !memchr(in.model, 0, sizeof in.model) || !memchr(in.family, 0, sizeof in.family) || in.width < 0 ||
        in.steps < 0)
        abort();
    return 0;
}
