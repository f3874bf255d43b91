/* The Redis executor (see server_exec_redis.h). One thread does everything,
 * in a loop of at most ~100 ms:
 *
 *   1. jobs the table queued: to the model's stream (redis_job_submit);
 *   2. progress messages (PSUBSCRIBE leandiff:progress:*, on a second
 *      connection): the job is started, its image, stage and step follow;
 *   3. cancellations (DELETE, interrupt, a client gone): the job's cancel key,
 *      which the worker checks at every step and before starting a job;
 *   4. results (every 0.5 s, and at once after a job's final message): the
 *      images of the stored result go into the table, and the job ends;
 *   5. the workers' heartbeats (every 2 s): for /api/v1/status and to refuse
 *      jobs (503) while no worker serves the model;
 *   6. every 30 s the jobs still in flight are submitted again: redis_job_submit
 *      does nothing for a job that is queued, running or stored, and puts back
 *      one whose entry a Redis restart without its append-only file lost.
 *
 * The Redis connections retry while Redis is away (one log line when lost,
 * one when back); the HTTP side keeps answering meanwhile.
 */
#include "server_exec_redis.h"

#ifndef LD_HAVE_HIREDIS
server_executor *exec_redis_new(const redis_url *url, const char *model, const char **family_slot,
                                const server_config *cfg, ld_pipeline *local) {
    (void)url, (void)model, (void)family_slot, (void)cfg, (void)local;
    return NULL;
}

int exec_redis_pick_model(const redis_url *url, volatile sig_atomic_t *stop, char *model, size_t n, const char **family) {
    (void)url, (void)stop, (void)model, (void)n, (void)family;
    return 0;
}
#else
#include "redis_keys.h"
#include "redis_msg.h"
#include "redis_queue.h"
#include "redis_worker.h"
#include "server_image.h"
#include "server_jobs.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WHO "leandiff serve"

typedef struct {
    job *j;
    int image;       /* image of the last progress message, -1 before */
    int cancel_sent; /* its cancel key is set */
    int check;       /* its final message came: look at the result now */
} flight;

typedef struct {
    server_executor base; /* first: the table sees only this */
    redis_url url;
    char model[RK_MAX];
    const char **family_slot;
    const char *outputs;
    job_table *t;
    volatile sig_atomic_t stop;
    pthread_t thread;
    int thread_started;
    redis_conn *rc, *sub; /* commands; the progress subscription */
    flight *fl;           /* jobs in Redis, in the order they were submitted */
    int nfl, capfl;
    pthread_mutex_t mu;   /* guards the three below (read by HTTP threads) */
    json_t *workers;      /* the heartbeats last read */
    int connected, serving; /* Redis reached once; a live worker serves the model */
    /* the local worker (serve --redis -m DIR) */
    ld_pipeline *local;
    redis_worker_options wopt;
    redis_worker_stop wstop;
    char wname[128];
    pthread_t wthread;
    int wthread_started;
} exec_redis;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- submitting and ending jobs ------------------------------------------------------------- */

static void drop_flight(exec_redis *ex, int i) {
    memmove(&ex->fl[i], &ex->fl[i + 1], (size_t)(ex->nfl - i - 1) * sizeof *ex->fl);
    ex->nfl--;
}

static void submit_job(exec_redis *ex, job *j) {
    char err[512] = "";
    if (ex->nfl == ex->capfl) {
        int cap = ex->capfl ? 2 * ex->capfl : 64;
        flight *g = realloc(ex->fl, (size_t)cap * sizeof *g);
        if (!g) {
            jobs_end(ex->t, j, LD_ERR_NOMEM, "out of memory");
            return;
        }
        ex->fl = g;
        ex->capfl = cap;
    }
    /* j->req and j->seed do not change after jobs_submit: no lock needed */
    json_t *p = gen_request_to_json(&j->req, j->seed, err, sizeof err);
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    redis_job_state st = REDIS_JOB_ERROR;
    if (text) st = redis_job_submit(ex->rc, ex->model, j->id, text, err, sizeof err);
    else if (!err[0]) snprintf(err, sizeof err, "out of memory");
    free(text);
    if (st == REDIS_JOB_ERROR) {
        jobs_end(ex->t, j, ex->stop ? LD_ERR_CANCELLED : LD_ERR_IO, err);
        return;
    }
    ex->fl[ex->nfl++] = (flight){j, -1, 0, 0};
}

static redisReply *field(redisReply *h, const char *name) {
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && !strcmp(h->element[i]->str, name) &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->element[i + 1];
    return NULL;
}

/* The stored result of f's job into the table; 0 when it vanished meanwhile (look again later). */
static int collect(exec_redis *ex, flight *f) {
    job *j = f->j;
    char key[RK_MAX];
    rk_result(key, j->id);
    redisReply *h = redis_cmd(ex->rc, "HGETALL %s", key);
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
        freeReplyObject(h);
        return 0;
    }
    redisReply *status = field(h, "status"), *error = field(h, "error"), *code = field(h, "code");
    ld_status st = LD_OK;
    char msg[600] = "";
    jobs_started(ex->t, j);
    if (!status || strcmp(status->str, "done")) {
        long c = code ? strtol(code->str, NULL, 10) : LD_ERR_INTERNAL;
        st = status && !strcmp(status->str, "cancelled") ? LD_ERR_CANCELLED
             : c > LD_OK && c <= LD_ERR_INTERNAL     ? (ld_status)c
                                                      : LD_ERR_INTERNAL;
        snprintf(msg, sizeof msg, "%s", error ? error->str : "the worker stored a result without a status");
    }
    for (int i = 0; st == LD_OK && i < j->req.count; i++) {
        char name[32];
        snprintf(name, sizeof name, "png:%d", i);
        redisReply *png = field(h, name);
        snprintf(name, sizeof name, "infotext:%d", i);
        redisReply *text = field(h, name);
        snprintf(name, sizeof name, "params:%d", i);
        redisReply *params = field(h, name);
        if (!png || !text || !params) {
            st = LD_ERR_INTERNAL;
            snprintf(msg, sizeof msg, "the stored result of job %s has no image %d", j->id, i);
            break;
        }
        job_image img = {0};
        redis_params_info(params->str, params->len, &img.info);
        img.png = malloc(png->len ? png->len : 1);
        img.infotext = strdup(text->str);
        if (!img.png || !img.infotext) {
            free(img.png);
            free(img.infotext);
            st = LD_ERR_NOMEM;
            snprintf(msg, sizeof msg, "out of memory");
            break;
        }
        memcpy(img.png, png->str, png->len);
        img.png_len = png->len;
        if (ex->outputs)
            server_save_png(ex->outputs, j->id, j->created, i, img.png, img.png_len, img.file, sizeof img.file);
        jobs_begin_image(ex->t, j, i);
        jobs_image_done(ex->t, j, i, &img, img.info.seconds);
    }
    freeReplyObject(h);
    jobs_end(ex->t, j, st, msg);
    return 1;
}

/* Step 4: the jobs in flight whose result exists. */
static void poll_results(exec_redis *ex, int only_flagged) {
    enum { CHUNK = 256 };
    char keys[CHUNK][RK_MAX];
    const char *kp[CHUNK];
    int exists[CHUNK];
    job *js[CHUNK];
    for (int next = 0; next < ex->nfl && !ex->stop;) {
        int k = 0;
        for (; next < ex->nfl && k < CHUNK; next++) {
            if (only_flagged && !ex->fl[next].check) continue;
            ex->fl[next].check = 0;
            rk_result(keys[k], ex->fl[next].j->id);
            kp[k] = keys[k];
            js[k++] = ex->fl[next].j;
        }
        char err[300];
        if (!k) break;
        if (!redis_keys_exist(ex->rc, kp, k, exists, err, sizeof err)) {
            if (!ex->stop) fprintf(stderr, WHO ": %s\n", err);
            return;
        }
        for (int q = 0; q < k; q++) {
            if (!exists[q]) continue;
            for (int i = 0; i < ex->nfl; i++)
                if (ex->fl[i].j == js[q]) {
                    if (collect(ex, &ex->fl[i])) {
                        drop_flight(ex, i);
                        if (i < next) next--;
                    }
                    break;
                }
        }
    }
}

/* Step 3: cancel keys for the jobs the table cancelled; those cancelled before they started are let go. */
static void forward_cancels(exec_redis *ex) {
    for (int i = 0; i < ex->nfl; i++) {
        flight *f = &ex->fl[i];
        jobs_lock(ex->t);
        int cancel = f->j->cancel || job_finished(f->j), gone = job_finished(f->j);
        jobs_unlock(ex->t);
        if (cancel && !f->cancel_sent) {
            char key[RK_MAX];
            rk_cancel(key, f->j->id);
            freeReplyObject(redis_cmd(ex->rc, "SET %s 1 EX %d", key, RK_JOB_TTL));
            f->cancel_sent = 1;
        }
        if (gone) { /* cancelled while still queued: the worker skips it (cancel key) */
            jobs_end(ex->t, f->j, LD_ERR_CANCELLED, NULL);
            drop_flight(ex, i--);
        }
    }
}

/* Step 2: one progress message. */
static void on_message(exec_redis *ex, const char *channel, const char *payload, size_t len) {
    char prefix[RK_MAX];
    rk_progress(prefix, "");
    size_t pn = strlen(prefix);
    if (strncmp(channel, prefix, pn)) return;
    const char *id = channel + pn;
    flight *f = NULL;
    for (int i = 0; i < ex->nfl && !f; i++)
        if (!strcmp(ex->fl[i].j->id, id)) f = &ex->fl[i];
    if (!f) return; /* another front-end's job, or one finished here */
    redis_progress p;
    redis_msg_kind k = redis_progress_parse(payload, len, f->j->req.count, &p);
    if (k == REDIS_MSG_FINAL) {
        f->check = 1;
    } else if (k == REDIS_MSG_PROGRESS) {
        jobs_started(ex->t, f->j);
        if (p.image != f->image) jobs_begin_image(ex->t, f->j, p.image);
        f->image = p.image;
        jobs_progress(ex->t, f->j, p.stage, p.step, p.total);
    }
}

/* ---- workers ------------------------------------------------------------------------------------- */

/* The family names as static strings (the server keeps pointers to them). */
static const char *known_family(const char *f) {
    static const char *const names[] = {"sdxl", "wuerstchen", "stable-cascade"};
    for (size_t i = 0; f && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(f, names[i])) return names[i];
    return NULL;
}

/* Step 5. */
static void refresh_workers(exec_redis *ex) {
    json_t *ws = redis_workers(ex->rc);
    if (!ws) return;
    const char *family = NULL;
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        if (strcmp(json_string_value(json_object_get(w, "model")), ex->model)) continue;
        family = known_family(json_string_value(json_object_get(w, "family")));
        if (family) break;
    }
    if (family && strcmp(*ex->family_slot, family)) { /* learned once: a model keeps its family */
        jobs_lock(ex->t);
        ex->t->family = family;
        jobs_unlock(ex->t);
        __atomic_store_n(ex->family_slot, family, __ATOMIC_RELEASE);
        fprintf(stderr, WHO ": model %s is served by workers (family %s)\n", ex->model, family);
    }
    pthread_mutex_lock(&ex->mu);
    json_decref(ex->workers);
    ex->workers = ws;
    ex->connected = 1;
    ex->serving = family != NULL;
    pthread_mutex_unlock(&ex->mu);
}

int exec_redis_pick_model(const redis_url *url, volatile sig_atomic_t *stop, char *model, size_t n, const char **family) {
    redis_conn *c = redis_conn_open(url, WHO, stop);
    json_t *ws = c ? redis_workers(c) : NULL;
    redis_conn_close(c);
    if (!ws) return 0;
    const char *first = NULL;
    int several = 0;
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        const char *m = json_string_value(json_object_get(w, "model"));
        if (!first) {
            first = m;
            *family = known_family(json_string_value(json_object_get(w, "family")));
        } else {
            several |= strcmp(first, m) != 0;
        }
    }
    int ok = first && !several && strlen(first) < n && strlen(first) <= 200;
    if (ok) snprintf(model, n, "%s", first);
    else if (!first)
        fprintf(stderr, WHO ": no worker is running to learn the model from; give --redis-model NAME (a worker's "
                        "model folder name)\n");
    else {
        fprintf(stderr, WHO ": the running workers serve several models; give --redis-model NAME:\n");
        json_array_foreach(ws, i, w) fprintf(stderr, "  %s (worker %s)\n", json_string_value(json_object_get(w, "model")),
                                              json_string_value(json_object_get(w, "name")));
    }
    if (ok && !*family) *family = "unknown";
    json_decref(ws);
    return ok;
}

/* ---- the thread ---------------------------------------------------------------------------------- */

static void *run(void *arg) {
    exec_redis *ex = arg;
    ex->rc = redis_conn_open(&ex->url, WHO, &ex->stop);
    ex->sub = ex->rc ? redis_conn_open(&ex->url, WHO " (progress subscription)", &ex->stop) : NULL;
    if (ex->sub && !redis_psubscribe(ex->sub, "leandiff:progress:*")) {
        redis_conn_close(ex->sub);
        ex->sub = NULL;
    }
    if (ex->sub) fprintf(stderr, WHO ": connected to Redis at %s:%d, model %s\n", ex->url.host, ex->url.port, ex->model);
    double t_results = 0, t_workers = 0, t_resubmit = mono_now();
    while (!ex->stop && ex->sub) {
        double now = mono_now();
        if (now - t_workers >= 2) {
            refresh_workers(ex);
            t_workers = now;
        }
        job *j;
        while (!ex->stop && (j = jobs_take(ex->t, 0))) submit_job(ex, j);
        redisReply *m;
        const char *channel, *payload;
        size_t len;
        int flagged = 0;
        /* the messages that came, waiting up to 100 ms for the first */
        for (int n = 0; n < 500 && redis_sub_next(ex->sub, n ? 0 : 100, &m, &channel, &payload, &len); n++) {
            on_message(ex, channel, payload, len);
            freeReplyObject(m);
        }
        for (int i = 0; i < ex->nfl; i++) flagged |= ex->fl[i].check;
        forward_cancels(ex);
        now = mono_now();
        if (now - t_results >= 0.5 || flagged) {
            poll_results(ex, now - t_results < 0.5);
            if (now - t_results >= 0.5) t_results = now;
        }
        if (now - t_resubmit >= 30) {
            for (int i = 0; i < ex->nfl && !ex->stop; i++) {
                char err[512];
                json_t *p = gen_request_to_json(&ex->fl[i].j->req, ex->fl[i].j->seed, err, sizeof err);
                char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
                json_decref(p);
                if (text && redis_job_submit(ex->rc, ex->model, ex->fl[i].j->id, text, err, sizeof err) ==
                                REDIS_JOB_SUBMITTED)
                    fprintf(stderr, WHO ": job %s was no longer queued and had no result; submitted again\n",
                            ex->fl[i].j->id);
                free(text);
            }
            t_resubmit = now;
        }
    }
    /* Stopping: the table cancelled every job; the workers are told (best effort), the jobs let go. */
    for (int i = 0; i < ex->nfl; i++) {
        char key[RK_MAX];
        rk_cancel(key, ex->fl[i].j->id);
        if (ex->rc && !ex->fl[i].cancel_sent) freeReplyObject(redis_cmd(ex->rc, "SET %s 1 EX %d", key, RK_JOB_TTL));
        jobs_end(ex->t, ex->fl[i].j, LD_ERR_CANCELLED, NULL);
    }
    ex->nfl = 0;
    job *j;
    while ((j = jobs_take(ex->t, 0))) jobs_end(ex->t, j, LD_ERR_CANCELLED, NULL);
    return NULL;
}

/* The local worker's thread: a connection of its own, then the worker loop. */
static void *run_local_worker(void *arg) {
    exec_redis *ex = arg;
    redis_conn *c = redis_conn_open(&ex->url, "leandiff serve (local worker)", &ex->wstop.give_up);
    if (c && redis_worker_serve(c, ex->local, &ex->wopt, &ex->wstop) && !ex->wstop.hard_stop)
        fprintf(stderr, WHO ": the local worker stopped; the front-end goes on with the other workers\n");
    redis_conn_close(c);
    return NULL;
}

/* ---- the executor interface ------------------------------------------------------------------- */

static int redis_start(server_executor *base, job_table *t) {
    exec_redis *ex = (exec_redis *)base;
    ex->t = t;
    if (pthread_create(&ex->thread, NULL, run, ex) != 0) {
        fprintf(stderr, WHO ": cannot start the Redis thread\n");
        return 0;
    }
    ex->thread_started = 1;
    if (ex->local && pthread_create(&ex->wthread, NULL, run_local_worker, ex) != 0) {
        fprintf(stderr, WHO ": cannot start the local worker's thread\n");
        ex->stop = 1;
        pthread_join(ex->thread, NULL);
        ex->thread_started = 0;
        return 0;
    }
    ex->wthread_started = ex->local != NULL;
    return 1;
}

static void redis_stop(server_executor *base) {
    exec_redis *ex = (exec_redis *)base;
    /* the local worker stops at its next step; its job stays pending for another worker */
    ex->wstop.soft_stop = ex->wstop.hard_stop = ex->wstop.give_up = 1;
    ex->stop = 1;
    if (ex->thread_started) pthread_join(ex->thread, NULL);
    if (ex->wthread_started) pthread_join(ex->wthread, NULL);
    ex->thread_started = ex->wthread_started = 0;
}

static void redis_free(server_executor *base) {
    exec_redis *ex = (exec_redis *)base;
    redis_conn_close(ex->rc);
    redis_conn_close(ex->sub);
    free(ex->fl);
    json_decref(ex->workers);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
}

static int redis_available(server_executor *base, char *why, size_t n) {
    exec_redis *ex = (exec_redis *)base;
    pthread_mutex_lock(&ex->mu);
    int ok = ex->serving;
    if (!ex->connected) {
        snprintf(why, n, "no worker is serving model %s: Redis at %s:%d is not reachable yet", ex->model,
                 ex->url.host, ex->url.port);
    } else if (!ok) {
        size_t len = (size_t)snprintf(why, n, "no worker is serving model %s", ex->model);
        size_t i;
        json_t *w;
        json_array_foreach(ex->workers, i, w) {
            if (len >= n) break;
            len += (size_t)snprintf(why + len, n - len, "%s%s", i ? ", " : " (workers seen: ",
                                    json_string_value(json_object_get(w, "model")));
            if (i + 1 == json_array_size(ex->workers) && len < n) len += (size_t)snprintf(why + len, n - len, ")");
        }
    }
    pthread_mutex_unlock(&ex->mu);
    return ok;
}

static json_t *redis_status(server_executor *base) {
    exec_redis *ex = (exec_redis *)base;
    json_t *o = json_object();
    char where[300];
    snprintf(where, sizeof where, "%s:%d/%d", ex->url.host, ex->url.port, ex->url.db);
    json_object_set_new(o, "executor", json_string("redis"));
    json_object_set_new(o, "redis", json_string(where));
    pthread_mutex_lock(&ex->mu);
    json_object_set_new(o, "workers", ex->workers ? json_deep_copy(ex->workers) : json_array());
    json_object_set_new(o, "serving", json_boolean(ex->serving));
    pthread_mutex_unlock(&ex->mu);
    return o;
}

server_executor *exec_redis_new(const redis_url *url, const char *model, const char **family_slot,
                                const server_config *cfg, ld_pipeline *local) {
    exec_redis *ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    ex->base.name = "redis";
    ex->base.start = redis_start;
    ex->base.stop = redis_stop;
    ex->base.free = redis_free;
    ex->base.available = redis_available;
    ex->base.status = redis_status;
    ex->url = *url;
    snprintf(ex->model, sizeof ex->model, "%s", model);
    ex->family_slot = family_slot;
    ex->outputs = cfg->outputs;
    ex->local = local;
    redis_worker_options_init(&ex->wopt);
    redis_worker_default_name(ex->wname, sizeof ex->wname);
    ex->wopt.name = ex->wname;
    ex->wopt.max_size = cfg->max_size;
    ex->wopt.max_steps = cfg->max_steps;
    ex->wopt.lora_dir = cfg->lora_dir;
    pthread_mutex_init(&ex->mu, NULL);
    return &ex->base;
}
#endif
