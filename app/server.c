/* The HTTP side of `leandiff serve` on libmicrohttpd: one thread per
 * connection, request bodies collected up to cfg.max_body (413 past it),
 * the Host / Origin checks (and CORS for the --cors-origin sites) and the
 * Bearer key checked before any body is read, then routing to the page or to
 * the three APIs (server_api_*.c). Slow clients: a connection may idle
 * --header-timeout seconds before its headers are complete and
 * --idle-timeout seconds after, one address may hold --per-ip-limit
 * connections; a body over --max-body is read and dropped (up to a bound)
 * so the client reads the 413 instead of a reset. One access-log line per
 * request (never the key or the body).
 * server_run() blocks until SIGINT or SIGTERM and then shuts down in order:
 * jobs cancelled, connections finished, worker joined, memory released.
 */
#include "server.h"
#include "server_api.h"
#include "server_http.h"
#include "web_assets.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Per-request state, kept by libmicrohttpd in *con_cls between calls. */
typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
    int answered; /* a reply was queued before the body arrived */
    const char *cors; /* the request's Origin when --cors-origin allows it */
    server_answer answer;
    double t0;
    char method[16], path[256];
} conn_state;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- the page ------------------------------------------------------------- */

static const char *content_type_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    if (!strcmp(dot, ".png")) return "image/png";
    if (!strcmp(dot, ".ico")) return "image/x-icon";
    return "application/octet-stream";
}

/* GET / and the other files of app/web/. -1 if there is no such file. */
static int serve_asset(server_req *r) {
    const char *name = !strcmp(r->path, "/") ? "index.html" : r->path + 1;
    for (int i = 0; ld_web_assets[i].name; i++) {
        if (strcmp(ld_web_assets[i].name, name)) continue;
        if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) return reply_method(r, "GET, HEAD");
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            ld_web_assets[i].size, (void *)ld_web_assets[i].data, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        if (r->answer) r->answer->bytes = (long long)ld_web_assets[i].size;
        MHD_add_response_header(resp, "Content-Type", content_type_of(name));
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        return server_queue(r, 200, resp);
    }
    return -1;
}

/* ---- checks made before the body is read ----------------------------------- */

static int is_api_path(const char *path) {
    return !strncmp(path, "/sdapi/", 7) || !strncmp(path, "/v1/", 4) || !strncmp(path, "/api/", 5);
}

static int is_loopback_name(const char *host, size_t n) {
    static const char *names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && !strncasecmp(host, names[i], n)) return 1;
    return 0;
}

static int listening_on_loopback(const server_ctx *s) {
    const char *h = s->cfg.host;
    return !strcmp(h, "127.0.0.1") || !strcmp(h, "localhost") || !strcmp(h, "::1");
}

/* Host part of a Host header value ("name:port" or "[v6]:port"). */
static size_t host_len(const char *h) {
    if (h[0] == '[') {
        const char *e = strchr(h, ']');
        return e ? (size_t)(e - h) + 1 : strlen(h);
    }
    const char *c = strchr(h, ':');
    return c ? (size_t)(c - h) : strlen(h);
}

/* Web pages from other sites must not drive this server: a browser marks
 * their requests with an Origin that differs from the Host, and a page that
 * rebinds its own DNS name to 127.0.0.1 still shows a foreign Host. Clients
 * that are not browsers (curl, scripts) send no Origin and pass. */
/* An Origin the --cors-origin flags allow ("*": any). */
static int cors_allowed(const server_ctx *s, const char *origin) {
    for (int i = 0; i < s->cfg.n_cors; i++)
        if (!strcmp(s->cfg.cors_origins[i], "*") || !strcmp(s->cfg.cors_origins[i], origin)) return 1;
    return 0;
}

static const char *check_origin(const server_ctx *s, struct MHD_Connection *conn, const char **cors) {
    *cors = NULL;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (listening_on_loopback(s) && host && !is_loopback_name(host, host_len(host)))
        return "this server listens on loopback and answers only to Host: localhost / 127.0.0.1 / [::1]";
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin && strcmp(origin, "null") && cors_allowed(s, origin)) {
        *cors = origin; /* a site the operator named: answered with CORS headers */
        return NULL;
    }
    if (!origin || !strcmp(origin, "null")) return origin ? "requests from an opaque origin are refused" : NULL;
    /* https too: behind a TLS-terminating proxy the page's origin is https://. */
    const char *o = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
    if (!o || !host || strcmp(o, host))
        return "cross-origin requests are refused (serve --cors-origin ORIGIN allows a site)";
    return NULL;
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static int check_key(const server_ctx *s, struct MHD_Connection *conn) {
    if (!s->cfg.api_key) return 1;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7)) return 0;
    const char *given = auth + 7, *want = s->cfg.api_key;
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)(want[i] ^ given[i < gl ? i : 0]);
    return diff == 0;
}

static mhd_result reply_unauthorized(server_req *r) {
    return reply_error_hdr(r, 401, "WWW-Authenticate", "Bearer realm=\"leandiff\"",
                           "this server needs an API key: send Authorization: Bearer KEY");
}

/* ---- dispatch ------------------------------------------------------------------ */

static mhd_result route(server_ctx *s, server_req *r) {
    int res = -1;
    if (!is_api_path(r->path)) res = serve_asset(r);
    if (res < 0) res = api_a1111(s, r);
    if (res < 0) res = api_openai(s, r);
    if (res < 0) res = api_native(s, r);
    if (res < 0) return reply_error(r, 404, NULL, "no such path: %s", r->path);
    return (mhd_result)res;
}

/* A copy for the log with control characters replaced, so a request cannot
 * forge log lines. */
static void copy_printable(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = 0;
}

/* A CORS preflight (OPTIONS from an allowed site): 204 with what it may send. */
static mhd_result reply_preflight(server_req *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    if (r->answer) r->answer->bytes = 0;
    return server_queue(r, 204, resp);
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *upload_data, size_t *upload_data_size,
                             void **con_cls) {
    server_ctx *s = cls;
    server_req r = {.conn = conn, .method = method, .path = url, .body = "", .body_len = 0};
    conn_state *cs = *con_cls;
    if (!cs) {
        /* First call: headers only. Refuse early so no body is read for nothing. */
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        cs->t0 = now_ms();
        copy_printable(cs->method, sizeof cs->method, method);
        copy_printable(cs->path, sizeof cs->path, url);
        r.answer = &cs->answer;
        /* the headers are in: from now on the connection may idle longer (body, slow answers) */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg.idle_timeout);
        const char *why = check_origin(s, conn, &cs->cors);
        r.cors_origin = cs->cors;
        if (why) {
            cs->answered = 1;
            return reply_error(&r, 403, NULL, "%s", why);
        }
        if (cs->cors && !strcmp(method, "OPTIONS")) {
            cs->answered = 1;
            return reply_preflight(&r);
        }
        if (is_api_path(url) && !check_key(s, conn)) {
            cs->answered = 1;
            return reply_unauthorized(&r);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        const unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > s->cfg.max_body) {
            /* A client that waits for "100 Continue" or a body too large to
             * read for nothing gets the answer now; the others send their
             * body first, so it is read and dropped and the 413 comes after
             * (answering early would reset the connection under them). */
            const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
            if ((expect && !strcasecmp(expect, "100-continue")) || len > s->cfg.drain_limit) {
                cs->answered = 1;
                return reply_error(&r, 413, NULL, "request body too large: %s bytes, the limit is %zu", cl,
                                   s->cfg.max_body);
            }
            cs->too_big = 1;
        }
        return MHD_YES;
    }
    r.answer = &cs->answer;
    r.cors_origin = cs->cors;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->answered || cs->too_big) return MHD_YES; /* dropped */
        if (cs->len + n > s->cfg.max_body) {
            cs->too_big = 1;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 1024;
            while (cap < cs->len + n + 1) cap *= 2;
            char *b = realloc(cs->body, cap);
            if (!b) return MHD_NO;
            cs->body = b;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        cs->body[cs->len] = 0;
        return MHD_YES;
    }
    if (cs->answered) return MHD_YES;
    if (cs->too_big) return reply_error(&r, 413, NULL, "request body too large: the limit is %zu bytes", s->cfg.max_body);
    if (cs->body) {
        r.body = cs->body;
        r.body_len = cs->len;
    }
    cs->answered = 1;
    return route(s, &r);
}

/* The access log: client, method, path (no query, never a body or the key),
 * status, answer bytes ("-" when streamed or none was sent), milliseconds. */
static void log_access(const server_ctx *s, struct MHD_Connection *conn, const conn_state *cs) {
    if (!s->cfg.access_log) return;
    char addr[INET6_ADDRSTRLEN + 2] = "-";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr, sizeof addr);
    }
    char bytes[32] = "-";
    if (cs->answer.bytes >= 0 && cs->answer.status) snprintf(bytes, sizeof bytes, "%lld", cs->answer.bytes);
    char status[16] = "-";
    if (cs->answer.status) snprintf(status, sizeof status, "%u", cs->answer.status);
    fprintf(stderr, "leandiff serve: %s \"%s %s\" %s %s %.0f ms\n", addr, cs->method, cs->path, status, bytes,
            now_ms() - cs->t0);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
    conn_state *cs = *con_cls;
    if (!cs) return;
    log_access(cls, conn, cs);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- start, wait for a signal, stop ------------------------------------------ */

/* libmicrohttpd's own messages ("Connection was closed by remote side ...",
 * "Server reached connection limit ...") are routine under load: shown with -v. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    if (ld_get_log_level() < LD_LOG_INFO) return;
    fputs("leandiff serve: libmicrohttpd: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int server_run(server_ctx *s, server_executor *exec) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    /* Blocked here, so every thread started below inherits the mask and only sigwait sees them. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gai || !ai) {
        fprintf(stderr, "leandiff serve: --host %s: %s\n", s->cfg.host, gai ? gai_strerror(gai) : "no address");
        return 1;
    }
    if (!jobs_init(&s->jobs, &s->cfg, s->family, exec)) {
        freeaddrinfo(ai);
        return 1;
    }
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.per_ip_limit,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.header_timeout,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                                 MHD_OPTION_END);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (!daemon) {
        fprintf(stderr, "leandiff serve: cannot listen on %s port %d (in use, or not an address of this machine)\n",
                s->cfg.host, s->cfg.port);
        jobs_stop(&s->jobs);
        jobs_free(&s->jobs);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    int bound = di ? di->port : s->cfg.port;
    printf("leandiff serve: listening on http://%s%s%s:%d/ (model %s, %s)%s\n", family == AF_INET6 ? "[" : "",
           s->cfg.host, family == AF_INET6 ? "]" : "", bound, s->model_name, s->family,
           s->cfg.api_key ? ", API key required" : "");
    if (!strcmp(s->cfg.host, "0.0.0.0") || !strcmp(s->cfg.host, "::")) { /* every address: name reachable ones */
        char name[256] = "";
        if (gethostname(name, sizeof name - 1)) name[0] = 0;
        const char *local = family == AF_INET6 ? "[::1]" : "127.0.0.1";
        if (name[0])
            printf("leandiff serve: open http://%s:%d/ on this machine, http://%s:%d/ from others\n", local, bound,
                   name, bound);
        else
            printf("leandiff serve: open http://%s:%d/ on this machine\n", local, bound);
    }
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "leandiff serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    jobs_stop(&s->jobs);     /* queued jobs cancelled, the running one stops at its next step */
    MHD_stop_daemon(daemon); /* waiters and event streams see the jobs finished and return */
    jobs_free(&s->jobs);
    return 0;
}
