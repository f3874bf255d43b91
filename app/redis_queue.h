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

#endif
