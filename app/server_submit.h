/* Request body -> job, shared by every route that makes images:
 *
 *   server_submit()     parse and validate the body (400 naming the field),
 *                       queue the job (503 with Retry-After when full);
 *                       the native API answers 202 with the job
 *   server_submit_request() / server_run_sync_request(): the same for a
 *                       request built elsewhere (OpenAI edits: multipart)
 *   server_run_sync()   the same, then wait for the job (cancelling it if the
 *                       client goes away) and answer build(job) or the job's
 *                       error: A1111 txt2img and OpenAI generations
 */
#ifndef LD_APP_SERVER_SUBMIT_H
#define LD_APP_SERVER_SUBMIT_H

#include "server_ctx.h"
#include "server_http.h"
#include "server_request.h"

/* Returns the queued job (a reference for the caller; *body_out, if not
 * NULL, gets the parsed body), or NULL with the answer already queued in *res. */
job *server_submit(server_ctx *s, server_req *r, req_dialect d, const char *api, json_t **body_out, mhd_result *res);

/* Queues a request already validated (multipart routes): takes over req
 * (reset); NULL with the 503 queued in *res. */
job *server_submit_request(server_ctx *s, server_req *r, gen_request *req, const char *api, mhd_result *res);

/* build(s, finished job with at least one image, request body) -> the 200
 * answer, NULL when out of memory. */
typedef json_t *(*sync_build_fn)(server_ctx *s, const job *j, json_t *body);
mhd_result server_run_sync(server_ctx *s, server_req *r, req_dialect d, const char *api, sync_build_fn build);
/* The same for a request already validated (build gets a NULL body). */
mhd_result server_run_sync_request(server_ctx *s, server_req *r, gen_request *req, const char *api,
                                   sync_build_fn build);

/* The job's PNGs in base64: strings, or objects {key: string} if key. */
json_t *images_b64(const job *j, const char *key);

#endif
