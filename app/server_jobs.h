/* The job table of `leandiff serve`: every job while it is queued, running,
 * or among the last cfg->history finished ones, in one FIFO of waiting jobs.
 * HTTP threads submit, look up, cancel and wait on jobs; an executor
 * (server_exec.h) claims them and reports progress, images and the end.
 *
 *     job_table t;
 *     jobs_init(&t, &cfg, "sdxl", executor);   // starts the executor
 *     job *j = jobs_submit(&t, &req, "native", &retry_after);   // NULL: full (503)
 *     jobs_wait(&t, j, server_client_gone, conn);
 *     ... read j (finished jobs do not change) ...
 *     jobs_put(&t, j);
 *     jobs_stop(&t);      // cancels everything, stops the executor
 *     jobs_free(&t);      // after no HTTP thread holds a job any more
 *
 * Every job has a reference count (the table, the executor, each HTTP thread
 * holding it), so a job dropped from the table stays valid for whoever still
 * reads it. One mutex guards the table and every job's fields; `changed` is
 * broadcast on every change, and j->version counts the changes (event streams).
 */
#ifndef LD_APP_SERVER_JOBS_H
#define LD_APP_SERVER_JOBS_H

#include "leandiff.h"
#include "server_config.h"
#include "server_exec.h"
#include "server_request.h"

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state;

typedef struct {
    unsigned char *png;
    size_t png_len;
    ld_gen_info info;
    char *infotext;
    char file[256];        /* saved file name inside --outputs, "" if not saved */
} job_image;

struct job {
    char id[33];
    int refs;              /* holders: the job table, the executor, each HTTP thread */
    int listed;            /* still in the job table */
    job_state state;
    gen_request req;
    uint64_t seed;         /* resolved first seed */
    char api[16];          /* "a1111", "openai", "native": for the log and the page */
    double created, started, finished;
    /* progress of the running job */
    int image;             /* index of the image being made */
    char stage[16];
    int step, total;       /* within the current stage */
    double fraction;       /* 0..1 over the whole job */
    int cancel;            /* set by DELETE / interrupt / shutdown / client gone */
    unsigned version;      /* bumped on every change (event streams) */
    unsigned char *preview; /* latest preview PNG of the running image (NULL: none yet; dropped at the end) */
    size_t preview_len;
    int preview_image, preview_step, preview_total; /* what it shows: image index, step of total */
    unsigned preview_seq;  /* counts the previews (event streams send each new one) */
    job_image *images;     /* req.count entries once running */
    int n_images;          /* finished so far */
    int error_status;      /* HTTP status for a failed job (400 bad parameters, 500 otherwise) */
    char error[512];
    job *next_queued;
};

struct job_table {
    const server_config *cfg;
    const char *family;    /* for progress fractions and the JSON views */
    server_executor *exec;
    int stopping;
    pthread_mutex_t mu;
    pthread_cond_t changed;
    pthread_cond_t work;   /* signalled when a job is queued or the table stops */
    job *queue_head, *queue_tail;
    int queued;
    job **table;           /* live jobs: queued, running and the last cfg->history finished */
    int n_table, cap_table;
    double mean_seconds;   /* running mean of job time per image, for Retry-After */
};

/* Sets up the table and starts the executor (which stays owned by the
 * caller); 0 on failure (message on stderr, nothing to free). */
int jobs_init(job_table *t, const server_config *cfg, const char *family, server_executor *exec);
/* Cancels every job and stops the executor. */
void jobs_stop(job_table *t);
/* Frees the table (after no HTTP thread holds a job any more). */
void jobs_free(job_table *t);

/* ---- the HTTP side ---- */

/* Queues a job that takes over req (req is reset). Returns the job with a
 * reference for the caller, or NULL with *retry_after set when the queue is
 * full (or the server is stopping). */
job *jobs_submit(job_table *t, gen_request *req, const char *api, int *retry_after);
/* 1 if the executor can run jobs now; else 0 with the reason in why (a 503:
 * serve --redis has no worker for its model). */
int jobs_available(job_table *t, char *why, size_t whyn);
/* Finds a job by id and takes a reference; NULL if unknown. */
job *jobs_get(job_table *t, const char *id);
void jobs_put(job_table *t, job *j);
/* Asks a job to stop: a queued job is dropped, a running one stops at its
 * next step. Returns 0 if it had already finished. */
int jobs_cancel(job_table *t, job *j);
/* Cancels the running job (A1111 interrupt); 1 if there was one. */
int jobs_interrupt(job_table *t);
/* Waits until the job finishes or the server stops; while waiting, calls
 * gone(user) every ~200 ms and cancels the job if it returns nonzero (the
 * client disconnected). */
void jobs_wait(job_table *t, job *j, int (*gone)(void *), void *user);
/* Waits (up to timeout_ms) until j->version differs from seen. Returns the
 * current version. Call with the lock held. */
unsigned jobs_wait_change(job_table *t, job *j, unsigned seen, int timeout_ms);
void jobs_lock(job_table *t);
void jobs_unlock(job_table *t);
int job_finished(const job *j);
const char *job_state_name(job_state st);
/* JSON view of a job (lock held). */
json_t *job_to_json(job_table *t, const job *j);
/* A1111's progress answer (takes the lock). */
json_t *jobs_progress_json(job_table *t);
/* Jobs kept, newest first (takes the lock). */
json_t *jobs_list_json(job_table *t);
/* {"queued": n, "running": id or null} (takes the lock). */
json_t *jobs_queue_json(job_table *t);

/* ---- the executor side (see server_exec.h) ---- */

job *jobs_claim(job_table *t);
/* For an executor that runs many jobs at once elsewhere (server_exec_redis.c):
 * the next job like jobs_claim, but it stays "queued" (and counts against
 * --max-queue) until jobs_started; waits at most timeout_ms, NULL if none.
 * A job taken and then cancelled before it started is finished already:
 * jobs_end then only releases it. */
job *jobs_take(job_table *t, int timeout_ms);
void jobs_started(job_table *t, job *j);
int jobs_begin_image(job_table *t, job *j, int index);
int jobs_progress(job_table *t, job *j, const char *stage, int step, int total);
/* Nonzero when job j should stop now (cancelled, or the server stopping):
 * the executor polls it inside the model forwards (ld_gen_params.cancel). */
int jobs_stop_requested(job_table *t, job *j);
/* A preview PNG of the image being made (the table takes png); returns
 * nonzero when the job should stop, like jobs_progress. */
int jobs_preview(job_table *t, job *j, unsigned char *png, size_t len, int step, int total);
void jobs_image_done(job_table *t, job *j, int index, job_image *img, double seconds);
/* status: LD_OK, LD_ERR_CANCELLED, or a failure with its message. */
void jobs_end(job_table *t, job *j, ld_status status, const char *message);

#endif
