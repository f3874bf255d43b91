/* The Redis executor of `leandiff serve --redis URL` (server_exec.h): the
 * server becomes a front-end with no model of its own. Each job of the table
 * goes to the stream of the model that `leandiff worker`s serve (through
 * redis_job_submit, as `leandiff batch` submits), its progress comes back on
 * the job's pub/sub channel and its images from the stored result
 * (docs/scale-out.md has the keys). Many jobs are in flight at once, one per
 * worker; a job stays "queued" until a worker reports its first step.
 *
 *     server_executor *ex = exec_redis_new(&url, "koala-700m", &s.family, &cfg, NULL);  // NULL: out of memory
 *     jobs_init(&table, &cfg, s.family, ex);    // starts its thread (which connects, retrying)
 *     ...
 *     jobs_stop(&table);                        // cancels the jobs still in flight (their cancel keys)
 *     ex->free(ex);
 *
 * *family_slot (the server's family, "unknown" when no worker of the model
 * ran yet) is set once a worker's heartbeat tells it. Jobs are refused (503
 * naming the model) while no live worker serves the model.
 *
 * With a pipeline (serve --redis URL -m DIR), the executor also runs a
 * worker of that model in a thread of its own (redis_worker.h, named
 * HOST-PID, with cfg's --max-size, --max-steps, --lora-dir): it serves the
 * stream like any `leandiff worker`, jobs from other front-ends included.
 * Only with hiredis (LD_HAVE_HIREDIS); otherwise exec_redis_new returns NULL.
 */
#ifndef LD_APP_SERVER_EXEC_REDIS_H
#define LD_APP_SERVER_EXEC_REDIS_H

#include "leandiff.h"
#include "redis_url.h"
#include "server_config.h"
#include "server_exec.h"

#include <signal.h>
#include <stddef.h>

/* url and model are copied; family_slot, cfg (outputs: where images are also
 * saved) and local (NULL: no local worker) are borrowed. */
server_executor *exec_redis_new(const redis_url *url, const char *model, const char **family_slot,
                                const server_config *cfg, ld_pipeline *local);

/* The model a front-end serves when none is given: the one model the live
 * workers serve (their heartbeats), and its family. Connects (retrying while
 * Redis is away, until *stop). 0 after a message on stderr (no worker, or
 * workers of several models: they are listed). */
int exec_redis_pick_model(const redis_url *url, volatile sig_atomic_t *stop, char *model, size_t n, const char **family);

#endif
