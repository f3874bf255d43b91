/* Native job API of `leandiff serve` (/api/v1/...), asynchronous:
 *   POST   /api/v1/jobs              -> 202 {id, state, url, events, image}
 *   GET    /api/v1/jobs              -> jobs of this server's life still kept, newest first
 *   GET    /api/v1/jobs/{id}         -> state, step/total, progress, eta, params, images
 *   GET    /api/v1/jobs/{id}/events  -> Server-Sent Events: "progress" while it runs,
 *                                       then one of "done", "failed", "cancelled"
 *   GET    /api/v1/jobs/{id}/image   -> the PNG (?index=N for the N-th of a batch)
 *   DELETE /api/v1/jobs/{id}         -> cancel (a running job stops at its next step)
 *   GET    /api/v1/status            -> model, queue and the server's limits
 * A job keeps running when an event stream's client goes away.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- event stream ---------------------------------------------------------- */

typedef struct {
    server *s;
    job *j;
    struct MHD_Connection *conn;
    unsigned seen;
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
        server *s = st->s;
        jobs_lock(s);
        unsigned v = st->j->version;
        /* Wait for a change in 1 s slices, looking for a departed client in
         * between, so a stream nobody reads frees its thread within a second. */
        for (int waited = 0; st->sent_first && v == st->seen && st->j->state < JOB_DONE && !s->stopping &&
                             waited < 15;
             waited++) {
            v = jobs_wait_change(s, st->j, st->seen, 1000);
            if (v != st->seen) break;
            jobs_unlock(s);
            int gone = server_client_gone(st->conn);
            jobs_lock(s);
            if (gone) {
                jobs_unlock(s);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            v = st->j->version;
        }
        int fin = st->j->state >= JOB_DONE;
        if (st->sent_first && v == st->seen && !fin && !s->stopping) {
            jobs_unlock(s);
            st->buf = strdup(": keep-alive\n\n");
        } else {
            json_t *o = job_to_json(s, st->j);
            const char *ev = fin ? job_state_name(st->j->state) : "progress";
            st->seen = v;
            st->sent_first = 1;
            st->ended = fin || s->stopping;
            jobs_unlock(s);
            char *data = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            if (data) {
                size_t n = strlen(data) + 64;
                st->buf = malloc(n);
                if (st->buf) snprintf(st->buf, n, "id: %u\nevent: %s\ndata: %s\n\n", v, ev, data);
                free(data);
            }
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
    jobs_put(st->s, st->j);
    free(st->buf);
    free(st);
}

static mhd_result events(server *s, server_req *r, job *j) {
    sse_stream *st = calloc(1, sizeof *st);
    if (!st) {
        jobs_put(s, j);
        return MHD_NO;
    }
    st->s = s;
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

static mhd_result submit(server *s, server_req *r) {
    mhd_result res;
    json_t *body = server_parse_body(r, &res);
    if (!body) return res;
    gen_request req;
    gen_request_init(&req);
    char err[512], field[64];
    int ok = gen_request_from_json(s, REQ_NATIVE, body, &req, err, sizeof err, field, sizeof field);
    json_decref(body);
    if (!ok) {
        gen_request_free(&req);
        return reply_error(r, 400, field, "%s", err);
    }
    int retry;
    job *j = jobs_submit(s, &req, "native", &retry);
    gen_request_free(&req);
    if (!j) return reply_busy(r, retry);
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
    jobs_put(s, j);
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
    snprintf(url, sizeof url, "/api/v1/jobs/%s", j->id);
    MHD_add_response_header(resp, "Location", url);
    return server_queue(r, 202, resp);
}

static mhd_result image(server *s, server_req *r, job *j) {
    const char *q = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "index");
    long index = 0;
    if (q) {
        char *end;
        index = strtol(q, &end, 10);
        if (!*q || *end || index < 0 || index >= j->req.count) {
            jobs_put(s, j);
            return reply_error(r, 400, "index", "index must be between 0 and %d", j->req.count - 1);
        }
    }
    jobs_lock(s);
    int have = index < j->n_images;
    job_state st = j->state;
    jobs_unlock(s);
    if (!have) {
        jobs_put(s, j);
        return reply_error(r, 409, NULL, "image %ld of job %s is not ready: the job is %s", index, j->id,
                           job_state_name(st));
    }
    /* A finished image never changes and lives as long as the job, which we hold. */
    mhd_result res = reply_bytes(r, 200, "image/png", j->images[index].png, j->images[index].png_len, 1);
    jobs_put(s, j);
    return res;
}

static json_t *status_json(server *s) {
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(ld_version()));
    json_object_set_new(o, "model", json_string(s->model_name));
    json_object_set_new(o, "family", json_string(s->family));
    jobs_lock(s);
    json_object_set_new(o, "queued", json_integer(s->queued));
    json_object_set_new(o, "running", s->running ? json_string(s->running->id) : json_null());
    jobs_unlock(s);
    json_t *l = json_object();
    json_object_set_new(l, "max_size", json_integer(s->cfg.max_size));
    json_object_set_new(l, "max_steps", json_integer(s->cfg.max_steps));
    json_object_set_new(l, "max_batch", json_integer(s->cfg.max_batch));
    json_object_set_new(l, "max_queue", json_integer(s->cfg.max_queue));
    json_object_set_new(l, "max_body", json_integer((json_int_t)s->cfg.max_body));
    json_object_set_new(l, "history", json_integer(s->cfg.history));
    json_object_set_new(o, "limits", l);
    return o;
}

int api_native(server *s, server_req *r) {
    if (strncmp(r->path, "/api/v1/", 8)) return -1;
    const char *p = r->path + 8;
    const char *m = r->method;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if (!strcmp(p, "status")) return get ? reply_json(r, 200, status_json(s)) : reply_method(r, "GET");
    if (!strcmp(p, "jobs")) {
        if (!strcmp(m, "POST")) return submit(s, r);
        return get ? reply_json(r, 200, jobs_list_json(s)) : reply_method(r, "GET, POST");
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
    job *j = jobs_get(s, id);
    if (!j) return reply_error(r, 404, NULL, "no such job: %s (unknown, or dropped from the history)", id);
    if (!strcmp(sub, "/events")) return events(s, r, j);
    if (!strcmp(sub, "/image")) return image(s, r, j);
    if (!strcmp(m, "DELETE") && !jobs_cancel(s, j)) {
        jobs_lock(s);
        const char *st = job_state_name(j->state);
        jobs_unlock(s);
        mhd_result res = reply_error(r, 409, NULL, "job %s has already finished (%s)", id, st);
        jobs_put(s, j);
        return res;
    }
    jobs_lock(s);
    json_t *o = job_to_json(s, j);
    jobs_unlock(s);
    jobs_put(s, j);
    return reply_json(r, 200, o);
}
