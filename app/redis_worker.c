/* One worker of the shared queue (see redis_worker.h): the consumer-group
 * loop, one job at a time through ld_generate (the same image path as
 * `leandiff serve`'s local executor: server_image.h), progress published
 * after every step, the result stored once, then acknowledged. */
#ifdef LD_HAVE_HIREDIS
#include "redis_worker.h"

#include "redis_keys.h"
#include "server_image.h"
#include "server_request.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    redis_conn *rc;
    ld_pipeline *pipe;
    ld_ctx *ctx;
    const redis_worker_options *o;
    redis_worker_stop *stop;
    server_config cfg;
    const char *name, *model, *family;
    char stream[RK_MAX], group[RK_MAX];
    int claim_after, result_ttl;
    int cancelled;   /* the running job's cancel key was seen */
    int step, total; /* the running job's last progress */
    double beat;     /* when the worker key was last written */
} worker;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int reply_ok(redisReply *r) { return r && r->type != REDIS_REPLY_ERROR; }

static void heartbeat(worker *w, const char *job) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:I}", "name", w->name, "model", w->model, "family", w->family,
                          "job", job, "seen", (json_int_t)time(NULL));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char key[RK_MAX];
    rk_worker(key, w->name);
    if (s) freeReplyObject(redis_cmd(w->rc, "SET %s %s EX %d", key, s, RK_WORKER_TTL));
    free(s);
    json_decref(o);
    w->beat = mono_now();
}

typedef struct {
    worker *w;
    const char *entry, *job;
    int image, count;
    double t0;
} progress_ctx;

/* While a job runs its worker beats, and claims its stream entry again (XCLAIM
 * to itself resets the entry's idle time): only the job of a worker that
 * stopped answering is reclaimed after --claim-after s, however long it runs. */
static void keep_alive(progress_ctx *pc) {
    worker *w = pc->w;
    double every = w->claim_after / 3.0;
    if (every > RK_WORKER_TTL / 3.0) every = RK_WORKER_TTL / 3.0;
    if (mono_now() - w->beat < every) return;
    heartbeat(w, pc->job);
    freeReplyObject(redis_cmd(w->rc, "XCLAIM %s %s %s 0 %s JUSTID", w->stream, w->group, w->name, pc->entry));
}

/* Publishes the progress and looks at the job's cancel key in one round trip. */
static const char *progress_script = "redis.call('PUBLISH', ARGV[1], ARGV[2])\n"
                                     "return redis.call('EXISTS', KEYS[1])\n";

static int on_progress(void *user, const char *stage, int step, int total, double stage_seconds) {
    progress_ctx *pc = user;
    pc->w->step = step;
    pc->w->total = total;
    keep_alive(pc);
    double el = mono_now() - pc->t0;
    double eta = step > 0 ? el / step * (total - step) : -1;
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f}", "id", pc->job, "worker", pc->w->name, "stage",
                          stage, "image", pc->image, "count", pc->count, "step", step, "total", total, "eta", eta);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char ch[RK_MAX], cancel[RK_MAX];
    rk_progress(ch, pc->job);
    rk_cancel(cancel, pc->job);
    if (s) {
        redisReply *r = redis_cmd(pc->w->rc, "EVAL %s 1 %s %s %s", progress_script, cancel, ch, s);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) pc->w->cancelled = 1;
        freeReplyObject(r);
    }
    free(s);
    json_decref(o);
    return pc->w->stop->hard_stop != 0 || pc->w->cancelled;
}

/* Polled inside the model forwards: a hard stop (or a cancel seen at the last
 * step) does not wait for the step's end. */
static int on_cancel(void *user) {
    progress_ctx *pc = user;
    keep_alive(pc);
    return pc->w->stop->hard_stop != 0 || pc->w->cancelled;
}

/* The result hash is written in one EVAL that does nothing when it exists:
 * a job that ran twice (reclaimed from a slow worker) is stored once. When
 * the hash exists and names this worker, the EVAL is a retry after a lost
 * reply (Redis went away between running it and answering; redis_cmd_argv
 * sends it again): that is this worker's store, so it returns 1 as well. */
static const char *store_script = "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
                                  "  if redis.call('HGET', KEYS[1], 'worker') == ARGV[3] then return 1 end\n"
                                  "  return 0\n"
                                  "end\n"
                                  "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
                                  "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))\n"
                                  "return 1\n";

typedef struct {
    const char **argv;
    size_t *lens;
    char **owned;
    int n, cap;
} argbuf;

/* Room for n more arguments; after it, n calls of arg_add cannot fail. */
static int arg_reserve(argbuf *a, int n) {
    if (a->n + n <= a->cap) return 1;
    int cap = a->cap ? a->cap * 2 : 32;
    while (cap < a->n + n) cap *= 2;
    const char **nv = realloc(a->argv, cap * sizeof *nv);
    if (nv) a->argv = nv;
    size_t *nl = realloc(a->lens, cap * sizeof *nl);
    if (nl) a->lens = nl;
    char **no = realloc(a->owned, cap * sizeof *no);
    if (no) a->owned = no;
    if (!nv || !nl || !no) return 0;
    a->cap = cap;
    return 1;
}

/* Appends s (len bytes); own: a->free releases it (also on failure here). */
static int arg_add(argbuf *a, const char *s, size_t len, int own) {
    if (!s || !arg_reserve(a, 1)) {
        if (own) free((char *)s);
        return 0;
    }
    a->argv[a->n] = s;
    a->lens[a->n] = len;
    a->owned[a->n] = own ? (char *)s : NULL;
    a->n++;
    return 1;
}

static int arg_str(argbuf *a, const char *s) { return arg_add(a, s, strlen(s), 0); }

static int arg_fmt(argbuf *a, const char *fmt, long long v) {
    char *s = malloc(32);
    if (!s) return 0;
    snprintf(s, 32, fmt, v);
    return arg_add(a, s, strlen(s), 1);
}

static void arg_free(argbuf *a) {
    for (int i = 0; i < a->n; i++) free(a->owned[i]);
    free(a->argv);
    free(a->lens);
    free(a->owned);
}

/* Stores the result; returns 1 when this call wrote it, 0 when it existed, -1 on failure. */
static int store_result(worker *w, const char *job, argbuf *fields) {
    argbuf a = {0};
    char key[RK_MAX];
    rk_result(key, job);
    int ok = arg_str(&a, "EVAL") && arg_str(&a, store_script) && arg_str(&a, "1") && arg_str(&a, key) &&
             arg_fmt(&a, "%lld", w->result_ttl) && arg_str(&a, "worker") && arg_str(&a, w->name) &&
             arg_str(&a, "model") && arg_str(&a, w->model);
    for (int i = 0; ok && i < fields->n; i++) ok = arg_add(&a, fields->argv[i], fields->lens[i], 0);
    int res = -1;
    if (ok) {
        redisReply *r = redis_cmd_argv(w->rc, a.n, a.argv, a.lens);
        if (r && r->type == REDIS_REPLY_INTEGER) res = (int)r->integer;
        else if (r) fprintf(stderr, "leandiff worker %s: storing job %s: %s\n", w->name, job, r->str ? r->str : "?");
        freeReplyObject(r);
    }
    arg_free(&a);
    return res;
}

static void finish(worker *w, const char *entry, const char *job, const char *state) {
    freeReplyObject(redis_cmd(w->rc, "XACK %s %s %s", w->stream, w->group, entry));
    freeReplyObject(redis_cmd(w->rc, "XDEL %s %s", w->stream, entry));
    if (job) {
        char ch[RK_MAX];
        rk_progress(ch, job);
        freeReplyObject(redis_cmd(w->rc, "PUBLISH %s {\"id\":\"%s\",\"state\":\"%s\"}", ch, job, state));
    }
}

/* An error result: the message and its ld_status code (LD_ERR_INVALID_ARGUMENT for a bad job), or a
 * cancelled one (code LD_ERR_CANCELLED, status "cancelled"). */
static void store_error(worker *w, const char *entry, const char *job, ld_status code, const char *msg) {
    const int cancelled = code == LD_ERR_CANCELLED;
    if (cancelled) fprintf(stderr, "leandiff worker %s: job %s: %s\n", w->name, job, msg);
    else fprintf(stderr, "leandiff worker %s: job %s failed: %s\n", w->name, job ? job : "(no id)", msg);
    if (job) {
        argbuf f = {0};
        if (arg_str(&f, "status") && arg_str(&f, cancelled ? "cancelled" : "error") && arg_str(&f, "error") &&
            arg_str(&f, msg) && arg_str(&f, "code") && arg_fmt(&f, "%lld", (long long)code))
            store_result(w, job, &f);
        arg_free(&f);
    }
    finish(w, entry, job, cancelled ? "cancelled" : "error");
}

/* The parameters really used (serve --redis rebuilds ld_gen_info from them). */
static char *params_json(const gen_request *req, const ld_gen_info *info) {
    json_t *o = json_pack("{s:s, s:s?, s:i, s:i, s:i, s:f, s:i, s:f, s:s, s:s, s:I, s:s, s:s, s:f}", "prompt",
                          req->prompt, "negative_prompt", req->negative_prompt, "width", info->width, "height",
                          info->height, "steps", info->steps, "cfg_scale", (double)info->cfg_scale, "prior_steps",
                          info->prior_steps, "prior_cfg_scale", (double)info->prior_cfg_scale, "sampler", info->sampler,
                          "schedule", info->schedule, "seed", (json_int_t)info->seed, "model", info->model, "family",
                          info->family, "seconds", info->seconds);
    if (o && info->strength > 0) json_object_set_new(o, "strength", json_real(info->strength));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* Runs one job. Returns 0 to go on, 1 when a hard stop left it unacknowledged. */
static int run_job(worker *w, const char *entry, const char *job, const char *params) {
    if (!job || !rk_valid_id(job)) {
        store_error(w, entry, NULL, LD_ERR_INVALID_ARGUMENT, "stream entry without a valid 'id' field (1-64 of A-Z a-z 0-9 _ -)");
        return 0;
    }
    char key[RK_MAX];
    rk_result(key, job);
    redisReply *r = redis_cmd(w->rc, "EXISTS %s", key);
    int exists = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (exists) { /* done by a worker that died before XACK */
        fprintf(stderr, "leandiff worker %s: job %s already has a result; acknowledging\n", w->name, job);
        finish(w, entry, NULL, "done");
        return 0;
    }
    rk_cancel(key, job);
    r = redis_cmd(w->rc, "EXISTS %s", key);
    int cancelled = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (cancelled) {
        store_error(w, entry, job, LD_ERR_CANCELLED, "cancelled before it started");
        return 0;
    }
    if (!params) {
        store_error(w, entry, job, LD_ERR_INVALID_ARGUMENT, "stream entry without a 'params' field");
        return 0;
    }
    json_error_t jerr;
    json_t *body = json_loads(params, 0, &jerr);
    if (!body || !json_is_object(body)) {
        char msg[300];
        snprintf(msg, sizeof msg, "params is not a JSON object (%s)", body ? "not an object" : jerr.text);
        json_decref(body);
        store_error(w, entry, job, LD_ERR_INVALID_ARGUMENT, msg);
        return 0;
    }
    gen_request req;
    gen_request_init(&req);
    char err[512], field[64];
    int ok = gen_request_from_json(&w->cfg, w->family, REQ_NATIVE, body, &req, err, sizeof err, field, sizeof field);
    json_decref(body);
    if (!ok) {
        gen_request_free(&req);
        store_error(w, entry, job, LD_ERR_INVALID_ARGUMENT, err);
        return 0;
    }
    if (req.seed < 0) req.seed = (int64_t)gen_request_random_seed();
    heartbeat(w, job);
    w->cancelled = w->step = w->total = 0;
    argbuf f = {0};
    char *failure = NULL;
    ld_status st = LD_OK;
    double t_job = mono_now();
    ok = arg_str(&f, "status") && arg_str(&f, "done") && arg_str(&f, "count") && arg_fmt(&f, "%lld", req.count);
    for (int i = 0; ok && st == LD_OK && i < req.count; i++) {
        ld_gen_params gp;
        ld_image init, mask;
        gen_request_params(&req, (uint64_t)req.seed, i, &gp, &init, &mask);
        gp.lora_dir = w->cfg.lora_dir;
        progress_ctx pc = {w, entry, job, i, req.count, mono_now()};
        gp.progress = on_progress;
        gp.progress_user = &pc;
        gp.cancel = on_cancel;
        gp.cancel_user = &pc;
        ld_image img;
        ld_gen_info info;
        st = ld_generate(w->ctx, w->pipe, &gp, &img, &info);
        if (st != LD_OK) break;
        char *text = server_infotext(w->ctx, &req, &info);
        unsigned char *png = NULL;
        size_t len = 0;
        int pok = text && server_png_encode(w->ctx, &img, text, &png, &len);
        ld_image_free(&img);
        char *pj = pok ? params_json(&req, &info) : NULL;
        char *names[3] = {malloc(32), malloc(32), malloc(32)};
        ok = pok && pj && names[0] && names[1] && names[2] && arg_reserve(&f, 6);
        if (!ok) {
            free(text);
            free(png);
            free(pj);
            for (int k = 0; k < 3; k++) free(names[k]);
            if (st == LD_OK && ld_ctx_status(w->ctx) == LD_OK) failure = strdup("out of memory");
            break;
        }
        snprintf(names[0], 32, "png:%d", i);
        snprintf(names[1], 32, "infotext:%d", i);
        snprintf(names[2], 32, "params:%d", i);
        arg_add(&f, names[0], strlen(names[0]), 1);
        arg_add(&f, (char *)png, len, 1);
        arg_add(&f, names[1], strlen(names[1]), 1);
        arg_add(&f, text, strlen(text), 1);
        arg_add(&f, names[2], strlen(names[2]), 1);
        arg_add(&f, pj, strlen(pj), 1);
    }
    if (st == LD_ERR_CANCELLED && w->stop->hard_stop) {
        fprintf(stderr, "leandiff worker %s: stopped in the middle of job %s; it stays pending for another worker\n",
                w->name, job);
        arg_free(&f);
        gen_request_free(&req);
        return 1;
    }
    if (st == LD_ERR_CANCELLED && w->cancelled) {
        char msg[96];
        snprintf(msg, sizeof msg, "cancelled at step %d of %d", w->step, w->total);
        store_error(w, entry, job, LD_ERR_CANCELLED, msg);
    } else if (st != LD_OK || !ok) {
        const char *msg = failure ? failure : ld_ctx_error(w->ctx);
        store_error(w, entry, job, st != LD_OK ? st : LD_ERR_NOMEM, msg && *msg ? msg : "generation failed");
    } else {
        ok = arg_str(&f, "seconds") && arg_fmt(&f, "%lld", (long long)((mono_now() - t_job) * 1000)) &&
             arg_str(&f, "finished") && arg_fmt(&f, "%lld", (long long)time(NULL));
        int res = ok ? store_result(w, job, &f) : -1;
        if (res == 1)
            fprintf(stderr, "leandiff worker %s: job %s stored (%d image%s, %.1f s)\n", w->name, job, req.count,
                    req.count == 1 ? "" : "s", mono_now() - t_job);
        else if (res == 0)
            fprintf(stderr, "leandiff worker %s: job %s was stored by another worker meanwhile\n", w->name, job);
        if (res >= 0) finish(w, entry, job, "done");
        else store_error(w, entry, job, LD_ERR_IO, "cannot store the result");
    }
    ld_ctx_clear_error(w->ctx);
    free(failure);
    arg_free(&f);
    gen_request_free(&req);
    heartbeat(w, NULL);
    return 0;
}

/* Entry = [id, [field, value, ...]] of a stream reply. */
static int run_entry(worker *w, redisReply *e) {
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *entry = e->element[0]->str;
    const char *job = NULL, *params = NULL;
    redisReply *kv = e->element[1];
    if (kv->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            if (kv->element[i]->type != REDIS_REPLY_STRING || kv->element[i + 1]->type != REDIS_REPLY_STRING) continue;
            if (!strcmp(kv->element[i]->str, "id")) job = kv->element[i + 1]->str;
            if (!strcmp(kv->element[i]->str, "params")) params = kv->element[i + 1]->str;
        }
    w->stop->busy = 1;
    int r = run_job(w, entry, job, params);
    w->stop->busy = 0;
    if (w->stop->soft_stop && !w->stop->hard_stop) w->stop->give_up = 1;
    return r;
}

static int serve_queue(worker *w) {
    redisReply *r = redis_cmd(w->rc, "XGROUP CREATE %s %s 0 MKSTREAM", w->stream, w->group);
    if (!r) return 1;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9)) {
        fprintf(stderr, "leandiff worker %s: XGROUP CREATE %s: %s\n", w->name, w->stream, r->str);
        freeReplyObject(r);
        return 1;
    }
    freeReplyObject(r);
    fprintf(stderr, "leandiff worker %s: serving %s (stream %s, group %s)\n", w->name, w->model, w->stream, w->group);
    if (w->o->announce) {
        printf("worker %s ready on %s\n", w->name, w->stream);
        fflush(stdout);
    }
    while (!w->stop->soft_stop) {
        heartbeat(w, NULL);
        /* first the jobs another worker left behind */
        r = redis_cmd(w->rc, "XAUTOCLAIM %s %s %s %lld 0-0 COUNT 1", w->stream, w->group, w->name,
                      (long long)w->claim_after * 1000);
        if (!r) break;
        if (reply_ok(r) && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
            r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements > 0) {
            redisReply *e = r->element[1]->element[0];
            if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1)
                fprintf(stderr, "leandiff worker %s: reclaimed %s (idle for more than %d s)\n", w->name,
                        e->element[0]->str, w->claim_after);
            int stop = run_entry(w, e);
            freeReplyObject(r);
            if (stop) return 1;
            continue;
        }
        freeReplyObject(r);
        r = redis_cmd(w->rc, "XREADGROUP GROUP %s %s COUNT 1 BLOCK 1000 STREAMS %s >", w->group, w->name, w->stream);
        if (!r) break;
        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "leandiff worker %s: XREADGROUP: %s\n", w->name, r->str);
            if (strstr(r->str, "NOGROUP")) { /* the stream was deleted (FLUSHALL, restart without AOF) */
                freeReplyObject(r);
                freeReplyObject(redis_cmd(w->rc, "XGROUP CREATE %s %s 0 MKSTREAM", w->stream, w->group));
                continue;
            }
            sleep(1);
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
            redisReply *s = r->element[0];
            if (s->type == REDIS_REPLY_ARRAY && s->elements >= 2 && s->element[1]->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < s->element[1]->elements; i++)
                    if (run_entry(w, s->element[1]->element[i])) {
                        freeReplyObject(r);
                        return 1;
                    }
        }
        freeReplyObject(r);
    }
    char key[RK_MAX];
    rk_worker(key, w->name);
    freeReplyObject(redis_cmd(w->rc, "DEL %s", key)); /* returns at once when Redis is away and we gave up */
    fprintf(stderr, "leandiff worker %s: stopped\n", w->name);
    return 0;
}

void redis_worker_default_name(char *out, size_t n) {
    char host[64] = "worker";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(out, n, "%s-%ld", host, (long)getpid());
}

void redis_worker_options_init(redis_worker_options *o) {
    memset(o, 0, sizeof *o);
    o->claim_after = 60;
    o->result_ttl = 86400;
    o->max_size = 1024;
    o->max_steps = 150;
}

int redis_worker_serve(redis_conn *rc, ld_pipeline *pipe, const redis_worker_options *o, redis_worker_stop *stop) {
    worker w;
    memset(&w, 0, sizeof w);
    w.rc = rc;
    w.pipe = pipe;
    w.o = o;
    w.stop = stop;
    w.name = o->name;
    w.claim_after = o->claim_after;
    w.result_ttl = o->result_ttl;
    w.cfg.max_size = o->max_size;
    w.cfg.max_steps = o->max_steps;
    w.cfg.max_batch = 8;
    w.cfg.lora_dir = o->lora_dir;
    w.model = ld_pipeline_model_name(pipe);
    w.family = ld_pipeline_family(pipe);
    if (strlen(w.model) > 200) {
        fprintf(stderr, "leandiff worker: model name '%.40s...' too long\n", w.model);
        return 1;
    }
    w.ctx = ld_ctx_new();
    if (!w.ctx) {
        fprintf(stderr, "leandiff worker: out of memory\n");
        return 1;
    }
    rk_stream(w.stream, w.model);
    snprintf(w.group, sizeof w.group, "%s", RK_GROUP);
    int res = serve_queue(&w);
    ld_ctx_free(w.ctx);
    return res;
}
#else
typedef int redis_worker_unused; /* built without hiredis */
#endif
