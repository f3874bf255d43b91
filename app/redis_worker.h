/* One worker of the shared Redis queue (docs/scale-out.md): joins the
 * consumer group of the stream of a model, takes one job at a time
 * (reclaiming with XAUTOCLAIM the jobs a vanished worker left pending),
 * runs it through ld_generate, publishes progress after every step, stores
 * the result once under the job's key and acknowledges. A job whose cancel
 * key is set stops at its next step (or is skipped) with a "cancelled" result.
 * Run by `leandiff worker` (cmd_worker.c) and by `leandiff serve --redis URL
 * -m DIR` as its local worker thread (server_exec_redis.c). Only with hiredis.
 *
 *     redis_worker_stop stop = {0};                 // flags a signal handler or another thread sets
 *     redis_conn *rc = redis_conn_open(&url, "leandiff worker", &stop.give_up);
 *     redis_worker_options o;
 *     redis_worker_options_init(&o);
 *     o.name = "a1";
 *     int rc = redis_worker_serve(rc, pipe, &o, &stop);   // until stop.soft_stop / hard_stop
 */
#ifndef LD_APP_REDIS_WORKER_H
#define LD_APP_REDIS_WORKER_H

#include "leandiff.h"
#include "redis_queue.h"

#include <signal.h>
#include <stddef.h>

typedef struct {
    volatile sig_atomic_t soft_stop; /* finish the running job, then return */
    volatile sig_atomic_t hard_stop; /* stop at the next step, leave the job pending for another worker */
    volatile sig_atomic_t give_up;   /* stop retrying Redis: the connection's stop flag */
    volatile sig_atomic_t busy;      /* set while a job runs (for a signal handler's choice) */
} redis_worker_stop;

typedef struct {
    const char *name;          /* consumer name: rk_valid_id */
    int claim_after;           /* s a job stays pending before another worker takes it (60) */
    int result_ttl;            /* s results are kept (86400) */
    int max_size, max_steps;   /* job limits (1024, 150) */
    const char *lora_dir;      /* <lora:NAME:SCALE> tags, NULL: refused */
    int announce;              /* print "worker NAME ready on STREAM" on stdout */
} redis_worker_options;

void redis_worker_options_init(redis_worker_options *o);
/* HOST-PID, the default consumer name. */
void redis_worker_default_name(char *out, size_t n);
/* Serves the stream of pipe's model (ld_pipeline_model_name) until
 * stop->soft_stop (after the running job) or stop->hard_stop (at the next
 * step). 0 after a clean stop, 1 after a hard stop or a failure (message on
 * stderr). rc should stop retrying on &stop->give_up. */
int redis_worker_serve(redis_conn *rc, ld_pipeline *pipe, const redis_worker_options *o, redis_worker_stop *stop);

#endif
