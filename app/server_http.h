/* Replies of `leandiff serve` on libmicrohttpd: every answer goes through
 * server_queue(), which adds the common headers; JSON errors have the shape
 * {"error": message, "field": name}, or OpenAI's
 * {"error": {"message", "type", "param", "code"}} under /v1/.
 *
 *     mhd_result route(server_req *r) {
 *         json_t *body = server_parse_body(r, &res);   // 400 already sent when NULL
 *         if (!body) return res;
 *         return reply_json(r, 200, answer);          // takes the reference
 *     }
 *
 * Knows nothing of jobs or models.
 */
#ifndef LD_APP_SERVER_HTTP_H
#define LD_APP_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

/* What the access log records of a request's answer (filled by server_queue). */
typedef struct {
    unsigned status;
    long long bytes;        /* body bytes of the answer; -1 when streamed */
} server_answer;

/* One request as the routes see it. */
typedef struct {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *body;       /* NUL-terminated, may be empty */
    size_t body_len;
    const char *cors_origin; /* Access-Control-Allow-Origin for the answer, NULL: none */
    server_answer *answer;   /* NULL: not logged */
} server_req;

/* Adds the common headers, queues and releases resp. */
mhd_result server_queue(server_req *r, unsigned status, struct MHD_Response *resp);
/* The reply_* calls take ownership of j / data (unless copy). */
mhd_result reply_json(server_req *r, unsigned status, json_t *j);
mhd_result reply_error(server_req *r, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error with one extra header (hname NULL: none). */
mhd_result reply_error_hdr(server_req *r, unsigned status, const char *hname, const char *hvalue, const char *msg);
mhd_result reply_bytes(server_req *r, unsigned status, const char *content_type, void *data, size_t len,
                       int copy);
/* 503 with Retry-After. */
mhd_result reply_busy(server_req *r, int retry_after);
/* 405 with Allow. */
mhd_result reply_method(server_req *r, const char *allow);

/* Parses r->body as a JSON object; on failure replies 400 and returns NULL. */
json_t *server_parse_body(server_req *r, mhd_result *res);

/* 1 if the client closed its side of the connection (conn: struct MHD_Connection *). */
int server_client_gone(void *conn);

#endif
