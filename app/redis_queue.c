/* Redis connection with reconnect (see redis_queue.h). */
#ifdef LD_HAVE_HIREDIS
#include "redis_queue.h"

#include "redis_keys.h"
#include "redis_tls.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct redis_conn {
    redis_url url;
    const char *who;
    volatile sig_atomic_t *stop;
    redisContext *ctx;
    redis_tls *tls; /* rediss://: the relay under ctx */
    int lost; /* a "lost connection" line was printed and no success since */
    char pattern[RK_MAX]; /* redis_psubscribe's, "" when not subscribed */
};

static int stopping(const redis_conn *c) { return c->stop && *c->stop; }

/* One attempt: connect, AUTH, SELECT. 0 with a message in err on failure. */
static int try_connect(redis_conn *c, char *err, size_t errn) {
    struct timeval tv = {5, 0};
    redisContext *rc;
    redis_tls *tls = NULL;
    if (c->url.tls) {
        int fd;
        if (!(tls = redis_tls_connect(&c->url, 5, &fd, err, errn))) return 0;
        if (!(rc = redisConnectFd(fd))) close(fd);
    } else {
        rc = redisConnectWithTimeout(c->url.host, c->url.port, tv);
    }
    if (!rc || rc->err) {
        snprintf(err, errn, "%s", rc ? rc->errstr : "out of memory");
        if (rc) redisFree(rc);
        redis_tls_close(tls);
        return 0;
    }
    redisSetTimeout(rc, (struct timeval){60, 0});
    redisReply *r = NULL;
    if (c->url.has_password)
        r = c->url.user[0] ? redisCommand(rc, "AUTH %s %s", c->url.user, c->url.password)
                           : redisCommand(rc, "AUTH %s", c->url.password);
    if (c->url.has_password && (!r || r->type == REDIS_REPLY_ERROR)) {
        snprintf(err, errn, "AUTH refused: %s", r ? r->str : rc->errstr);
        goto fail;
    }
    freeReplyObject(r);
    r = NULL;
    if (c->url.db) {
        r = redisCommand(rc, "SELECT %d", c->url.db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errn, "SELECT %d refused: %s", c->url.db, r ? r->str : rc->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    c->ctx = rc;
    c->tls = tls;
    return 1;
fail:
    freeReplyObject(r);
    redisFree(rc);
    redis_tls_close(tls);
    return 0;
}

/* Closes the connection (and its TLS relay). */
static void drop_ctx(redis_conn *c) {
    if (c->ctx) redisFree(c->ctx);
    c->ctx = NULL;
    redis_tls_close(c->tls);
    c->tls = NULL;
}

/* Reconnects until it works or we are stopping; logs the first failure and the recovery. */
static int reconnect(redis_conn *c, const char *why) {
    drop_ctx(c);
    int wait = 1;
    char err[256];
    while (!stopping(c)) {
        if (try_connect(c, err, sizeof err)) {
            if (c->lost) fprintf(stderr, "%s: reconnected to Redis at %s:%d\n", c->who, c->url.host, c->url.port);
            c->lost = 0;
            return 1;
        }
        if ((strstr(err, "refused:") && strstr(err, "AUTH")) || !strncmp(err, "TLS: ", 5) ||
            strstr(err, "needs OpenSSL")) {
            fprintf(stderr, "%s: Redis at %s:%d: %s\n", c->who, c->url.host, c->url.port, err);
            return 0; /* wrong credentials or certificates do not get better by waiting */
        }
        if (!c->lost)
            fprintf(stderr, "%s: %s Redis at %s:%d (%s); retrying every few seconds\n", c->who,
                    why ? why : "cannot reach", c->url.host, c->url.port, err);
        c->lost = 1;
        struct timespec ts = {wait, 0};
        nanosleep(&ts, NULL);
        if (wait < 5) wait++;
    }
    return 0;
}

redis_conn *redis_conn_open(const redis_url *u, const char *who, volatile sig_atomic_t *stop) {
    redis_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->url = *u;
    c->who = who;
    c->stop = stop;
    if (!reconnect(c, "cannot reach")) {
        free(c);
        return NULL;
    }
    return c;
}

void redis_conn_close(redis_conn *c) {
    if (!c) return;
    drop_ctx(c);
    free(c);
}

/* After a command got no reply: log once, drop the connection. 0 when stopping. */
static int connection_lost(redis_conn *c) {
    if (!c->lost)
        fprintf(stderr, "%s: lost the connection to Redis at %s:%d (%s); retrying\n", c->who, c->url.host,
                c->url.port, c->ctx->errstr);
    c->lost = 1;
    drop_ctx(c);
    return !stopping(c);
}

/* A restarted Redis answers LOADING while it reads its append-only file: the
 * command is tried again after a moment, like a lost connection. 1 to retry. */
static int loading(redis_conn *c, redisReply *r) {
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "LOADING", 7) || stopping(c)) return 0;
    freeReplyObject(r);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    return 1;
}

redisReply *redis_cmd_argv(redis_conn *c, int argc, const char **argv, const size_t *lens) {
    for (;;) {
        if (!c->ctx && !reconnect(c, "lost the connection to")) return NULL;
        redisReply *r = redisCommandArgv(c->ctx, argc, argv, lens);
        if (r && loading(c, r)) continue;
        if (r) return r;
        if (!connection_lost(c)) return NULL;
    }
}

redisReply *redis_cmd(redis_conn *c, const char *fmt, ...) {
    for (;;) {
        if (!c->ctx && !reconnect(c, "lost the connection to")) return NULL;
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = redisvCommand(c->ctx, fmt, ap);
        va_end(ap);
        if (r && loading(c, r)) continue;
        if (r) return r;
        if (!connection_lost(c)) return NULL;
    }
}

/* KEYS: stream, result, job (submission record); ARGV: id, params, record TTL.
 * The worker removes a job's entry only after its result is stored, so an
 * entry that is gone without a result means the job is lost or expired. */
static const char *submit_script =
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end\n"
    "local e = redis.call('GET', KEYS[3])\n"
    "if e and #redis.call('XRANGE', KEYS[1], e, e) > 0 then return 1 end\n"
    "e = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'params', ARGV[2])\n"
    "redis.call('SET', KEYS[3], e, 'EX', tonumber(ARGV[3]))\n"
    "return 0\n";

redis_job_state redis_job_submit(redis_conn *c, const char *model, const char *id, const char *params, char *err,
                                 size_t errn) {
    char stream[RK_MAX], result[RK_MAX], job[RK_MAX];
    rk_stream(stream, model);
    rk_result(result, id);
    rk_job(job, id);
    redisReply *r = redis_cmd(c, "EVAL %s 3 %s %s %s %s %s %d", submit_script, stream, result, job, id, params,
                              RK_JOB_TTL);
    redis_job_state st = REDIS_JOB_ERROR;
    if (!r) snprintf(err, errn, "stopped before Redis answered");
    else if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2) st = (redis_job_state)r->integer;
    else snprintf(err, errn, "submitting job %s: %s", id, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return st;
}
/* ---- look-ups ---------------------------------------------------------------------------- */

static const char *exists_script = "local r = {}\n"
                                   "for i, k in ipairs(KEYS) do r[i] = redis.call('EXISTS', k) end\n"
                                   "return r\n";

int redis_keys_exist(redis_conn *c, const char *const *keys, int n, int *out, char *err, size_t errn) {
    const char **argv = malloc((size_t)(n + 3) * sizeof *argv);
    size_t *lens = malloc((size_t)(n + 3) * sizeof *lens);
    char nkeys[16];
    int ok = 0;
    if (!argv || !lens) {
        snprintf(err, errn, "out of memory");
        goto out;
    }
    snprintf(nkeys, sizeof nkeys, "%d", n);
    argv[0] = "EVAL", argv[1] = exists_script, argv[2] = nkeys;
    for (int i = 0; i < n; i++) argv[i + 3] = keys[i];
    for (int i = 0; i < n + 3; i++) lens[i] = strlen(argv[i]);
    redisReply *r = redis_cmd_argv(c, n + 3, argv, lens);
    if (!r) snprintf(err, errn, "stopped before Redis answered");
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n)
        snprintf(err, errn, "looking up results: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else {
        for (int i = 0; i < n; i++)
            out[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1;
        ok = 1;
    }
    freeReplyObject(r);
out:
    free(argv);
    free(lens);
    return ok;
}

json_t *redis_workers(redis_conn *c) {
    char pattern[RK_MAX];
    rk_worker(pattern, "*");
    char cursor[32] = "0";
    json_t *out = json_array();
    if (!out) return NULL;
    do {
        redisReply *r = redis_cmd(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r) {
            json_decref(out);
            return NULL;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) { /* an error reply: no list rather than an empty one */
            freeReplyObject(r);
            json_decref(out);
            return NULL;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *k = r->element[1]->element[i];
            if (k->type != REDIS_REPLY_STRING) continue;
            redisReply *v = redis_cmd(c, "GET %b", k->str, k->len);
            json_t *o = v && v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, NULL) : NULL;
            if (json_is_object(o) && json_is_string(json_object_get(o, "model")))
                json_array_append(out, o);
            json_decref(o);
            freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") && !stopping(c));
    return out;
}

/* ---- pub/sub -------------------------------------------------------------------------------- */

int redis_psubscribe(redis_conn *c, const char *pattern) {
    snprintf(c->pattern, sizeof c->pattern, "%s", pattern);
    for (;;) {
        if (!c->ctx && !reconnect(c, "lost the connection to")) return 0;
        if (redisAppendCommand(c->ctx, "PSUBSCRIBE %s", c->pattern) == REDIS_OK) {
            int done = 0;
            while (!done) /* flush the command out */
                if (redisBufferWrite(c->ctx, &done) != REDIS_OK) break;
            if (done) return 1;
        }
        if (!connection_lost(c)) return 0;
    }
}

int redis_sub_next(redis_conn *c, int timeout_ms, redisReply **msg, const char **channel, const char **payload,
                   size_t *payload_len) {
    *msg = NULL;
    if (!c->ctx && (!reconnect(c, "lost the connection to") || !redis_psubscribe(c, c->pattern))) return 0;
    for (int waited = 0;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(c->ctx, &r) != REDIS_OK) {
            connection_lost(c);
            return 0;
        }
        redisReply *m = r;
        if (m) {
            /* ["pmessage", pattern, channel, payload]; the "psubscribe" confirmation is skipped */
            if (m->type == REDIS_REPLY_ARRAY && m->elements == 4 && m->element[0]->type == REDIS_REPLY_STRING &&
                !strcmp(m->element[0]->str, "pmessage") && m->element[2]->type == REDIS_REPLY_STRING &&
                m->element[3]->type == REDIS_REPLY_STRING) {
                *msg = m;
                *channel = m->element[2]->str;
                *payload = m->element[3]->str;
                *payload_len = m->element[3]->len;
                return 1;
            }
            freeReplyObject(m);
            continue;
        }
        if (waited || stopping(c)) return 0;
        struct pollfd p = {.fd = c->ctx->fd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        waited = 1;
        if (n <= 0) return 0;
        if (redisBufferRead(c->ctx) != REDIS_OK) {
            connection_lost(c);
            return 0;
        }
    }
}

#else
typedef int redis_queue_unused; /* built without hiredis */
#endif
