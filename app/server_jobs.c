/* The job queue of `leandiff serve`: jobs wait in a FIFO, one worker thread
 * takes them in order and runs ld_generate once per image (every image uses
 * all compute threads), reporting progress through the library's progress
 * callback, which is also where a cancelled job stops at the next step.
 *
 * Every job lives in s->table while it is queued, running, or among the last
 * cfg.history finished ones; HTTP threads hold their own references
 * (jobs_get / jobs_put), so a job dropped from the table stays valid for
 * whoever still reads it. One mutex guards all of it; s->changed is broadcast
 * on every change (j->version counts them for the event streams).
 */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

double server_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void gen_request_init(gen_request *r) {
    memset(r, 0, sizeof *r);
    r->cfg_scale = -1.0;
    r->prior_cfg_scale = -1.0;
    r->seed = -1;
    r->count = 1;
}

void gen_request_free(gen_request *r) {
    free(r->prompt);
    free(r->negative_prompt);
    r->prompt = r->negative_prompt = NULL;
}

const char *job_state_name(job_state st) {
    switch (st) {
    case JOB_QUEUED: return "queued";
    case JOB_RUNNING: return "running";
    case JOB_DONE: return "done";
    case JOB_FAILED: return "failed";
    case JOB_CANCELLED: return "cancelled";
    }
    return "?";
}

static int job_finished(const job *j) { return j->state >= JOB_DONE; }

void jobs_lock(server *s) { pthread_mutex_lock(&s->mu); }
void jobs_unlock(server *s) { pthread_mutex_unlock(&s->mu); }

static void bump(server *s, job *j) {
    j->version++;
    pthread_cond_broadcast(&s->changed);
}

static void job_free(job *j) {
    gen_request_free(&j->req);
    if (j->images)
        for (int i = 0; i < j->req.count; i++) {
            free(j->images[i].png);
            free(j->images[i].infotext);
        }
    free(j->images);
    free(j);
}

static void put_locked(job *j) {
    if (--j->refs == 0) job_free(j);
}

void jobs_put(server *s, job *j) {
    if (!j) return;
    jobs_lock(s);
    put_locked(j);
    jobs_unlock(s);
}

/* Random bytes for job ids and seeds; the ids must not be guessable, since
 * they are the only handle on a job's image. */
static void random_bytes(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            /* getrandom does not fail on Linux >= 3.17 for small requests; keep going with the clock. */
            uint64_t t = (uint64_t)(wall_now() * 1e9);
            for (size_t i = 0; i < n; i++) p[i] ^= (unsigned char)(t >> (8 * (i % 8)));
            return;
        }
        p += got;
        n -= (size_t)got;
    }
}

/* Drops the oldest finished jobs beyond cfg.history from the table. */
static void trim_table(server *s) {
    int finished = 0;
    for (int i = 0; i < s->n_table; i++) finished += job_finished(s->table[i]);
    for (int i = 0; i < s->n_table && finished > s->cfg.history;) {
        job *j = s->table[i];
        if (!job_finished(j)) {
            i++;
            continue;
        }
        memmove(&s->table[i], &s->table[i + 1], (size_t)(s->n_table - i - 1) * sizeof *s->table);
        s->n_table--;
        finished--;
        j->listed = 0;
        put_locked(j);
    }
}

static int estimate_retry_after(const server *s) {
    double per_image = s->mean_seconds > 0 ? s->mean_seconds : 5.0;
    double left = per_image;
    if (s->running) left = per_image * (s->running->req.count - s->running->n_images);
    int r = (int)ceil(left);
    return r < 1 ? 1 : r > 600 ? 600 : r;
}

job *jobs_submit(server *s, gen_request *req, const char *api, int *retry_after) {
    jobs_lock(s);
    /* An idle worker takes a job at once, so --max-queue 0 still allows one. */
    int idle = !s->running && s->queued == 0;
    if (s->stopping || (s->queued >= s->cfg.max_queue && !idle)) {
        *retry_after = estimate_retry_after(s);
        jobs_unlock(s);
        return NULL;
    }
    if (s->n_table == s->cap_table) {
        int cap = s->cap_table ? 2 * s->cap_table : 64;
        job **t = realloc(s->table, (size_t)cap * sizeof *t);
        if (!t) {
            *retry_after = 1;
            jobs_unlock(s);
            return NULL;
        }
        s->table = t;
        s->cap_table = cap;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        *retry_after = 1;
        jobs_unlock(s);
        return NULL;
    }
    unsigned char idb[16];
    random_bytes(idb, sizeof idb);
    for (int i = 0; i < 16; i++) snprintf(j->id + 2 * i, 3, "%02x", idb[i]);
    j->req = *req;
    gen_request_init(req);
    if (j->req.seed < 0) {
        uint32_t r;
        random_bytes(&r, sizeof r);
        j->seed = r % 4294967294u; /* the range A1111 draws random seeds from */
    } else {
        j->seed = (uint64_t)j->req.seed;
    }
    snprintf(j->api, sizeof j->api, "%s", api);
    j->created = wall_now();
    j->state = JOB_QUEUED;
    j->refs = 2; /* the table and the caller */
    j->listed = 1;
    s->table[s->n_table++] = j;
    if (s->queue_tail)
        s->queue_tail->next_queued = j;
    else
        s->queue_head = j;
    s->queue_tail = j;
    s->queued++;
    bump(s, j);
    pthread_cond_signal(&s->work);
    jobs_unlock(s);
    return j;
}

job *jobs_get(server *s, const char *id) {
    job *found = NULL;
    jobs_lock(s);
    for (int i = 0; i < s->n_table && !found; i++)
        if (!strcmp(s->table[i]->id, id)) found = s->table[i];
    if (found) found->refs++;
    jobs_unlock(s);
    return found;
}

static void unqueue_locked(server *s, job *j) {
    job **pp = &s->queue_head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next_queued;
    }
    if (!*pp) return;
    *pp = j->next_queued;
    if (s->queue_tail == j) s->queue_tail = prev;
    j->next_queued = NULL;
    s->queued--;
}

static int cancel_locked(server *s, job *j) {
    if (j->state == JOB_QUEUED) {
        unqueue_locked(s, j);
        j->state = JOB_CANCELLED;
        j->finished = wall_now();
        snprintf(j->error, sizeof j->error, "cancelled before it started");
        bump(s, j);
        trim_table(s);
        return 1;
    }
    if (j->state == JOB_RUNNING) {
        j->cancel = 1;
        bump(s, j);
        return 1;
    }
    return 0;
}

int jobs_cancel(server *s, job *j) {
    jobs_lock(s);
    int r = cancel_locked(s, j);
    jobs_unlock(s);
    return r;
}

int jobs_interrupt(server *s) {
    jobs_lock(s);
    int r = s->running ? cancel_locked(s, s->running) : 0;
    jobs_unlock(s);
    return r;
}

static void timed_wait(server *s, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->changed, &s->mu, &ts);
}

unsigned jobs_wait_change(server *s, job *j, unsigned seen, int timeout_ms) {
    if (j->version == seen && !job_finished(j) && !s->stopping) timed_wait(s, timeout_ms);
    return j->version;
}

void jobs_wait(server *s, job *j, int (*gone)(void *), void *user) {
    jobs_lock(s);
    while (!job_finished(j)) {
        timed_wait(s, 200);
        if (job_finished(j) || j->cancel || !gone) continue;
        jobs_unlock(s);
        int left = gone(user);
        jobs_lock(s);
        if (left && !job_finished(j)) {
            fprintf(stderr, "leandiff serve: job %s: client disconnected, cancelling\n", j->id);
            cancel_locked(s, j);
        }
    }
    jobs_unlock(s);
}

/* ---- the worker ---------------------------------------------------------- */

typedef struct {
    server *s;
    job *j;
} progress_ctx;

/* Where a stage sits inside one image's work, as a fraction of it. */
static void stage_span(const char *family, const char *stage, double *lo, double *hi) {
    int two_stage = strcmp(family, "sdxl") != 0;
    *lo = *hi = -1;
    if (!strcmp(stage, "text")) *lo = 0, *hi = 0.02;
    else if (!strcmp(stage, "unet")) *lo = 0.02, *hi = 0.92;
    else if (!strcmp(stage, "prior")) *lo = 0.02, *hi = two_stage ? 0.52 : 0.92;
    else if (!strcmp(stage, "decoder")) *lo = 0.52, *hi = 0.92;
    else if (!strcmp(stage, "vae") || !strcmp(stage, "vqgan")) *lo = 0.92, *hi = 1.0;
}

static int on_progress(void *user, const char *stage, int step, int total, double stage_seconds) {
    progress_ctx *pc = user;
    server *s = pc->s;
    job *j = pc->j;
    jobs_lock(s);
    snprintf(j->stage, sizeof j->stage, "%s", stage);
    j->step = step;
    j->total = total;
    double lo, hi;
    stage_span(s->family, stage, &lo, &hi);
    if (lo >= 0 && total > 0) {
        double in_image = lo + (hi - lo) * (double)step / total;
        double f = (j->image + in_image) / j->req.count;
        if (f > j->fraction) j->fraction = f > 1 ? 1 : f;
    }
    bump(s, j);
    int stop = j->cancel || s->stopping;
    jobs_unlock(s);
    return stop;
}

static void run_job(server *s, ld_ctx *ctx, job *j) {
    ld_status st = LD_OK;
    for (int i = 0; i < j->req.count && st == LD_OK; i++) {
        jobs_lock(s);
        j->image = i;
        j->stage[0] = 0;
        j->step = j->total = 0;
        int stop = j->cancel || s->stopping;
        jobs_unlock(s);
        if (stop) {
            st = LD_ERR_CANCELLED;
            break;
        }
        ld_gen_params gp;
        ld_gen_params_init(&gp);
        gp.prompt = j->req.prompt;
        gp.negative_prompt = j->req.negative_prompt;
        gp.width = j->req.width;
        gp.height = j->req.height;
        gp.steps = j->req.steps;
        gp.cfg_scale = (float)j->req.cfg_scale;
        gp.prior_steps = j->req.prior_steps;
        gp.prior_cfg_scale = (float)j->req.prior_cfg_scale;
        gp.sampler = j->req.sampler[0] ? j->req.sampler : NULL;
        gp.seed = j->seed + (uint64_t)i;
        progress_ctx pc = {s, j};
        gp.progress = on_progress;
        gp.progress_user = &pc;
        ld_image img;
        ld_gen_info info;
        double t0 = server_now();
        st = ld_generate(ctx, s->pipe, &gp, &img, &info);
        if (st != LD_OK) break;
        double secs = server_now() - t0;
        job_image out = {0};
        out.info = info;
        out.infotext = server_infotext(ctx, &j->req, &info);
        int ok = out.infotext && server_png_encode(ctx, &img, out.infotext, &out.png, &out.png_len);
        ld_image_free(&img);
        if (!ok) {
            free(out.infotext);
            st = ld_ctx_status(ctx) != LD_OK ? ld_ctx_status(ctx) : LD_ERR_NOMEM;
            break;
        }
        if (s->cfg.outputs) server_save_png(s, j, i, out.png, out.png_len, out.file, sizeof out.file);
        jobs_lock(s);
        j->images[i] = out;
        j->n_images = i + 1;
        j->fraction = (double)(i + 1) / j->req.count;
        s->mean_seconds = s->mean_seconds > 0 ? 0.7 * s->mean_seconds + 0.3 * secs : secs;
        bump(s, j);
        jobs_unlock(s);
    }
    jobs_lock(s);
    j->finished = wall_now();
    if (st == LD_OK) {
        j->state = JOB_DONE;
        j->fraction = 1;
    } else if (st == LD_ERR_CANCELLED) {
        j->state = JOB_CANCELLED;
        snprintf(j->error, sizeof j->error, "cancelled at step %d of %d", j->step, j->total);
    } else {
        j->state = JOB_FAILED;
        j->error_status = st == LD_ERR_INVALID_ARGUMENT || st == LD_ERR_UNSUPPORTED ? 400 : 500;
        snprintf(j->error, sizeof j->error, "%s", ld_ctx_error(ctx));
        fprintf(stderr, "leandiff serve: job %s failed: %s\n", j->id, j->error);
    }
    ld_ctx_clear_error(ctx);
    s->running = NULL; /* in the same step as the final state: progress never shows a finished job */
    bump(s, j);
    jobs_unlock(s);
}

static void *worker_main(void *arg) {
    server *s = arg;
    ld_ctx *ctx = ld_ctx_new();
    jobs_lock(s);
    for (;;) {
        while (!s->stopping && !s->queue_head) pthread_cond_wait(&s->work, &s->mu);
        if (s->stopping || !ctx) break;
        job *j = s->queue_head;
        unqueue_locked(s, j);
        j->refs++;
        j->images = calloc((size_t)j->req.count, sizeof *j->images);
        if (!j->images) {
            j->state = JOB_FAILED;
            j->error_status = 500;
            snprintf(j->error, sizeof j->error, "out of memory");
            bump(s, j);
            put_locked(j);
            continue;
        }
        j->state = JOB_RUNNING;
        j->started = wall_now();
        s->running = j;
        bump(s, j);
        jobs_unlock(s);
        run_job(s, ctx, j);
        jobs_lock(s);
        trim_table(s);
        put_locked(j);
    }
    jobs_unlock(s);
    ld_ctx_free(ctx);
    return NULL;
}

int jobs_start(server *s) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, &ca);
    pthread_cond_init(&s->work, NULL);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        fprintf(stderr, "leandiff serve: cannot start the worker thread\n");
        return 0;
    }
    s->worker_started = 1;
    return 1;
}

void jobs_stop(server *s) {
    jobs_lock(s);
    s->stopping = 1;
    while (s->queue_head) cancel_locked(s, s->queue_head);
    if (s->running) s->running->cancel = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_cond_broadcast(&s->work);
    jobs_unlock(s);
    if (s->worker_started) pthread_join(s->worker, NULL);
    s->worker_started = 0;
}

void jobs_free(server *s) {
    for (int i = 0; i < s->n_table; i++) put_locked(s->table[i]);
    free(s->table);
    s->table = NULL;
    s->n_table = s->cap_table = 0;
    pthread_cond_destroy(&s->changed);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
}

/* ---- JSON views ------------------------------------------------------------ */

static double job_eta(const server *s, const job *j) {
    double now = wall_now();
    if (j->state == JOB_RUNNING) {
        double el = now - j->started;
        if (j->fraction > 0.005) return el * (1 - j->fraction) / j->fraction;
        return s->mean_seconds > 0 ? s->mean_seconds * j->req.count - el : -1;
    }
    if (j->state == JOB_QUEUED) return s->mean_seconds > 0 ? s->mean_seconds * j->req.count : -1;
    return 0;
}

static json_t *params_json(const server *s, const job *j) {
    const gen_request *r = &j->req;
    json_t *p = json_object();
    json_object_set_new(p, "prompt", json_string(r->prompt ? r->prompt : ""));
    json_object_set_new(p, "negative_prompt", r->negative_prompt ? json_string(r->negative_prompt) : json_null());
    json_object_set_new(p, "width", json_integer(r->width));
    json_object_set_new(p, "height", json_integer(r->height));
    json_object_set_new(p, "steps", json_integer(r->steps));
    json_object_set_new(p, "cfg_scale", r->cfg_scale < 0 ? json_null() : json_real(r->cfg_scale));
    json_object_set_new(p, "sampler", json_string(r->sampler));
    json_object_set_new(p, "seed", json_integer((json_int_t)j->seed));
    json_object_set_new(p, "n", json_integer(r->count));
    if (strcmp(s->family, "sdxl")) {
        json_object_set_new(p, "prior_steps", json_integer(r->prior_steps));
        json_object_set_new(p, "prior_cfg_scale", r->prior_cfg_scale < 0 ? json_null() : json_real(r->prior_cfg_scale));
    }
    return p;
}

json_t *job_image_json(const server *s, const job *j, int i) {
    const ld_gen_info *in = &j->images[i].info;
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(i));
    json_object_set_new(o, "seed", json_integer((json_int_t)in->seed));
    json_object_set_new(o, "width", json_integer(in->width));
    json_object_set_new(o, "height", json_integer(in->height));
    json_object_set_new(o, "steps", json_integer(in->steps));
    json_object_set_new(o, "cfg_scale", json_real(in->cfg_scale));
    json_object_set_new(o, "sampler", json_string(in->sampler));
    if (strcmp(s->family, "sdxl")) {
        json_object_set_new(o, "prior_steps", json_integer(in->prior_steps));
        json_object_set_new(o, "prior_cfg_scale", json_real(in->prior_cfg_scale));
    }
    json_object_set_new(o, "model", json_string(in->model));
    json_object_set_new(o, "seconds", json_real(in->seconds));
    json_object_set_new(o, "infotext", json_string(j->images[i].infotext ? j->images[i].infotext : ""));
    json_object_set_new(o, "file", j->images[i].file[0] ? json_string(j->images[i].file) : json_null());
    char url[96];
    snprintf(url, sizeof url, "/api/v1/jobs/%s/image?index=%d", j->id, i);
    json_object_set_new(o, "url", json_string(url));
    return o;
}

json_t *job_to_json(server *s, const job *j) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_object_set_new(o, "api", json_string(j->api));
    json_object_set_new(o, "created", json_real(j->created));
    json_object_set_new(o, "started", j->started > 0 ? json_real(j->started) : json_null());
    json_object_set_new(o, "finished", j->finished > 0 ? json_real(j->finished) : json_null());
    if (j->state == JOB_QUEUED) {
        int pos = 0;
        for (const job *q = s->queue_head; q && q != j; q = q->next_queued) pos++;
        json_object_set_new(o, "queue_position", json_integer(pos));
    }
    json_object_set_new(o, "image", json_integer(j->image));
    json_object_set_new(o, "images_done", json_integer(j->n_images));
    json_object_set_new(o, "stage", json_string(j->stage));
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "total", json_integer(j->total));
    json_object_set_new(o, "progress", json_real(j->fraction));
    double eta = job_eta(s, j);
    json_object_set_new(o, "eta", eta >= 0 ? json_real(eta) : json_null());
    json_object_set_new(o, "error", j->error[0] ? json_string(j->error) : json_null());
    json_object_set_new(o, "params", params_json(s, j));
    json_t *imgs = json_array();
    for (int i = 0; i < j->n_images; i++) json_array_append_new(imgs, job_image_json(s, j, i));
    json_object_set_new(o, "images", imgs);
    return o;
}

json_t *jobs_progress_json(server *s) {
    jobs_lock(s);
    job *j = s->running;
    json_t *o = json_object();
    json_t *st = json_object();
    double eta = j ? job_eta(s, j) : 0;
    json_object_set_new(o, "progress", json_real(j ? j->fraction : 0.0));
    json_object_set_new(o, "eta_relative", json_real(eta > 0 ? eta : 0.0));
    json_object_set_new(st, "skipped", json_false());
    json_object_set_new(st, "interrupted", json_boolean(j && j->cancel));
    json_object_set_new(st, "stopping_generation", json_boolean(j && j->cancel));
    json_object_set_new(st, "job", json_string(j ? j->id : ""));
    json_object_set_new(st, "job_count", json_integer(s->queued + (j ? 1 : 0)));
    char ts[32] = "0";
    if (j) {
        time_t t = (time_t)j->started;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    }
    json_object_set_new(st, "job_timestamp", json_string(ts));
    json_object_set_new(st, "job_no", json_integer(j ? j->image : 0));
    json_object_set_new(st, "sampling_step", json_integer(j ? j->step : 0));
    json_object_set_new(st, "sampling_steps", json_integer(j ? j->total : 0));
    json_object_set_new(st, "stage", json_string(j ? j->stage : ""));
    json_object_set_new(o, "state", st);
    json_object_set_new(o, "current_image", json_null());
    json_object_set_new(o, "textinfo", json_null());
    jobs_unlock(s);
    return o;
}

json_t *jobs_list_json(server *s) {
    json_t *a = json_array();
    jobs_lock(s);
    for (int i = s->n_table - 1; i >= 0; i--) json_array_append_new(a, job_to_json(s, s->table[i]));
    jobs_unlock(s);
    return a;
}
