/* A Redis connection that survives Redis going away (hiredis; only built
 * when hiredis was found, LD_HAVE_HIREDIS), and the queue's shared requests:
 * job submission, result look-ups, the workers' heartbeats, the progress
 * subscription. Used by `leandiff worker`, `leandiff batch` and
 * `leandiff serve --redis` (server_exec_redis.c).
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
#include <jansson.h>
#include <signal.h>
#include <stddef.h>

typedef struct redis_conn redis_conn;

/* Connects (retrying like redis_cmd while Redis is down; rediss:// through
 * redis_tls.h); wrong credentials, certificates or key files fail at once
 * with a message naming them. */
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

/* Which of the n keys exist (out[i] = 1 or 0), in one round trip (one script;
 * keep n to a few hundred per call). 0 with a message in err on failure. */
int redis_keys_exist(redis_conn *c, const char *const *keys, int n, int *out, char *err, size_t errn);

/* The heartbeats of the workers alive now (leandiff:worker:*): an array of
 * their JSON objects {name, model, family, job, seen}; NULL when stopping, out
 * of memory or when Redis answers the scan with an error. */
json_t *redis_workers(redis_conn *c);

/* Pub/sub on a connection of its own: after redis_psubscribe the connection
 * only receives. redis_sub_next waits up to timeout_ms for the next message
 * on the pattern: 1 with *channel / *payload (owned by *msg, free it with
 * freeReplyObject), 0 when nothing came (or stopping). A lost connection is
 * logged, reconnected and subscribed again (messages sent meanwhile are lost:
 * progress only; results are read from their keys). */
int redis_psubscribe(redis_conn *c, const char *pattern);
int redis_sub_next(redis_conn *c, int timeout_ms, redisReply **msg, const char **channel, const char **payload,
                   size_t *payload_len);

#endif
