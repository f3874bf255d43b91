/* The job table of `leandiff serve` (see server_jobs.h; the executor side
 * of it is described in server_exec.h). Jobs wait in a FIFO until an
 * executor claims them; every job lives in t->table while it is queued,
 * running, or among the last cfg->history finished ones.
 */
#include "server_jobs.h"

#include "io/base64.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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

int job_finished(const job *j) { return j->state >= JOB_DONE; }

void jobs_lock(job_table *t) { pthread_mutex_lock(&t->mu); }
void jobs_unlock(job_table *t) { pthread_mutex_unlock(&t->mu); }

static void bump(job_table *t, job *j) {
    j->version++;
    pthread_cond_broadcast(&t->changed);
}

static void job_free(job *j) {
    gen_request_free(&j->req);
    if (j->images)
        for (int i = 0; i < j->req.count; i++) {
            free(j->images[i].png);
            free(j->images[i].infotext);
        }
    free(j->images);
    free(j->preview);
    free(j);
}

static void put_locked(job *j) {
    if (--j->refs == 0) job_free(j);
}

void jobs_put(job_table *t, job *j) {
    if (!j) return;
    jobs_lock(t);
    put_locked(j);
    jobs_unlock(t);
}

/* Random bytes for job ids; the ids must not be guessable, since
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

/* Drops the oldest finished jobs beyond cfg->history from the table. */
static void trim_table(job_table *t) {
    int finished = 0;
    for (int i = 0; i < t->n_table; i++) finished += job_finished(t->table[i]);
    for (int i = 0; i < t->n_table && finished > t->cfg->history;) {
        job *j = t->table[i];
        if (!job_finished(j)) {
            i++;
            continue;
        }
        memmove(&t->table[i], &t->table[i + 1], (size_t)(t->n_table - i - 1) * sizeof *t->table);
        t->n_table--;
        finished--;
        j->listed = 0;
        put_locked(j);
    }
}

/* The running job the A1111 routes speak of: the one that started first. */
static job *first_running(const job_table *t) {
    job *r = NULL;
    for (int i = 0; i < t->n_table; i++)
        if (t->table[i]->state == JOB_RUNNING && (!r || t->table[i]->started < r->started)) r = t->table[i];
    return r;
}

static int count_state(const job_table *t, job_state st) {
    int n = 0;
    for (int i = 0; i < t->n_table; i++) n += t->table[i]->state == st;
    return n;
}

/* Jobs not started: in the FIFO, or taken by an executor that has not started them (jobs_take). */
static int count_queued(const job_table *t) { return count_state(t, JOB_QUEUED); }
static int count_running(const job_table *t) { return count_state(t, JOB_RUNNING); }

static int estimate_retry_after(const job_table *t) {
    double per_image = t->mean_seconds > 0 ? t->mean_seconds : 5.0;
    double left = per_image;
    const job *r = first_running(t);
    if (r) left = per_image * (r->req.count - r->n_images);
    int secs = (int)ceil(left);
    return secs < 1 ? 1 : secs > 600 ? 600 : secs;
}

job *jobs_submit(job_table *t, gen_request *req, const char *api, int *retry_after) {
    jobs_lock(t);
    /* An idle executor takes a job at once, so --max-queue 0 still allows one. */
    const int queued = count_queued(t);
    int idle = count_running(t) == 0 && queued == 0;
    if (t->stopping || (queued >= t->cfg->max_queue && !idle)) {
        *retry_after = estimate_retry_after(t);
        jobs_unlock(t);
        return NULL;
    }
    if (t->n_table == t->cap_table) {
        int cap = t->cap_table ? 2 * t->cap_table : 64;
        job **grown = realloc(t->table, (size_t)cap * sizeof *grown);
        if (!grown) {
            *retry_after = 1;
            jobs_unlock(t);
            return NULL;
        }
        t->table = grown;
        t->cap_table = cap;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        *retry_after = 1;
        jobs_unlock(t);
        return NULL;
    }
    unsigned char idb[16];
    random_bytes(idb, sizeof idb);
    for (int i = 0; i < 16; i++) snprintf(j->id + 2 * i, 3, "%02x", idb[i]);
    j->req = *req;
    gen_request_init(req);
    j->seed = j->req.seed < 0 ? gen_request_random_seed() : (uint64_t)j->req.seed;
    snprintf(j->api, sizeof j->api, "%s", api);
    j->created = wall_now();
    j->state = JOB_QUEUED;
    j->refs = 2; /* the table and the caller */
    j->listed = 1;
    t->table[t->n_table++] = j;
    if (t->queue_tail)
        t->queue_tail->next_queued = j;
    else
        t->queue_head = j;
    t->queue_tail = j;
    t->queued++;
    bump(t, j);
    pthread_cond_signal(&t->work);
    jobs_unlock(t);
    if (t->exec->submitted) t->exec->submitted(t->exec, j);
    return j;
}

job *jobs_get(job_table *t, const char *id) {
    job *found = NULL;
    jobs_lock(t);
    for (int i = 0; i < t->n_table && !found; i++)
        if (!strcmp(t->table[i]->id, id)) found = t->table[i];
    if (found) found->refs++;
    jobs_unlock(t);
    return found;
}

static void unqueue_locked(job_table *t, job *j) {
    job **pp = &t->queue_head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next_queued;
    }
    if (!*pp) return;
    *pp = j->next_queued;
    if (t->queue_tail == j) t->queue_tail = prev;
    j->next_queued = NULL;
    t->queued--;
}

static int cancel_locked(job_table *t, job *j) {
    if (j->state == JOB_QUEUED) {
        unqueue_locked(t, j);
        j->state = JOB_CANCELLED;
        j->finished = wall_now();
        snprintf(j->error, sizeof j->error, "cancelled before it started");
        bump(t, j);
        trim_table(t);
        return 1;
    }
    if (j->state == JOB_RUNNING) {
        j->cancel = 1;
        if (t->exec->cancel) t->exec->cancel(t->exec, j);
        bump(t, j);
        return 1;
    }
    return 0;
}

int jobs_cancel(job_table *t, job *j) {
    jobs_lock(t);
    int r = cancel_locked(t, j);
    jobs_unlock(t);
    return r;
}

int jobs_interrupt(job_table *t) {
    jobs_lock(t);
    job *running = first_running(t);
    int r = running ? cancel_locked(t, running) : 0;
    jobs_unlock(t);
    return r;
}

static void timed_wait(job_table *t, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->changed, &t->mu, &ts);
}

unsigned jobs_wait_change(job_table *t, job *j, unsigned seen, int timeout_ms) {
    if (j->version == seen && !job_finished(j) && !t->stopping) timed_wait(t, timeout_ms);
    return j->version;
}

void jobs_wait(job_table *t, job *j, int (*gone)(void *), void *user) {
    jobs_lock(t);
    while (!job_finished(j)) {
        timed_wait(t, 200);
        if (job_finished(j) || j->cancel || !gone) continue;
        jobs_unlock(t);
        int left = gone(user);
        jobs_lock(t);
        if (left && !job_finished(j)) {
            fprintf(stderr, "leandiff serve: job %s: client disconnected, cancelling\n", j->id);
            cancel_locked(t, j);
        }
    }
    jobs_unlock(t);
}

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

/* ---- the executor side --------------------------------------------------- */

/* The next job of the FIFO with its images allocated and the executor's
 * reference taken, running if start; NULL when stopping or (timeout_ms >= 0)
 * nothing came within timeout_ms. */
static job *take(job_table *t, int start, int timeout_ms) {
    jobs_lock(t);
    for (;;) {
        if (timeout_ms < 0) {
            while (!t->stopping && !t->queue_head) pthread_cond_wait(&t->work, &t->mu);
        } else if (!t->stopping && !t->queue_head && timeout_ms > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts); /* t->work runs on the default clock */
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&t->work, &t->mu, &ts);
            timeout_ms = 0;
        }
        if (t->stopping || !t->queue_head) break;
        job *j = t->queue_head;
        unqueue_locked(t, j);
        j->images = calloc((size_t)j->req.count, sizeof *j->images);
        if (!j->images) {
            j->state = JOB_FAILED;
            j->error_status = 500;
            j->finished = wall_now();
            snprintf(j->error, sizeof j->error, "out of memory");
            bump(t, j);
            trim_table(t);
            continue;
        }
        j->refs++; /* the executor's, released by jobs_end */
        if (start) {
            j->state = JOB_RUNNING;
            j->started = wall_now();
        }
        bump(t, j);
        jobs_unlock(t);
        return j;
    }
    jobs_unlock(t);
    return NULL;
}

job *jobs_claim(job_table *t) { return take(t, 1, -1); }

job *jobs_take(job_table *t, int timeout_ms) { return take(t, 0, timeout_ms < 0 ? 0 : timeout_ms); }

void jobs_started(job_table *t, job *j) {
    jobs_lock(t);
    if (j->state == JOB_QUEUED) {
        j->state = JOB_RUNNING;
        j->started = wall_now();
        bump(t, j);
    }
    jobs_unlock(t);
}

int jobs_available(job_table *t, char *why, size_t whyn) {
    why[0] = 0;
    return !t->exec->available || t->exec->available(t->exec, why, whyn);
}

int jobs_begin_image(job_table *t, job *j, int index) {
    jobs_lock(t);
    j->image = index;
    j->stage[0] = 0;
    j->step = j->total = 0;
    int stop = j->cancel || t->stopping;
    jobs_unlock(t);
    return stop;
}

int jobs_progress(job_table *t, job *j, const char *stage, int step, int total) {
    jobs_lock(t);
    snprintf(j->stage, sizeof j->stage, "%s", stage);
    j->step = step;
    j->total = total;
    double lo, hi;
    stage_span(t->family, stage, &lo, &hi);
    if (lo >= 0 && total > 0) {
        double in_image = lo + (hi - lo) * (double)step / total;
        double f = (j->image + in_image) / j->req.count;
        if (f > j->fraction) j->fraction = f > 1 ? 1 : f;
    }
    bump(t, j);
    int stop = j->cancel || t->stopping;
    jobs_unlock(t);
    return stop;
}

int jobs_stop_requested(job_table *t, job *j) {
    jobs_lock(t);
    int stop = j->cancel || t->stopping;
    jobs_unlock(t);
    return stop;
}

int jobs_preview(job_table *t, job *j, unsigned char *png, size_t len, int step, int total) {
    jobs_lock(t);
    free(j->preview);
    j->preview = png;
    j->preview_len = len;
    j->preview_image = j->image;
    j->preview_step = step;
    j->preview_total = total;
    j->preview_seq++;
    bump(t, j);
    int stop = j->cancel || t->stopping;
    jobs_unlock(t);
    return stop;
}

void jobs_image_done(job_table *t, job *j, int index, job_image *img, double seconds) {
    jobs_lock(t);
    j->images[index] = *img;
    memset(img, 0, sizeof *img);
    j->n_images = index + 1;
    j->fraction = (double)(index + 1) / j->req.count;
    t->mean_seconds = t->mean_seconds > 0 ? 0.7 * t->mean_seconds + 0.3 * seconds : seconds;
    bump(t, j);
    jobs_unlock(t);
}

void jobs_end(job_table *t, job *j, ld_status st, const char *message) {
    jobs_lock(t);
    if (job_finished(j)) { /* cancelled before it started, while an executor held it (jobs_take) */
        put_locked(j);
        jobs_unlock(t);
        return;
    }
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
        snprintf(j->error, sizeof j->error, "%s", message ? message : ld_status_name(st));
        fprintf(stderr, "leandiff serve: job %s failed: %s\n", j->id, j->error);
    }
    free(j->preview); /* the images are there now */
    j->preview = NULL;
    j->preview_len = 0;
    bump(t, j);
    trim_table(t);
    put_locked(j);
    jobs_unlock(t);
}

/* ---- life ------------------------------------------------------------------ */

int jobs_init(job_table *t, const server_config *cfg, const char *family, server_executor *exec) {
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->family = family;
    t->exec = exec;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->changed, &ca);
    pthread_cond_init(&t->work, NULL);
    pthread_condattr_destroy(&ca);
    if (exec->start && !exec->start(exec, t)) {
        pthread_cond_destroy(&t->changed);
        pthread_cond_destroy(&t->work);
        pthread_mutex_destroy(&t->mu);
        return 0;
    }
    return 1;
}

void jobs_stop(job_table *t) {
    jobs_lock(t);
    t->stopping = 1;
    /* the queued ones (cancelling one trims the table: start over each time), then the running ones */
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < t->n_table && !again; i++)
            if (t->table[i]->state == JOB_QUEUED) cancel_locked(t, t->table[i]), again = 1;
    }
    for (int i = 0; i < t->n_table; i++)
        if (t->table[i]->state == JOB_RUNNING) cancel_locked(t, t->table[i]);
    pthread_cond_broadcast(&t->changed);
    pthread_cond_broadcast(&t->work);
    jobs_unlock(t);
    if (t->exec->stop) t->exec->stop(t->exec);
}

void jobs_free(job_table *t) {
    for (int i = 0; i < t->n_table; i++) put_locked(t->table[i]);
    free(t->table);
    t->table = NULL;
    t->n_table = t->cap_table = 0;
    pthread_cond_destroy(&t->changed);
    pthread_cond_destroy(&t->work);
    pthread_mutex_destroy(&t->mu);
}

json_t *jobs_queue_json(job_table *t) {
    json_t *o = json_object();
    jobs_lock(t);
    const job *r = first_running(t);
    json_object_set_new(o, "queued", json_integer(count_queued(t)));
    json_object_set_new(o, "running", r ? json_string(r->id) : json_null());
    jobs_unlock(t);
    return o;
}

/* ---- JSON views ------------------------------------------------------------ */

static double job_eta(const job_table *t, const job *j) {
    double now = wall_now();
    if (j->state == JOB_RUNNING) {
        double el = now - j->started;
        if (j->fraction > 0.005) return el * (1 - j->fraction) / j->fraction;
        return t->mean_seconds > 0 ? t->mean_seconds * j->req.count - el : -1;
    }
    if (j->state == JOB_QUEUED) return t->mean_seconds > 0 ? t->mean_seconds * j->req.count : -1;
    return 0;
}

static json_t *params_json(const job_table *t, const job *j) {
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
    if (r->init_rgb) {
        json_object_set_new(p, "denoising_strength", json_real(r->strength));
        json_object_set_new(p, "mask", json_boolean(r->mask_rgb != NULL));
        if (r->mask_rgb) json_object_set_new(p, "mask_blur", json_real(r->mask_blur));
    }
    if (strcmp(t->family, "sdxl")) {
        json_object_set_new(p, "prior_steps", json_integer(r->prior_steps));
        json_object_set_new(p, "prior_cfg_scale", r->prior_cfg_scale < 0 ? json_null() : json_real(r->prior_cfg_scale));
    }
    return p;
}

static json_t *job_image_json(const job_table *t, const job *j, int i) {
    const ld_gen_info *in = &j->images[i].info;
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(i));
    json_object_set_new(o, "seed", json_integer((json_int_t)in->seed));
    json_object_set_new(o, "width", json_integer(in->width));
    json_object_set_new(o, "height", json_integer(in->height));
    json_object_set_new(o, "steps", json_integer(in->steps));
    json_object_set_new(o, "cfg_scale", json_real(in->cfg_scale));
    json_object_set_new(o, "sampler", json_string(in->sampler));
    json_object_set_new(o, "sampler_name", json_string(server_sampler_label(t->family, in->sampler, in->schedule)));
    if (strcmp(t->family, "sdxl")) {
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

json_t *job_to_json(job_table *t, const job *j) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_object_set_new(o, "api", json_string(j->api));
    json_object_set_new(o, "created", json_real(j->created));
    json_object_set_new(o, "started", j->started > 0 ? json_real(j->started) : json_null());
    json_object_set_new(o, "finished", j->finished > 0 ? json_real(j->finished) : json_null());
    if (j->state == JOB_QUEUED) {
        int pos = 0;
        for (int i = 0; i < t->n_table && t->table[i] != j; i++) pos += t->table[i]->state == JOB_QUEUED;
        json_object_set_new(o, "queue_position", json_integer(pos));
    }
    json_object_set_new(o, "image", json_integer(j->image));
    json_object_set_new(o, "images_done", json_integer(j->n_images));
    json_object_set_new(o, "stage", json_string(j->stage));
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "total", json_integer(j->total));
    json_object_set_new(o, "progress", json_real(j->fraction));
    double eta = job_eta(t, j);
    json_object_set_new(o, "eta", eta >= 0 ? json_real(eta) : json_null());
    json_object_set_new(o, "error", j->error[0] ? json_string(j->error) : json_null());
    json_object_set_new(o, "params", params_json(t, j));
    json_t *imgs = json_array();
    for (int i = 0; i < j->n_images; i++) json_array_append_new(imgs, job_image_json(t, j, i));
    json_object_set_new(o, "images", imgs);
    return o;
}

json_t *jobs_progress_json(job_table *t) {
    jobs_lock(t);
    job *j = first_running(t);
    json_t *o = json_object();
    json_t *st = json_object();
    double eta = j ? job_eta(t, j) : 0;
    json_object_set_new(o, "progress", json_real(j ? j->fraction : 0.0));
    json_object_set_new(o, "eta_relative", json_real(eta > 0 ? eta : 0.0));
    json_object_set_new(st, "skipped", json_false());
    json_object_set_new(st, "interrupted", json_boolean(j && j->cancel));
    json_object_set_new(st, "stopping_generation", json_boolean(j && j->cancel));
    json_object_set_new(st, "job", json_string(j ? j->id : ""));
    json_object_set_new(st, "job_count", json_integer(count_queued(t) + count_running(t)));
    char ts[32] = "0";
    if (j) {
        time_t started = (time_t)j->started;
        struct tm tm;
        gmtime_r(&started, &tm);
        strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    }
    json_object_set_new(st, "job_timestamp", json_string(ts));
    json_object_set_new(st, "job_no", json_integer(j ? j->image : 0));
    json_object_set_new(st, "sampling_step", json_integer(j ? j->step : 0));
    json_object_set_new(st, "sampling_steps", json_integer(j ? j->total : 0));
    json_object_set_new(st, "stage", json_string(j ? j->stage : ""));
    json_object_set_new(o, "state", st);
    /* A1111 clients show current_image (base64 PNG) as the live preview */
    char *b64 = j && j->preview ? ld_base64_encode(j->preview, j->preview_len) : NULL;
    json_object_set_new(o, "current_image", b64 ? json_string(b64) : json_null());
    free(b64);
    json_object_set_new(o, "textinfo", json_null());
    jobs_unlock(t);
    return o;
}

json_t *jobs_list_json(job_table *t) {
    json_t *a = json_array();
    jobs_lock(t);
    for (int i = t->n_table - 1; i >= 0; i--) json_array_append_new(a, job_to_json(t, t->table[i]));
    jobs_unlock(t);
    return a;
}
