/* The seam where `leandiff serve` executes jobs.
 *
 * The job table (server_jobs.h) keeps every job's state for the HTTP side;
 * an executor makes the images. Today there is one executor, "local"
 * (server_exec_local.c: one worker thread calling ld_generate on the pipeline
 * this process opened); another (say, a queue of remote workers) plugs in
 * behind the same five calls without the routes noticing.
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
 *
 * What the executor calls on the table (server_jobs.h, each takes the lock):
 *
 *   job *j = jobs_claim(t);                      next queued job, now running (NULL: stopping)
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
};

#endif
