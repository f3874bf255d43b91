/* Request body -> job, for every route that makes images (see server_submit.h). */
#include "server_submit.h"

#include "io/base64.h"
#include "server_image.h"

#include <stdlib.h>

job *server_submit_request(server_ctx *s, server_req *r, gen_request *req, const char *api, mhd_result *res) {
    char why[512];
    if (!jobs_available(&s->jobs, why, sizeof why)) {
        *res = reply_error_hdr(r, 503, "Retry-After", "10", why);
        return NULL;
    }
    int retry;
    job *j = jobs_submit(&s->jobs, req, api, &retry);
    if (!j) *res = reply_busy(r, retry);
    return j;
}

job *server_submit(server_ctx *s, server_req *r, req_dialect d, const char *api, json_t **body_out, mhd_result *res) {
    if (body_out) *body_out = NULL;
    json_t *body = server_parse_body(r, res);
    if (!body) return NULL;
    char why[512];
    if (!jobs_available(&s->jobs, why, sizeof why)) {
        json_decref(body);
        *res = reply_error_hdr(r, 503, "Retry-After", "10", why);
        return NULL;
    }
    gen_request req;
    gen_request_init(&req);
    char err[512], field[64];
    if (!gen_request_from_json(&s->cfg, s->family, d, body, &req, err, sizeof err, field, sizeof field)) {
        gen_request_free(&req);
        json_decref(body);
        *res = reply_error(r, 400, field, "%s", err);
        return NULL;
    }
    job *j = server_submit_request(s, r, &req, api, res);
    gen_request_free(&req);
    if (!j) {
        json_decref(body);
        return NULL;
    }
    if (body_out)
        *body_out = body;
    else
        json_decref(body);
    return j;
}

json_t *images_b64(const job *j, const char *key) {
    json_t *a = json_array();
    for (int i = 0; i < j->n_images; i++) {
        char *b = ld_base64_encode(j->images[i].png, j->images[i].png_len);
        if (!b) {
            json_decref(a);
            return NULL;
        }
        if (key) {
            json_t *e = json_object();
            json_object_set_new(e, key, json_string(b));
            json_array_append_new(a, e);
        } else {
            json_array_append_new(a, json_string(b));
        }
        free(b);
    }
    return a;
}

/* Answers a finished synchronous job: its error, or build(job) as 200. */
static mhd_result reply_finished_job(server_ctx *s, server_req *r, const job *j, sync_build_fn build, json_t *body) {
    if (j->state == JOB_FAILED)
        return reply_error(r, j->error_status ? (unsigned)j->error_status : 500, NULL, "%s", j->error);
    if (j->n_images == 0) return reply_error(r, 409, NULL, "the job was cancelled: %s", j->error);
    /* Finished jobs do not change any more: no lock needed to read them. */
    json_t *o = build(s, j, body);
    return o ? reply_json(r, 200, o) : reply_error(r, 500, NULL, "out of memory");
}

static mhd_result wait_and_reply(server_ctx *s, server_req *r, job *j, sync_build_fn build, json_t *body) {
    jobs_wait(&s->jobs, j, server_client_gone, r->conn);
    mhd_result res = reply_finished_job(s, r, j, build, body);
    jobs_put(&s->jobs, j);
    return res;
}

mhd_result server_run_sync_request(server_ctx *s, server_req *r, gen_request *req, const char *api,
                                   sync_build_fn build) {
    mhd_result res;
    job *j = server_submit_request(s, r, req, api, &res);
    return j ? wait_and_reply(s, r, j, build, NULL) : res;
}

mhd_result server_run_sync(server_ctx *s, server_req *r, req_dialect d, const char *api, sync_build_fn build) {
    mhd_result res;
    json_t *body;
    job *j = server_submit(s, r, d, api, &body, &res);
    if (!j) return res;
    res = wait_and_reply(s, r, j, build, body);
    json_decref(body);
    return res;
}
