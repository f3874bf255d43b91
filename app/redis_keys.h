/* The Redis names of the shared queue (docs/scale-out.md), in one place for
 * the worker and the front-end. Pure string helpers, no hiredis:
 *
 *     leandiff:jobs:<model>       stream of jobs (fields id, params); group RK_GROUP
 *     leandiff:result:<job id>    hash: status, count, png:i, infotext:i, params:i, ... (written once, TTL)
 *     leandiff:progress:<job id>  pub/sub channel: JSON progress events, then {"state": "done"|"error"}
 *     leandiff:job:<job id>       string: the stream entry of the job's submission (redis_job_submit), expires RK_JOB_TTL s
 *     leandiff:worker:<name>      JSON {name, model, family, job, seen}, expires RK_WORKER_TTL s after the last beat
 *     leandiff:cancel:<job id>    string: a client cancelled the job (serve --redis); the worker stops it, expires RK_JOB_TTL s
 */
#ifndef LD_APP_REDIS_KEYS_H
#define LD_APP_REDIS_KEYS_H

#include <stdio.h>

#define RK_MAX 320
#define RK_GROUP "leandiff-workers"
#define RK_WORKER_TTL 30
#define RK_JOB_TTL (7 * 86400)

static inline void rk_stream(char out[RK_MAX], const char *model) { snprintf(out, RK_MAX, "leandiff:jobs:%s", model); }
static inline void rk_result(char out[RK_MAX], const char *job) { snprintf(out, RK_MAX, "leandiff:result:%s", job); }
static inline void rk_progress(char out[RK_MAX], const char *job) { snprintf(out, RK_MAX, "leandiff:progress:%s", job); }
static inline void rk_job(char out[RK_MAX], const char *job) { snprintf(out, RK_MAX, "leandiff:job:%s", job); }
static inline void rk_cancel(char out[RK_MAX], const char *job) { snprintf(out, RK_MAX, "leandiff:cancel:%s", job); }
static inline void rk_worker(char out[RK_MAX], const char *name) { snprintf(out, RK_MAX, "leandiff:worker:%s", name); }

/* Job ids and worker names: 1-64 of A-Z a-z 0-9 _ - . (safe in keys, logs and file names). */
static inline int rk_valid_id(const char *s) {
    int n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                         c == '-' || c == '.'))
            return 0;
    }
    return n > 0;
}

#endif
