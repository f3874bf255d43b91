/* `leandiff worker -m MODEL_DIR --redis URL`: one worker of a shared queue
 * (docs/scale-out.md). Loads the model once, joins the consumer group of the
 * model's jobs stream and runs one job at a time through ld_generate (the
 * same image path as `leandiff serve`'s local executor: server_image.h),
 * publishing progress, storing the result once under the job's key, then
 * acknowledging. Jobs left pending by a vanished worker are reclaimed with
 * XAUTOCLAIM. Built only with hiredis (LD_HAVE_HIREDIS); otherwise the
 * command says what is missing. */
#include "commands.h"

#include <stdio.h>

#ifndef LD_HAVE_HIREDIS
int cmd_worker(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "leandiff worker: this leandiff was built without hiredis; install libhiredis-dev "
                    "(tools/install-deps.sh) and rebuild to use the Redis queue\n");
    return 1;
}
#else
#include "cli_util.h"
#include "leandiff.h"
#include "redis_keys.h"
#include "redis_queue.h"
#include "server_image.h"
#include "server_request.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t soft_stop; /* finish the running job, then exit */
static volatile sig_atomic_t hard_stop; /* stop at the next step, leave the job for reclaim */
static volatile sig_atomic_t give_up;   /* stop retrying Redis (nothing would be lost) */
static volatile sig_atomic_t busy;

static void on_signal(int sig) {
    if (sig == SIGINT && soft_stop) hard_stop = 1;
    soft_stop = 1;
    if (hard_stop || !busy) give_up = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff worker -m MODEL_DIR --redis URL [options]\n\n"
            "  -m, --model DIR        diffusers pipeline folder (KOALA/SDXL, or a Wuerstchen / Cascade prior)\n"
            "      --decoder DIR      decoder pipeline folder (Wuerstchen / Stable Cascade)\n"
            "      --variant NAME     prefer <name>.NAME.safetensors weights (fp16, bf16)\n"
            "      --redis URL        redis://[[user]:password@]host[:port][/db] (rediss:// needs a TLS build)\n"
            "      --name NAME        consumer name in the group (default HOST-PID)\n"
            "  -t, --threads N        compute threads (default: all cores)\n"
            "      --claim-after S    take over jobs another worker left pending for S seconds (default 60)\n"
            "      --result-ttl S     keep results S seconds (default 86400)\n"
            "      --max-size PX      largest width / height accepted (default 1024)\n"
            "      --max-steps N      most steps accepted (default 150)\n"
            "      --lora-dir DIR     LoRA files that <lora:NAME:SCALE> prompt tags name (NAME.safetensors)\n"
            "  -v, --verbose          log more\n\n"
            "Jobs come from the stream leandiff:jobs:<model folder name>; see docs/scale-out.md.\n"
            "SIGTERM or SIGINT finish the running job, then exit; a second SIGINT stops at the next step\n"
            "and leaves the job for another worker.\n");
}

typedef struct {
    redis_conn *rc;
    ld_pipeline *pipe;
    ld_ctx *ctx;
    server_config cfg;
    const char *name, *model, *family;
    char stream[RK_MAX], group[RK_MAX];
    int claim_after, result_ttl;
    int verbose;
    int cancelled;   /* the running job's cancel key was seen */
    int step, total; /* the running job's last progress */
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
}

typedef struct {
    worker *w;
    const char *job;
    int image, count;
    double t0;
} progress_ctx;

/* Publishes the progress and looks at the job's cancel key in one round trip. */
static const char *progress_script = "redis.call('PUBLISH', ARGV[1], ARGV[2])\n"
                                     "return redis.call('EXISTS', KEYS[1])\n";

static int on_progress(void *user, const char *stage, int step, int total, double stage_seconds) {
    progress_ctx *pc = user;
    pc->w->step = step;
    pc->w->total = total;
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
    return hard_stop != 0 || pc->w->cancelled;
}

/* The result hash is written in one EVAL that does nothing when it exists:
 * a job that ran twice (reclaimed from a slow worker) is stored once. */
static const char *store_script = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
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
    w->cancelled = 0;
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
        progress_ctx pc = {w, job, i, req.count, mono_now()};
        gp.progress = on_progress;
        gp.progress_user = &pc;
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
    if (st == LD_ERR_CANCELLED && hard_stop) {
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
    busy = 1;
    int r = run_job(w, entry, job, params);
    busy = 0;
    if (soft_stop && !hard_stop) give_up = 1;
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
    printf("worker %s ready on %s\n", w->name, w->stream);
    fflush(stdout);
    while (!soft_stop) {
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
    if (!give_up || !hard_stop) freeReplyObject(redis_cmd(w->rc, "DEL %s", key));
    fprintf(stderr, "leandiff worker %s: stopped\n", w->name);
    return 0;
}

int cmd_worker(int argc, char **argv) {
    worker w;
    memset(&w, 0, sizeof w);
    const char *model_dir = NULL, *decoder = NULL, *variant = NULL, *url_s = NULL, *name = NULL;
    int threads = 0;
    w.claim_after = 60;
    w.result_ttl = 86400;
    w.cfg.max_size = 1024;
    w.cfg.max_steps = 150;
    w.cfg.max_batch = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            w.verbose = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "leandiff worker: %s needs a value (or is unknown)\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long x = 0;
        int ok = 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--decoder")) decoder = v;
        else if (!strcmp(a, "--variant")) variant = v;
        else if (!strcmp(a, "--redis")) url_s = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = cli_parse_int(a, v, 0, 4096, &x), threads = (int)x;
        else if (!strcmp(a, "--claim-after")) ok = cli_parse_int(a, v, 1, 86400 * 7, &x), w.claim_after = (int)x;
        else if (!strcmp(a, "--result-ttl")) ok = cli_parse_int(a, v, 1, 86400 * 365, &x), w.result_ttl = (int)x;
        else if (!strcmp(a, "--max-size")) ok = cli_parse_int(a, v, 64, 8192, &x), w.cfg.max_size = (int)x;
        else if (!strcmp(a, "--max-steps")) ok = cli_parse_int(a, v, 1, 1000, &x), w.cfg.max_steps = (int)x;
        else if (!strcmp(a, "--lora-dir")) w.cfg.lora_dir = v;
        else {
            fprintf(stderr, "leandiff worker: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!model_dir || !url_s) {
        fprintf(stderr, "leandiff worker: -m MODEL_DIR and --redis URL are required\n\n");
        usage(stderr);
        return 2;
    }
    redis_url url;
    char err[256];
    if (!redis_url_parse(url_s, &url, err, sizeof err)) {
        fprintf(stderr, "leandiff worker: %s\n", err);
        return 2;
    }
    char defname[128];
    if (!name) {
        char host[64] = "worker";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        snprintf(defname, sizeof defname, "%s-%ld", host, (long)getpid());
        name = defname;
    }
    if (!rk_valid_id(name)) {
        fprintf(stderr, "leandiff worker: --name '%s' must be 1-64 of A-Z a-z 0-9 _ - .\n", name);
        return 2;
    }
    w.name = name;
    cli_catch_stop_signals(on_signal);
    if (w.verbose) ld_set_log_level(LD_LOG_INFO);
    ld_set_threads(threads);

    w.rc = redis_conn_open(&url, "leandiff worker", &give_up);
    if (!w.rc) return 1;
    w.ctx = ld_ctx_new();
    ld_pipeline_options opt = {.model_dir = model_dir, .decoder_dir = decoder, .variant = variant, .vae_tiling = -1};
    if (!w.ctx || ld_pipeline_open(w.ctx, &opt, &w.pipe) != LD_OK) {
        fprintf(stderr, "leandiff worker: %s\n", w.ctx ? ld_ctx_error(w.ctx) : "out of memory");
        ld_ctx_free(w.ctx);
        redis_conn_close(w.rc);
        return 1;
    }
    w.model = ld_pipeline_model_name(w.pipe);
    w.family = ld_pipeline_family(w.pipe);
    int rc = 1;
    if (strlen(w.model) > 200) fprintf(stderr, "leandiff worker: model name '%.40s...' too long\n", w.model);
    else {
        rk_stream(w.stream, w.model);
        snprintf(w.group, sizeof w.group, "%s", RK_GROUP);
        rc = serve_queue(&w);
    }
    ld_pipeline_free(w.pipe);
    ld_ctx_free(w.ctx);
    redis_conn_close(w.rc);
    return rc;
}
#endif
