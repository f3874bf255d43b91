/* Native job API of `leandiff serve` (/api/v1/...), asynchronous:
 *   POST   /api/v1/jobs              -> 202 {id, state, url, events, image}
 *   GET    /api/v1/jobs              -> jobs of this server's life still kept, newest first
 *   GET    /api/v1/jobs/{id}         -> state, step/total, progress, eta, params, images
 *   GET    /api/v1/jobs/{id}/events  -> Server-Sent Events: "progress" while it runs,
 *                                       "preview" (a PNG data URL of the image forming)
 *                                       after each new preview, then one of "done",
 *                                       "failed", "cancelled"
 *   GET    /api/v1/jobs/{id}/image   -> the PNG (?index=N for the N-th of a batch)
 *   DELETE /api/v1/jobs/{id}         -> cancel (a running job stops within about a second)
 *   GET    /api/v1/status            -> model, queue and the server's limits (and, with
 *                                       serve --redis, the workers seen)
 * A job keeps running when an event stream's client goes away.
 */
#include "server_api.h"
#include "server_submit.h"

#include "io/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- event stream ---------------------------------------------------------- */

typedef struct {
    job_table *t;
    job *j;
    struct MHD_Connection *conn;
    unsigned seen;
    unsigned preview_seq;  /* the last preview sent */
    int sent_first, ended;
    char *buf;
    size_t len, off;
} sse_stream;

/* Next piece of the stream: the job's state whenever it changes (changes in
 * between are merged, so a slow client gets the latest), a comment every 15 s
 * to keep the connection alive, and the end after the final event. MHD calls this from the connection's own thread, so
 * waiting here blocks nobody else. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    sse_stream *st = cls;
    if (st->off == st->len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        free(st->buf);
        st->buf = NULL;
        st->len = st->off = 0;
        job_table *t = st->t;
        jobs_lock(t);
        unsigned v = st->j->version;
        /* Wait for a change in 1 s slices, looking for a departed client in
         * between, so a stream nobody reads frees its thread within a second. */
        for (int waited = 0; st->sent_first && v == st->seen && st->j->state < JOB_DONE && !t->stopping &&
                             waited < 15;
             waited++) {
            v = jobs_wait_change(t, st->j, st->seen, 1000);
            if (v != st->seen) break;
            jobs_unlock(t);
            int gone = server_client_gone(st->conn);
            jobs_lock(t);
            if (gone) {
                jobs_unlock(t);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            v = st->j->version;
        }
        int fin = st->j->state >= JOB_DONE;
        if (st->sent_first && v == st->seen && !fin && !t->stopping) {
            jobs_unlock(t);
            st->buf = strdup(": keep-alive\n\n");
        } else {
            json_t *o = job_to_json(t, st->j);
            const char *ev = fin ? job_state_name(st->j->state) : "progress";
            st->seen = v;
            st->sent_first = 1;
            st->ended = fin || t->stopping;
            /* a new preview: its PNG copied now, encoded after the lock is released */
            json_t *pv = NULL;
            unsigned char *png = NULL;
            size_t png_len = 0;
            if (!fin && st->j->preview && st->j->preview_seq != st->preview_seq) {
                png = malloc(st->j->preview_len);
                if (png) {
                    memcpy(png, st->j->preview, st->j->preview_len);
                    png_len = st->j->preview_len;
                    pv = json_pack("{s:i, s:i, s:i}", "image", st->j->preview_image, "step", st->j->preview_step,
                                   "total", st->j->preview_total);
                    st->preview_seq = st->j->preview_seq;
                }
            }
            jobs_unlock(t);
            char *data = json_dumps(o, JSON_COMPACT), *pdata = NULL;
            json_decref(o);
            if (pv && png) {
                char *b64 = ld_base64_encode(png, png_len);
                size_t bn = b64 ? strlen(b64) + 32 : 0;
                char *url = b64 ? malloc(bn) : NULL;
                if (url) {
                    snprintf(url, bn, "data:image/png;base64,%s", b64);
                    json_object_set_new(pv, "url", json_string(url));
                    pdata = json_dumps(pv, JSON_COMPACT);
                }
                free(url);
                free(b64);
            }
            free(png);
            json_decref(pv);
            if (data) {
                size_t n = strlen(data) + (pdata ? strlen(pdata) : 0) + 128;
                st->buf = malloc(n);
                if (st->buf) {
                    int k = snprintf(st->buf, n, "id: %u\nevent: %s\ndata: %s\n\n", v, ev, data);
                    if (pdata && k > 0 && (size_t)k < n)
                        snprintf(st->buf + k, n - (size_t)k, "event: preview\ndata: %s\n\n", pdata);
                }
                free(data);
            }
            free(pdata);
        }
        if (!st->buf) return MHD_CONTENT_READER_END_WITH_ERROR;
        st->len = strlen(st->buf);
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse_stream *st = cls;
    jobs_put(st->t, st->j);
    free(st->buf);
    free(st);
}

static mhd_result events(server_ctx *s, server_req *r, job *j) {
    sse_stream *st = calloc(1, sizeof *st);
    if (!st) {
        jobs_put(&s->jobs, j);
        return MHD_NO;
    }
    st->t = &s->jobs;
    st->j = j;
    st->conn = r->conn;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, st, sse_free);
    if (!resp) {
        sse_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return server_queue(r, 200, resp);
}

/* ---- routes -------------------------------------------------------------------- */

static mhd_result submit(server_ctx *s, server_req *r) {
    mhd_result res;
    job *j = server_submit(s, r, REQ_NATIVE, "native", NULL, &res);
    if (!j) return res;
    char url[96];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "state", json_string("queued"));
    snprintf(url, sizeof url, "/api/v1/jobs/%s", j->id);
    json_object_set_new(o, "url", json_string(url));
    snprintf(url, sizeof url, "/api/v1/jobs/%s/events", j->id);
    json_object_set_new(o, "events", json_string(url));
    snprintf(url, sizeof url, "/api/v1/jobs/%s/image", j->id);
    json_object_set_new(o, "image", json_string(url));
    /* The Location header: made while we still hold the job. */
    snprintf(url, sizeof url, "/api/v1/jobs/%s", j->id);
    jobs_put(&s->jobs, j);
    struct MHD_Response *resp;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Location", url);
    return server_queue(r, 202, resp);
}

static mhd_result image(server_ctx *s, server_req *r, job *j) {
    const char *q = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "index");
    long index = 0;
    if (q) {
        char *end;
        index = strtol(q, &end, 10);
        if (!*q || *end || index < 0 || index >= j->req.count) {
            jobs_put(&s->jobs, j);
            return reply_error(r, 400, "index", "index must be between 0 and %d", j->req.count - 1);
        }
    }
    jobs_lock(&s->jobs);
    int have = index < j->n_images;
    job_state st = j->state;
    jobs_unlock(&s->jobs);
    if (!have) {
        jobs_put(&s->jobs, j);
        return reply_error(r, 409, NULL, "image %ld of job %s is not ready: the job is %s", index, j->id,
                           job_state_name(st));
    }
    /* A finished image never changes and lives as long as the job, which we hold. */
    mhd_result res = reply_bytes(r, 200, "image/png", j->images[index].png, j->images[index].png_len, 1);
    jobs_put(&s->jobs, j);
    return res;
}

static json_t *status_json(server_ctx *s) {
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(ld_version()));
    json_object_set_new(o, "model", json_string(s->model_name));
    json_object_set_new(o, "family", json_string(s->family));
    json_t *q = jobs_queue_json(&s->jobs);
    json_object_update(o, q);
    json_decref(q);
    json_t *l = json_object();
    json_object_set_new(l, "max_size", json_integer(s->cfg.max_size));
    json_object_set_new(l, "max_steps", json_integer(s->cfg.max_steps));
    json_object_set_new(l, "max_batch", json_integer(s->cfg.max_batch));
    json_object_set_new(l, "max_queue", json_integer(s->cfg.max_queue));
    json_object_set_new(l, "max_body", json_integer((json_int_t)s->cfg.max_body));
    json_object_set_new(l, "history", json_integer(s->cfg.history));
    json_object_set_new(o, "limits", l);
    json_t *x = s->jobs.exec->status ? s->jobs.exec->status(s->jobs.exec) : NULL;
    json_object_update(o, x);
    json_decref(x);
    return o;
}

int api_native(server_ctx *s, server_req *r) {
    if (strncmp(r->path, "/api/v1/", 8)) return -1;
    const char *p = r->path + 8;
    const char *m = r->method;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if (!strcmp(p, "status")) return get ? reply_json(r, 200, status_json(s)) : reply_method(r, "GET");
    if (!strcmp(p, "jobs")) {
        if (!strcmp(m, "POST")) return submit(s, r);
        return get ? reply_json(r, 200, jobs_list_json(&s->jobs)) : reply_method(r, "GET, POST");
    }
    if (strncmp(p, "jobs/", 5)) return -1;
    p += 5;
    char id[33];
    size_t n = strspn(p, "0123456789abcdef");
    if (n != 32 || (p[n] && p[n] != '/')) return reply_error(r, 404, NULL, "no such job");
    memcpy(id, p, 32);
    id[32] = 0;
    const char *sub = p + 32;
    const char *allow = !*sub ? "GET, DELETE" : "GET";
    if (*sub && strcmp(sub, "/events") && strcmp(sub, "/image")) return -1;
    if (!get && !(!*sub && !strcmp(m, "DELETE"))) return reply_method(r, allow);
    job *j = jobs_get(&s->jobs, id);
    if (!j) return reply_error(r, 404, NULL, "no such job: %s (unknown, or dropped from the history)", id);
    if (!strcmp(sub, "/events")) return events(s, r, j);
    if (!strcmp(sub, "/image")) return image(s, r, j);
    if (!strcmp(m, "DELETE") && !jobs_cancel(&s->jobs, j)) {
        jobs_lock(&s->jobs);
        const char *st = job_state_name(j->state);
        jobs_unlock(&s->jobs);
        mhd_result res = reply_error(r, 409, NULL, "job %s has already finished (%s)", id, st);
        jobs_put(&s->jobs, j);
        return res;
    }
    jobs_lock(&s->jobs);
    json_t *o = job_to_json(&s->jobs, j);
    jobs_unlock(&s->jobs);
    jobs_put(&s->jobs, j);
    return reply_json(r, 200, o);
}
