/* `leandiff serve`: the HTTP daemon. How the server's files depend on each
 * other (each only on those below it; no cycles):
 *
 *   cmd_serve.c          flags -> server_config, opens the pipeline, makes the executor, server_run()
 *   server.c             libmicrohttpd setup, Host/Origin/key checks, body limit, routing, signals
 *   server_api_a1111.c   /sdapi/v1/...  \
 *   server_api_openai.c  /v1/...         } the routes (server_api.h)
 *   server_api_native.c  /api/v1/...    /
 *   server_submit.c      body -> job; synchronous wait-and-answer (A1111 and OpenAI)
 *   server_http.c        replies, JSON bodies, client-gone check
 *   server_exec_local.c  the local executor: a worker thread running ld_generate
 *   server_exec_redis.c  the Redis executor (serve --redis): jobs to the workers' stream, progress and
 *                        results back (redis_queue.c, redis_msg.c; redis_worker.c for -m)
 *   server_jobs.c        the job table (queue, states, progress, JSON views)
 *   server_exec.h        the executor interface the table calls (no code)
 *   server_image.c       PNG + infotext, base64, saving into --outputs
 *   server_request.c     JSON body -> gen_request (400 naming the field)
 *   server_upload.c      uploaded pictures (init images, masks): PNG or JPEG decoded within limits
 *   multipart.c          multipart/form-data bodies, parts in place (OpenAI image edits)
 *   server_config.h, server_ctx.h   data only
 *   web/index.html       the page at /, embedded into the binary
 *
 * Threads: libmicrohttpd runs one thread per connection; the executor runs
 * the jobs (locally: one worker thread, each job with all compute threads;
 * with Redis: one thread talking to Redis, plus a worker thread with -m).
 * Everything about jobs is guarded by the job table's mutex.
 */
#ifndef LD_APP_SERVER_H
#define LD_APP_SERVER_H

#include "server_ctx.h"
#include "server_exec.h"

/* Serves s (cfg, model_name and family set; s->jobs is set up here) with
 * jobs run by exec until SIGINT / SIGTERM; returns the process exit status.
 * exec stays the caller's to free. */
int server_run(server_ctx *s, server_executor *exec);

#endif
