/* Replies of `leandiff serve` (see server_http.h). */
#include "server_http.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- replies --------------------------------------------------------------- */

mhd_result server_queue(server_req *r, unsigned status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    if (r->answer) {
        r->answer->status = status;
        if (!r->answer->bytes) r->answer->bytes = -1; /* streamed, unless reply_bytes said */
    }
    if (r->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    mhd_result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

mhd_result reply_bytes(server_req *r, unsigned status, const char *content_type, void *data, size_t len, int copy) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        if (!copy) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    if (r->answer) r->answer->bytes = (long long)len;
    return server_queue(r, status, resp);
}

mhd_result reply_json(server_req *r, unsigned status, json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) return MHD_NO;
    return reply_bytes(r, status, "application/json", text, strlen(text), 0);
}

/* {"error": message, "field": name} everywhere, except under /v1/ where
 * OpenAI clients expect {"error": {"message", "type", "param", "code"}}. */
static json_t *error_json(const server_req *r, unsigned status, const char *field, const char *msg) {
    json_t *o = json_object();
    if (!strncmp(r->path, "/v1/", 4)) {
        json_t *e = json_object();
        json_object_set_new(e, "message", json_string(msg));
        json_object_set_new(e, "type", json_string(status == 401   ? "authentication_error"
                                                   : status >= 500 ? "server_error"
                                                                   : "invalid_request_error"));
        json_object_set_new(e, "param", field ? json_string(field) : json_null());
        json_object_set_new(e, "code", json_null());
        json_object_set_new(o, "error", e);
    } else {
        json_object_set_new(o, "error", json_string(msg));
        if (field) json_object_set_new(o, "field", json_string(field));
    }
    return o;
}

mhd_result reply_error_hdr(server_req *r, unsigned status, const char *hname, const char *hvalue,
                                  const char *msg) {
    json_t *o = error_json(r, status, NULL, msg);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (hname) MHD_add_response_header(resp, hname, hvalue);
    if (r->answer) r->answer->bytes = (long long)strlen(text);
    return server_queue(r, status, resp);
}

mhd_result reply_error(server_req *r, unsigned status, const char *field, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply_json(r, status, error_json(r, status, field, msg));
}

mhd_result reply_busy(server_req *r, int retry_after) {
    char msg[160], ra[16];
    snprintf(msg, sizeof msg, "the queue is full; retry after %d s", retry_after);
    snprintf(ra, sizeof ra, "%d", retry_after);
    return reply_error_hdr(r, 503, "Retry-After", ra, msg);
}

mhd_result reply_method(server_req *r, const char *allow) {
    char msg[128];
    snprintf(msg, sizeof msg, "method %.16s is not allowed here; use %s", r->method, allow);
    return reply_error_hdr(r, 405, "Allow", allow, msg);
}

int server_client_gone(void *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info((struct MHD_Connection *)conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    int fd = ci->connect_fd;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    /* 0: the client closed its side. Data (a pipelined request) means it is still there. */
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

json_t *server_parse_body(server_req *r, mhd_result *res) {
    if (r->body_len == 0) {
        *res = reply_error(r, 400, NULL, "the request body must be a JSON object; it is empty");
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        *res = reply_error(r, 400, NULL, "invalid JSON at line %d, column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *res = reply_error(r, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}
