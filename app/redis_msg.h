/* What `leandiff worker`s send back, read by `leandiff serve --redis`
 * (server_exec_redis.c): a progress message of a job's channel and the
 * parameters stored with each image of a result (params:i). Pure parsing with
 * jansson; anything malformed is ignored or left zero, never trusted:
 *
 *     redis_progress p;
 *     switch (redis_progress_parse(payload, len, job_image_count, &p)) {
 *     case REDIS_MSG_PROGRESS: ... p.stage, p.image, p.step, p.total ...
 *     case REDIS_MSG_FINAL:    ... look at the result now ...
 *     case REDIS_MSG_IGNORED:  break;
 *     }
 *     ld_gen_info info;
 *     redis_params_info(text, len, &info);
 */
#ifndef LD_APP_REDIS_MSG_H
#define LD_APP_REDIS_MSG_H

#include "leandiff.h"

#include <stddef.h>

typedef enum { REDIS_MSG_IGNORED, REDIS_MSG_PROGRESS, REDIS_MSG_FINAL } redis_msg_kind;

typedef struct {
    char stage[16];
    int image;       /* 0 <= image < count */
    int step, total; /* 0 <= step <= total < 1000000 */
} redis_progress;

/* {"stage", "image", "step", "total", ...} is a progress message (of a job
 * with count images), {"state": ...} the final one; anything else is ignored. */
redis_msg_kind redis_progress_parse(const char *payload, size_t len, int count, redis_progress *out);

/* The worker's params:i JSON into info (fields absent or of the wrong type stay 0 / ""; schedule defaults to
 * "default"). */
void redis_params_info(const char *text, size_t len, ld_gen_info *info);

#endif
