/* `leandiff batch FILE --redis URL`: one job per line of a prompts file (or
 * JSONL with per-job fields) on the shared queue that `leandiff worker`s
 * serve (docs/scale-out.md), a progress bar over all jobs, each image written
 * when its result is stored.
 *
 * A job's id comes from its content: the model, the line's parameters
 * (defaults included) and the line number. redis_job_submit never queues an
 * id twice, so an interrupted batch is resumed by running it again: lines
 * whose images exist are skipped, jobs already queued are waited for, and
 * results already stored are written without running anything again.
 *
 * Three phases: read and check every line (the worker's rules,
 * gen_request_from_json; a bad line is reported with FILE:LINE and, unless
 * --skip-bad, nothing is submitted), submit, then poll the result keys and
 * write each image through io/fileio.h. Built only with hiredis. */
#include "commands.h"

#include <stdio.h>

#ifndef LD_HAVE_HIREDIS
int cmd_batch(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "leandiff batch: this leandiff was built without hiredis; install libhiredis-dev "
                    "(tools/install-deps.sh) and rebuild to use the Redis queue\n");
    return 1;
}
#else
#include "batch_line.h"
#include "cli_util.h"
#include "io/fileio.h"
#include "leandiff.h"
#include "redis_keys.h"
#include "redis_queue.h"
#include "server_request.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff batch FILE --redis URL [options]\n\n"
            "FILE holds one job per line: a prompt, or a JSON object of job fields (prompt, negative_prompt,\n"
            "width, height, steps, cfg_scale, sampler, seed, n, prior_steps, prior_cfg_scale); blank lines\n"
            "and lines starting with # are skipped. \"-\" reads standard input.\n\n"
            "      --redis URL            redis://[[user]:password@]host[:port][/db], or rediss://...[?cacert=F&cert=F&key=F]\n"
            "  -m, --model NAME           the model (a worker's model folder name, or its path); default: the\n"
            "                             model of the running workers when they all serve one\n"
            "  -o, --output DIR           folder for the images (default .): line 12 -> DIR/00012.png\n"
            "                             (with n > 1 also DIR/00012-1.png, ...)\n"
            "defaults for the lines that do not set the field:\n"
            "  -n, --negative-prompt TEXT\n"
            "  -W, --width N, -H, --height N\n"
            "      --steps N\n"
            "      --cfg-scale X\n"
            "      --sampler NAME         euler, euler_a, dpm++2m, ... or an A1111 name (\"DPM++ 2M Karras\")\n"
            "  -s, --seed N               (default: a random seed per job, chosen by the worker; -1 too)\n"
            "  -b, --batch-count N        images per line (the job field n)\n"
            "      --prior-steps N, --prior-cfg-scale X   Wuerstchen / Stable Cascade\n"
            "checks and output:\n"
            "      --max-size PX          largest width / height accepted (default 1024, as the worker)\n"
            "      --max-steps N          most steps accepted (default 150, as the worker)\n"
            "      --skip-bad             submit the good lines even when some are bad (default: submit none)\n"
            "  -q, --quiet                no progress on stderr\n\n"
            "Interrupted (Ctrl-C, a lost terminal, a reboot)? Run the same command again: lines whose images\n"
            "exist are skipped and jobs already queued are waited for, not submitted twice. The exit status\n"
            "is 1 when a line was bad or a job failed. See docs/scale-out.md.\n");
}

/* ---- jobs ------------------------------------------------------------------------ */

enum { J_WAIT, J_DONE, J_FAILED };

typedef struct {
    int line;     /* 1-based line of FILE */
    int count;    /* images (the job field n) */
    int state;
    char *params; /* canonical JSON (sorted keys), kept while the job is waiting */
    char id[72];
} job;

typedef struct {
    const char *file, *dir, *model;
    redis_conn *rc;
    ld_ctx *ctx;
    job *jobs;
    size_t n, cap;
    size_t done, failed, skipped, waiting;
    int quiet, tty, out_tty; /* stderr, stdout are terminals */
    int bar_shown;          /* a progress line without newline is on stderr */
    double t_last_print;
    double t_first;         /* end of the first poll for results (the ETA counts from there) */
    size_t finished_first;  /* jobs finished by then (skipped, or stored before this run) */
} batch;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal ends it early: fine */
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Two 64-bit FNV-1a style lanes with different multipliers. */
static void hash_bytes(uint64_t h[2], const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h[0] = (h[0] ^ (unsigned char)s[i]) * 0x100000001b3ULL;
        h[1] = (h[1] ^ (unsigned char)s[i]) * 0x9e3779b97f4a7c15ULL;
    }
}

/* batch-<line>-<32 hex>: at most 49 characters of rk_valid_id's alphabet. */
static void job_id(char out[72], const char *model, const char *params, int line) {
    uint64_t h[2] = {0xcbf29ce484222325ULL, 0x6a09e667f3bcc909ULL};
    hash_bytes(h, model, strlen(model) + 1);
    hash_bytes(h, params, strlen(params) + 1);
    char num[16];
    snprintf(num, sizeof num, "%d", line);
    hash_bytes(h, num, strlen(num));
    snprintf(out, 72, "batch-%d-%016llx%016llx", line, (unsigned long long)mix64(h[0]),
             (unsigned long long)mix64(h[1] ^ mix64(h[0])));
}

static void image_path(const batch *b, const job *j, int i, char *out, size_t n) {
    if (i == 0) snprintf(out, n, "%s/%05d.png", b->dir, j->line);
    else snprintf(out, n, "%s/%05d-%d.png", b->dir, j->line, i);
}

static int images_exist(const batch *b, const job *j) {
    char path[4200];
    for (int i = 0; i < j->count; i++) {
        image_path(b, j, i, path, sizeof path);
        if (!ld_file_exists(path)) return 0;
    }
    return 1;
}

/* ---- output ------------------------------------------------------------------------ */

static void clear_bar(batch *b) {
    if (b->bar_shown) fprintf(stderr, "\r\033[K");
    b->bar_shown = 0;
}

static void report(batch *b, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(batch *b, int line, const char *fmt, ...) {
    clear_bar(b);
    fprintf(stderr, "leandiff batch: %s:%d: ", strcmp(b->file, "-") ? b->file : "stdin", line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void fmt_duration(char *out, size_t n, double s) {
    if (s < 0) snprintf(out, n, "?");
    else if (s < 100) snprintf(out, n, "%.0fs", s);
    else if (s < 6000) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* done/total, failed, ETA from the jobs finished since the first one of this run. */
static void progress(batch *b, int final) {
    if (b->quiet) return;
    const double now = mono_now();
    const size_t finished = b->done + b->failed;
    double eta = -1;
    if (b->t_first > 0 && finished > b->finished_first && now > b->t_first)
        eta = (now - b->t_first) / (double)(finished - b->finished_first) * (double)(b->n - finished);
    if (finished == b->n) eta = 0;
    char eta_s[32], failed_s[48] = "";
    fmt_duration(eta_s, sizeof eta_s, eta);
    if (b->failed) snprintf(failed_s, sizeof failed_s, ", %zu failed", b->failed);
    if (b->tty) {
        const int width = 30;
        int fill = b->n ? (int)((double)finished * width / (double)b->n) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kbatch %zu/%zu [%s]%s, ETA %s", finished, b->n, bar, failed_s, eta_s);
        b->bar_shown = 1;
        if (final) {
            fputc('\n', stderr);
            b->bar_shown = 0;
        }
    } else if (final || now - b->t_last_print >= 10) {
        fprintf(stderr, "batch %zu/%zu done%s, ETA %s\n", finished, b->n, failed_s, eta_s);
        b->t_last_print = now;
    }
    fflush(stderr);
}

/* ---- reading FILE --------------------------------------------------------------------- */

#define MAX_BAD_SHOWN 50

/* Reads and checks every line; returns the number of bad lines, -1 when FILE cannot be read. */
static long read_jobs(batch *b, const json_t *defaults, const server_config *cfg, const char *family) {
    FILE *f = strcmp(b->file, "-") ? fopen(b->file, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "leandiff batch: cannot open %s: %s\n", b->file, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long bad = 0;
    int lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (lineno == 0x7fffffff) break;
        lineno++;
        json_t *params;
        char err[600], field[64];
        batch_line_kind k = batch_line_parse(line, (size_t)len, defaults, &params, err, sizeof err);
        if (k == BATCH_LINE_SKIP) continue;
        if (k == BATCH_LINE_BAD) {
            if (bad++ < MAX_BAD_SHOWN) report(b, lineno, "%s", err);
            continue;
        }
        gen_request req;
        gen_request_init(&req);
        int ok = gen_request_from_json(cfg, family, REQ_NATIVE, params, &req, err, sizeof err, field, sizeof field);
        const int count = req.count;
        gen_request_free(&req);
        char *s = ok ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(params);
        if (!ok || !s) {
            if (bad++ < MAX_BAD_SHOWN) report(b, lineno, "%s", ok ? "out of memory" : err);
            free(s);
            continue;
        }
        if (b->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 256;
            job *nj = realloc(b->jobs, nc * sizeof *nj);
            if (!nj) {
                free(s);
                fprintf(stderr, "leandiff batch: out of memory at line %d\n", lineno);
                bad = -1;
                break;
            }
            b->jobs = nj;
            b->cap = nc;
        }
        job *j = &b->jobs[b->n++];
        memset(j, 0, sizeof *j);
        j->line = lineno;
        j->count = count;
        j->params = s;
        job_id(j->id, b->model, s, lineno);
    }
    if (bad > MAX_BAD_SHOWN) fprintf(stderr, "leandiff batch: ... and %ld more bad lines\n", bad - MAX_BAD_SHOWN);
    if (bad >= 0 && ferror(f)) {
        fprintf(stderr, "leandiff batch: reading %s: %s\n", b->file, strerror(errno));
        bad = -1;
    }
    free(line);
    if (f != stdin) fclose(f);
    return bad;
}

/* ---- workers ---------------------------------------------------------------------------- */

#define MAX_MODELS 16

typedef struct {
    char model[RK_MAX], family[32];
} served;

/* The models of the workers alive now (their heartbeat keys), at most MAX_MODELS. */
static int worker_models(batch *b, served *out) {
    json_t *ws = redis_workers(b->rc);
    size_t i;
    json_t *o;
    int n = 0;
    json_array_foreach(ws, i, o) {
        const char *m = json_string_value(json_object_get(o, "model"));
        const char *fam = json_string_value(json_object_get(o, "family"));
        int seen = 0;
        for (int q = 0; q < n; q++) seen |= !strcmp(out[q].model, m);
        if (!seen && n < MAX_MODELS && strlen(m) < RK_MAX) {
            snprintf(out[n].model, RK_MAX, "%s", m);
            snprintf(out[n].family, sizeof out[n].family, "%s", fam ? fam : "");
            n++;
        }
    }
    json_decref(ws);
    return n;
}

/* ---- results ------------------------------------------------------------------------------- */

static void finish_job(batch *b, job *j, int state) {
    j->state = state;
    free(j->params);
    j->params = NULL;
    b->waiting--;
    if (state == J_DONE) b->done++;
    else b->failed++;
}

/* Writes the images of a job whose result exists. 0 when the result vanished meanwhile (still waiting). */
static int collect(batch *b, job *j) {
    char key[RK_MAX];
    rk_result(key, j->id);
    redisReply *r = redis_cmd(b->rc, "HMGET %s status error", key);
    if (!r) return 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return 0;
    }
    if (strcmp(r->element[0]->str, "done")) {
        const char *msg = r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : r->element[0]->str;
        report(b, j->line, "job %s failed: %s", j->id, msg);
        freeReplyObject(r);
        finish_job(b, j, J_FAILED);
        return 1;
    }
    freeReplyObject(r);
    int ok = 1;
    for (int i = 0; ok && i < j->count; i++) {
        char path[4200];
        image_path(b, j, i, path, sizeof path);
        r = redis_cmd(b->rc, "HMGET %s png:%d params:%d", key, i, i);
        if (!r) return 0;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            report(b, j->line, "job %s: its result has no image %d", j->id, i);
            ok = 0;
        } else if (ld_write_file(b->ctx, path, r->element[0]->str, r->element[0]->len) != LD_OK) {
            report(b, j->line, "%s", ld_ctx_error(b->ctx));
            ld_ctx_clear_error(b->ctx);
            ok = 0;
        } else {
            json_t *used = r->element[1]->type == REDIS_REPLY_STRING
                               ? json_loadb(r->element[1]->str, r->element[1]->len, 0, NULL)
                               : NULL;
            json_t *seed = json_object_get(used, "seed");
            if (b->out_tty) clear_bar(b);
            if (json_is_integer(seed))
                printf("%s: line %d, seed %lld\n", path, j->line, (long long)json_integer_value(seed));
            else
                printf("%s: line %d\n", path, j->line);
            fflush(stdout);
            json_decref(used);
        }
        freeReplyObject(r);
    }
    finish_job(b, j, ok ? J_DONE : J_FAILED);
    return 1;
}

/* One pass over the waiting jobs: collects those with a result. Returns the number finished, -1 on a Redis error. */
static long poll_results(batch *b) {
    enum { CHUNK = 256 };
    static char keys[CHUNK][RK_MAX];
    const char *kp[CHUNK];
    int exists[CHUNK];
    size_t idx[CHUNK];
    long finished = 0;
    size_t next = 0;
    while (next < b->n && !stop) {
        int k = 0;
        for (; next < b->n && k < CHUNK; next++) {
            if (b->jobs[next].state != J_WAIT) continue;
            rk_result(keys[k], b->jobs[next].id);
            kp[k] = keys[k];
            idx[k++] = next;
        }
        if (!k) break;
        char err[300];
        if (!redis_keys_exist(b->rc, kp, k, exists, err, sizeof err)) {
            if (stop) return finished;
            clear_bar(b);
            fprintf(stderr, "leandiff batch: %s\n", err);
            return -1;
        }
        for (int i = 0; i < k && !stop; i++)
            if (exists[i]) finished += collect(b, &b->jobs[idx[i]]);
    }
    return finished;
}

/* ---- submitting and waiting ------------------------------------------------------------------ */

/* Submits every job without its images (or finds it queued or stored). 0 on a Redis error. */
static int submit_all(batch *b) {
    size_t submitted = 0, queued = 0, stored = 0;
    double t_bar = 0;
    for (size_t i = 0; i < b->n && !stop; i++) {
        job *j = &b->jobs[i];
        if (images_exist(b, j)) {
            j->state = J_DONE;
            free(j->params);
            j->params = NULL;
            b->done++;
            b->skipped++;
        } else {
            char err[512];
            redis_job_state st = redis_job_submit(b->rc, b->model, j->id, j->params, err, sizeof err);
            if (st == REDIS_JOB_ERROR) {
                if (stop) break;
                report(b, j->line, "%s", err);
                return 0;
            }
            submitted += st == REDIS_JOB_SUBMITTED;
            queued += st == REDIS_JOB_QUEUED;
            stored += st == REDIS_JOB_HAS_RESULT;
            j->state = J_WAIT;
            b->waiting++;
        }
        if (b->tty && mono_now() - t_bar > 0.2) {
            progress(b, 0);
            t_bar = mono_now();
        }
    }
    if (!b->quiet && !stop) {
        clear_bar(b);
        fprintf(stderr, "leandiff batch: %zu jobs on %s: %zu submitted, %zu already queued, %zu already stored, %zu "
                        "with their images in %s\n",
                b->n, b->model, submitted, queued, stored, b->skipped, b->dir);
    }
    return 1;
}

/* Submits again the waiting jobs whose entry vanished without a result (a Redis restart without its
 * append-only file, a result that expired); the same call, so nothing is queued twice. */
static int resubmit_lost(batch *b) {
    for (size_t i = 0; i < b->n && !stop; i++) {
        job *j = &b->jobs[i];
        if (j->state != J_WAIT) continue;
        char err[512];
        redis_job_state st = redis_job_submit(b->rc, b->model, j->id, j->params, err, sizeof err);
        if (st == REDIS_JOB_ERROR) {
            if (!stop) report(b, j->line, "%s", err);
            return 0;
        }
        if (st == REDIS_JOB_SUBMITTED)
            report(b, j->line, "job %s was no longer queued and had no result; submitted again", j->id);
    }
    return 1;
}

static int wait_all(batch *b) {
    double t_change = mono_now();
    while (b->waiting > 0 && !stop) {
        long got = poll_results(b);
        if (got < 0) return 0;
        if (b->t_first == 0) {
            b->t_first = mono_now();
            b->finished_first = b->done + b->failed;
        }
        if (got > 0) t_change = mono_now();
        if (!b->waiting || stop) break; /* the caller draws the last line */
        progress(b, 0);
        if (mono_now() - t_change > 60) {
            if (!resubmit_lost(b)) return 0;
            t_change = mono_now();
        }
        double interval = 0.25 + (double)b->waiting / 2000.0;
        sleep_s(interval > 2 ? 2 : interval);
    }
    return 1;
}

/* ---- the command ---------------------------------------------------------------------------- */

enum {
    OPT_REDIS = 1000,
    OPT_STEPS,
    OPT_CFG,
    OPT_SAMPLER,
    OPT_PRIOR_STEPS,
    OPT_PRIOR_CFG,
    OPT_MAX_SIZE,
    OPT_MAX_STEPS,
    OPT_SKIP_BAD
};

/* Sets a default job field from a flag; 0 after a message. */
static int set_default(json_t *defaults, const char *key, json_t *v) {
    if (!v || json_object_set_new(defaults, key, v)) {
        fprintf(stderr, "leandiff batch: out of memory\n");
        return 0;
    }
    return 1;
}

/* The model of the stream: -m (a name or a path: its last component, as the worker names it), else the
 * one model of the running workers. Fills family when a worker of it runs ("" otherwise). 0 after a message. */
static int pick_model(batch *b, const char *given, char *model, size_t n, char *family, size_t fn) {
    served found[MAX_MODELS];
    int nf = worker_models(b, found);
    family[0] = 0;
    if (given) {
        ld_path_basename(model, n, given);
        if (!model[0] || strlen(model) > 200 || strchr(model, ' ')) {
            fprintf(stderr, "leandiff batch: --model '%s' is not a model name (a worker's model folder name)\n",
                    given);
            return 0;
        }
    } else if (nf == 1) {
        snprintf(model, n, "%s", found[0].model);
    } else {
        fprintf(stderr, "leandiff batch: %s; give --model NAME (a worker's model folder name)\n",
                nf ? "the running workers serve several models" : "no worker is running to learn the model from");
        for (int i = 0; i < nf; i++) fprintf(stderr, "  %s\n", found[i].model);
        return 0;
    }
    for (int i = 0; i < nf; i++)
        if (!strcmp(found[i].model, model)) snprintf(family, fn, "%s", found[i].family);
    if (!family[0] && !b->quiet)
        fprintf(stderr, "leandiff batch: no worker is serving %s right now; its jobs wait in the queue until one "
                        "starts (samplers are checked by the worker)\n", model);
    return 1;
}

/* The defaults must pass the rules a line must pass (family "unknown": samplers unchecked). */
static int check_defaults(const server_config *cfg, const char *family, const json_t *defaults) {
    json_t *probe = json_deep_copy(defaults);
    gen_request req;
    gen_request_init(&req);
    char err[512], field[64];
    int ok = probe && !json_object_set_new(probe, "prompt", json_string("")) &&
             gen_request_from_json(cfg, family, REQ_NATIVE, probe, &req, err, sizeof err, field, sizeof field);
    if (!ok) fprintf(stderr, "leandiff batch: %s\n", probe ? err : "out of memory");
    gen_request_free(&req);
    json_decref(probe);
    return ok;
}

int cmd_batch(int argc, char **argv) {
    static const struct option opts[] = {
        {"redis", required_argument, 0, OPT_REDIS},
        {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'},
        {"negative-prompt", required_argument, 0, 'n'},
        {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'},
        {"steps", required_argument, 0, OPT_STEPS},
        {"cfg-scale", required_argument, 0, OPT_CFG},
        {"sampler", required_argument, 0, OPT_SAMPLER},
        {"sampling-method", required_argument, 0, OPT_SAMPLER},
        {"seed", required_argument, 0, 's'},
        {"batch-count", required_argument, 0, 'b'},
        {"prior-steps", required_argument, 0, OPT_PRIOR_STEPS},
        {"prior-cfg-scale", required_argument, 0, OPT_PRIOR_CFG},
        {"max-size", required_argument, 0, OPT_MAX_SIZE},
        {"max-steps", required_argument, 0, OPT_MAX_STEPS},
        {"skip-bad", no_argument, 0, OPT_SKIP_BAD},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    batch b;
    memset(&b, 0, sizeof b);
    b.dir = ".";
    const char *url_s = NULL, *model_arg = NULL;
    server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_size = 1024; /* the worker's defaults */
    cfg.max_steps = 150;
    cfg.max_batch = 8;
    int skip_bad = 0;
    json_t *defaults = json_object();
    if (!defaults) return 1;
    long long v;
    double d;
    int c, ok = 1;
    optind = 1;
    opterr = 0;
    while (ok && (c = getopt_long(argc, argv, ":m:o:n:W:H:s:b:qh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_REDIS: url_s = optarg; break;
        case 'm': model_arg = optarg; break;
        case 'o': b.dir = optarg; break;
        case 'n': ok = set_default(defaults, "negative_prompt", json_string(optarg)); break;
        case 'W':
        case 'H':
            ok = cli_parse_int(c == 'W' ? "--width" : "--height", optarg, 8, 8192, &v) &&
                 set_default(defaults, c == 'W' ? "width" : "height", json_integer(v));
            break;
        case OPT_STEPS: ok = cli_parse_int("--steps", optarg, 1, 1000, &v) && set_default(defaults, "steps", json_integer(v)); break;
        case OPT_CFG:
            ok = cli_parse_float("--cfg-scale", optarg, 0, 100, &d) && set_default(defaults, "cfg_scale", json_real(d));
            break;
        case OPT_SAMPLER: ok = set_default(defaults, "sampler", json_string(optarg)); break;
        case 's':
            ok = cli_parse_int("--seed", optarg, -1, INT64_MAX, &v) && set_default(defaults, "seed", json_integer(v));
            break;
        case 'b': ok = cli_parse_int("--batch-count", optarg, 1, 10000, &v) && set_default(defaults, "n", json_integer(v)); break;
        case OPT_PRIOR_STEPS:
            ok = cli_parse_int("--prior-steps", optarg, 1, 1000, &v) && set_default(defaults, "prior_steps", json_integer(v));
            break;
        case OPT_PRIOR_CFG:
            ok = cli_parse_float("--prior-cfg-scale", optarg, 0, 100, &d) &&
                 set_default(defaults, "prior_cfg_scale", json_real(d));
            break;
        case OPT_MAX_SIZE: ok = cli_parse_int("--max-size", optarg, 64, 8192, &v), cfg.max_size = (int)v; break;
        case OPT_MAX_STEPS: ok = cli_parse_int("--max-steps", optarg, 1, 1000, &v), cfg.max_steps = (int)v; break;
        case OPT_SKIP_BAD: skip_bad = 1; break;
        case 'q': b.quiet = 1; break;
        case 'h':
            usage(stdout);
            json_decref(defaults);
            return 0;
        case ':': fprintf(stderr, "leandiff batch: option '%s' needs a value\n", argv[optind - 1]), ok = 0; break;
        default:
            fprintf(stderr, "leandiff batch: unknown option '%s' (see leandiff batch --help)\n", argv[optind - 1]);
            ok = 0;
        }
    }
    if (ok && optind != argc - 1) {
        fprintf(stderr, "leandiff batch: %s\n\n", optind == argc ? "FILE is required" : "one FILE only");
        usage(stderr);
        ok = 0;
    }
    if (ok && !url_s) {
        fprintf(stderr, "leandiff batch: --redis URL is required\n");
        ok = 0;
    }
    if (ok && !check_defaults(&cfg, "unknown", defaults)) ok = 0;
    redis_url url;
    char err[256];
    if (ok && !redis_url_parse(url_s, &url, err, sizeof err)) {
        fprintf(stderr, "leandiff batch: %s\n", err);
        ok = 0;
    }
    if (!ok) {
        json_decref(defaults);
        return 2;
    }
    b.file = optind < argc ? argv[optind] : "-";

    cli_catch_stop_signals(on_signal);
    b.tty = isatty(2);
    b.out_tty = isatty(1);
    b.t_last_print = mono_now();

    int rc = 1;
    char model[RK_MAX], family[32];
    b.rc = redis_conn_open(&url, "leandiff batch", &stop);
    b.ctx = ld_ctx_new();
    if (!b.rc || !b.ctx || !pick_model(&b, model_arg, model, sizeof model, family, sizeof family)) goto out;
    b.model = model;
    if (family[0] && !check_defaults(&cfg, family, defaults)) {
        rc = 2;
        goto out;
    }
    long bad = read_jobs(&b, defaults, &cfg, family[0] ? family : "unknown");
    if (bad < 0) goto out;
    if (bad > 0 && !skip_bad) {
        fprintf(stderr, "leandiff batch: %ld bad line%s in %s; nothing submitted (fix them, or --skip-bad to submit the "
                        "others)\n", bad, bad == 1 ? "" : "s", b.file);
        goto out;
    }
    if (ld_output_dir(b.ctx, b.dir) != LD_OK) {
        fprintf(stderr, "leandiff batch: %s\n", ld_ctx_error(b.ctx));
        goto out;
    }
    if (!submit_all(&b) || !wait_all(&b)) goto out;
    if (stop) goto out;
    progress(&b, 1);
    if (b.failed > 0) fprintf(stderr, "leandiff batch: %zu of %zu jobs failed\n", b.failed, b.n);
    if (bad > 0) fprintf(stderr, "leandiff batch: %ld bad line%s skipped\n", bad, bad == 1 ? "" : "s");
    if (!b.failed && !bad) {
        rc = 0;
    }
out:
    if (stop && b.n) {
        clear_bar(&b);
        size_t left = b.n - b.done - b.failed;
        fprintf(stderr, "leandiff batch: interrupted; %zu job%s not collected: run the same command again to collect "
                        "them (nothing is submitted twice)\n", left, left == 1 ? "" : "s");
    }
    for (size_t i = 0; i < b.n; i++) free(b.jobs[i].params);
    free(b.jobs);
    json_decref(defaults);
    ld_ctx_free(b.ctx);
    redis_conn_close(b.rc);
    return rc;
}
#endif
