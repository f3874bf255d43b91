/* A Redis connection that survives Redis going away (hiredis; only built
 * when hiredis was found, LD_HAVE_HIREDIS). Used by `leandiff worker`.
 *
 *     redis_url u;  ... redis_url_parse ...
 *     redis_conn *c = redis_conn_open(&u, "leandiff worker", &stop_flag);   // NULL: message on stderr
 *     redisReply *r = redis_cmd(c, "XACK %s %s %s", stream, group, id);    // NULL only when stopping
 *     freeReplyObject(r);
 *     redis_conn_close(c);
 *
 * redis_cmd / redis_cmd_argv retry on a lost connection (one log line per
 * loss, then reconnect with AUTH and SELECT every 1..5 s) until the command
 * gets an answer or *stop becomes nonzero. A Redis error reply
 * (REDIS_REPLY_ERROR) is returned to the caller as is.
 */
#ifndef LD_APP_REDIS_QUEUE_H
#define LD_APP_REDIS_QUEUE_H

#include "redis_url.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>

typedef struct redis_conn redis_conn;

/* Connects (retrying like redis_cmd while Redis is down); rediss:// fails at
 * once with a message saying this build has no TLS. */
redis_conn *redis_conn_open(const redis_url *u, const char *who, volatile sig_atomic_t *stop);
void redis_conn_close(redis_conn *c);
redisReply *redis_cmd(redis_conn *c, const char *fmt, ...);
redisReply *redis_cmd_argv(redis_conn *c, int argc, const char **argv, const size_t *lens);

typedef enum {
    REDIS_JOB_ERROR = -1,     /* message in err (a Redis error, or stopping) */
    REDIS_JOB_SUBMITTED = 0,  /* added to the stream now */
    REDIS_JOB_QUEUED = 1,     /* its earlier submission is still in the stream (waiting or running) */
    REDIS_JOB_HAS_RESULT = 2, /* leandiff:result:<id> exists: nothing to run */
} redis_job_state;

/* Puts job `id` with params (a JSON object of the native job fields) on the
 * stream of `model`, unless it has a result or its earlier submission is
 * still in the stream: one script, so it is atomic, and submitting an id
 * again (a rerun, a retry after a lost reply) never queues it twice. A job
 * whose entry vanished without a result (finished and expired, or a Redis
 * restart without its append-only file) is submitted again. */
redis_job_state redis_job_submit(redis_conn *c, const char *model, const char *id, const char *params, char *err,
                                 size_t errn);

#endif
