/* The seam where `leandiff serve` executes jobs.
 *
 * The job table (server_jobs.h) keeps every job's state for the HTTP side;
 * an executor makes the images. Two executors: "local" (server_exec_local.c:
 * one worker thread calling ld_generate on the pipeline this process opened)
 * and "redis" (server_exec_redis.c: jobs go to the Redis stream that
 * `leandiff worker`s serve, results and progress come back from Redis);
 * the routes do not know which one runs.
 *
 * What the table calls (each may be NULL when the executor has nothing to do):
 *
 *   start(ex, t)      begin taking jobs from table t; 0 on failure (message on stderr)
 *   submitted(ex, j)  job j entered the table, state queued (no lock held)
 *   cancel(ex, j)     a client asked to stop job j, which the executor claimed
 *                     (lock held: only set flags or signal, never block)
 *   stop(ex)          stop taking jobs; when it returns, no claimed job is still
 *                     reported on (the table has already marked every job cancelled)
 *   free(ex)          release the executor
 *   available(ex, why, n)  1 if jobs can run now, else 0 with the reason (503)
 *   status(ex)        extra fields for GET /api/v1/status (a JSON object), or NULL
 *
 * What the executor calls on the table (server_jobs.h, each takes the lock):
 *
 *   job *j = jobs_claim(t);                      next queued job, now running (NULL: stopping)
 *   (or j = jobs_take(t, ms) ... jobs_started(t, j): several jobs in flight, each
 *    "queued" until it really starts)
 *   if (jobs_begin_image(t, j, i)) ...stop...    image i starts; nonzero = cancelled
 *   if (jobs_progress(t, j, stage, step, total)) ...stop...   nonzero = cancelled
 *   jobs_image_done(t, j, i, &image, seconds);   image i finished (the table takes it)
 *   jobs_end(t, j, status, message);             final state; releases the claim
 *
 * So a job flows: submit (HTTP thread) -> claim -> begin/progress/image_done
 * (executor) -> end; cancel can come at any point and is seen by the executor
 * as a nonzero return of begin_image / progress (and through cancel()).
 */
#ifndef LD_APP_SERVER_EXEC_H
#define LD_APP_SERVER_EXEC_H

#include <jansson.h>
#include <stddef.h>

typedef struct job job;
typedef struct job_table job_table;
typedef struct server_executor server_executor;

struct server_executor {
    const char *name; /* "local", ... (for the log) */
    int (*start)(server_executor *ex, job_table *t);
    void (*submitted)(server_executor *ex, job *j);
    void (*cancel)(server_executor *ex, job *j);
    void (*stop)(server_executor *ex);
    void (*free)(server_executor *ex);
    int (*available)(server_executor *ex, char *why, size_t whyn);
    json_t *(*status)(server_executor *ex);
};

#endif
