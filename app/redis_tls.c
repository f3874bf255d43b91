/* TLS relay for rediss:// (see redis_tls.h): OpenSSL client connection,
 * certificate and host checks, and one thread per connection that copies
 * bytes between the TLS socket and a local socket pair. */
#include "redis_tls.h"

#include <stdio.h>

#ifdef LD_HAVE_OPENSSL
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct redis_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    int tcp;   /* non-blocking, under ssl */
    int local; /* our end of the socket pair */
    pthread_t thread;
};
typedef struct redis_tls relay;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Milliseconds left before the deadline, at least 0. */
static int left_ms(double deadline) {
    double ms = (deadline - now_s()) * 1000;
    return ms > 0 ? (int)ms : 0;
}

static int set_nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* A non-blocking TCP socket connected to host:port, or -1 with err set. */
static int tcp_connect(const char *host, int port, double deadline, char *err, size_t errn) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        snprintf(err, errn, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errn, "%s: no address", host);
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        int e = 0;
        if (set_nonblock(fd, 1) < 0) e = errno;
        else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            e = errno;
            if (e == EINPROGRESS) {
                struct pollfd p = {fd, POLLOUT, 0};
                socklen_t len = sizeof e;
                if (poll(&p, 1, left_ms(deadline)) != 1) e = ETIMEDOUT;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0) e = errno;
            }
        }
        if (e) {
            snprintf(err, errn, "%s", strerror(e));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Waits until fd is ready for what an SSL call asked (SSL_ERROR_WANT_*); 0 on timeout. */
static int wait_ssl(int fd, int ssl_err, int timeout_ms) {
    struct pollfd p = {fd, ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};
    int n;
    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
    return n > 0;
}

/* The last OpenSSL error as text (or what), for messages. */
static const char *ssl_reason(const char *what) {
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : what;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int ssl_write_all(relay *r, const char *p, int n) {
    for (;;) {
        int k = SSL_write(r->ssl, p, n);
        if (k > 0) return 0; /* without partial writes SSL_write writes all of it */
        int e = SSL_get_error(r->ssl, k);
        /* a server that takes nothing for a minute is given up (hiredis's own timeout is 60 s) */
        if ((e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) || !wait_ssl(r->tcp, e, 60000)) return -1;
    }
}

/* Ends the TLS connection and closes both sockets (the struct stays). */
static void relay_end(relay *r) {
    if (r->ssl) {
        SSL_shutdown(r->ssl); /* best effort close_notify; the socket is non-blocking */
        SSL_free(r->ssl);
        r->ssl = NULL;
    }
    SSL_CTX_free(r->ctx);
    r->ctx = NULL;
    if (r->tcp >= 0) close(r->tcp);
    if (r->local >= 0) close(r->local);
    r->tcp = r->local = -1;
}

static void *relay_main(void *arg) {
    relay *r = arg;
    char buf[16384];
    for (;;) {
        struct pollfd p[2] = {{r->tcp, POLLIN, 0}, {r->local, POLLIN, 0}};
        const int pending = SSL_pending(r->ssl) > 0; /* decrypted bytes poll cannot see */
        if (poll(p, 2, pending ? 0 : -1) < 0 && errno != EINTR) break;
        if (pending || p[0].revents) {
            int k = SSL_read(r->ssl, buf, sizeof buf);
            if (k > 0) {
                if (write_all(r->local, buf, (size_t)k) < 0) break;
            } else {
                int e = SSL_get_error(r->ssl, k);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break; /* closed or failed */
            }
        }
        if (p[1].revents) {
            ssize_t k = read(r->local, buf, sizeof buf);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0 || ssl_write_all(r, buf, (int)k) < 0) break; /* hiredis closed its end */
        }
    }
    relay_end(r);
    OPENSSL_thread_stop(); /* this thread's error queue */
    return NULL;
}

/* 1 if path can be opened for reading, else 0 with err naming it and why. */
static int readable(const char *what, const char *path, char *err, size_t errn) {
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return 1;
    }
    snprintf(err, errn, "TLS: cannot read the %s %s: %s", what, path, strerror(errno));
    return 0;
}

static int setup_ctx(relay *r, const redis_url *u, char *err, size_t errn) {
    if ((u->cacert[0] && !readable("CA certificates", u->cacert, err, errn)) ||
        (u->cert[0] && !readable("client certificate", u->cert, err, errn)) ||
        (u->key[0] && !readable("client key", u->key, err, errn)))
        return 0;
    r->ctx = SSL_CTX_new(TLS_client_method());
    if (!r->ctx) {
        snprintf(err, errn, "TLS: %s", ssl_reason("cannot create a context"));
        return 0;
    }
    SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_clear_mode(r->ctx, SSL_MODE_AUTO_RETRY);
    if (u->cacert[0] ? SSL_CTX_load_verify_locations(r->ctx, u->cacert, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(r->ctx) != 1) {
        snprintf(err, errn, "TLS: cannot read the CA certificates %s (%s)", u->cacert[0] ? u->cacert : "of the system",
                 ssl_reason("bad file"));
        return 0;
    }
    if (u->cert[0] && SSL_CTX_use_certificate_chain_file(r->ctx, u->cert) != 1) {
        snprintf(err, errn, "TLS: cannot read the client certificate %s (%s)", u->cert, ssl_reason("bad file"));
        return 0;
    }
    if (u->key[0] && (SSL_CTX_use_PrivateKey_file(r->ctx, u->key, SSL_FILETYPE_PEM) != 1 ||
                      SSL_CTX_check_private_key(r->ctx) != 1)) {
        snprintf(err, errn, "TLS: cannot use the client key %s (%s)", u->key, ssl_reason("bad file or not the "
                                                                                            "certificate's key"));
        return 0;
    }
    r->ssl = SSL_new(r->ctx);
    if (!r->ssl) {
        snprintf(err, errn, "TLS: %s", ssl_reason("out of memory"));
        return 0;
    }
    unsigned char addr[16];
    const int is_ip = inet_pton(AF_INET, u->host, addr) == 1 || inet_pton(AF_INET6, u->host, addr) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), u->host) != 1
              : SSL_set1_host(r->ssl, u->host) != 1 || SSL_set_tlsext_host_name(r->ssl, u->host) != 1) {
        snprintf(err, errn, "TLS: cannot check the name %s (%s)", u->host, ssl_reason("bad name"));
        return 0;
    }
    return 1;
}

redis_tls *redis_tls_connect(const redis_url *u, int timeout_s, int *fd, char *err, size_t errn) {
    const double deadline = now_s() + timeout_s;
    relay *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    r->tcp = r->local = -1;
    int sv[2] = {-1, -1};
    if (!setup_ctx(r, u, err, errn)) goto fail;
    if ((r->tcp = tcp_connect(u->host, u->port, deadline, err, errn)) < 0) goto fail;
    SSL_set_fd(r->ssl, r->tcp);
    for (;;) {
        int k = SSL_connect(r->ssl);
        if (k == 1) break;
        int e = SSL_get_error(r->ssl, k);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && wait_ssl(r->tcp, e, left_ms(deadline)))
            continue;
        long v = SSL_get_verify_result(r->ssl);
        if (v != X509_V_OK)
            snprintf(err, errn, "TLS: the server's certificate was refused: %s", X509_verify_cert_error_string(v));
        else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            snprintf(err, errn, "TLS handshake: no answer within %d s (does the server speak TLS on this port?)",
                     timeout_s);
        else
            snprintf(err, errn, "TLS handshake failed: %s (does the server speak TLS on this port, and does it want "
                                "a client certificate: cert=, key=?)",
                     ssl_reason("connection closed"));
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errn, "socketpair: %s", strerror(errno));
        goto fail;
    }
    r->local = sv[1];
    /* the relay takes no signals: they stay with the threads that handle them,
     * and a write to a closed socket gives EPIPE instead of SIGPIPE */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, relay_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errn, "cannot start the TLS relay thread: %s", strerror(rc));
        close(sv[0]);
        goto fail;
    }
    *fd = sv[0];
    return r;
fail:
    relay_end(r);
    free(r);
    return NULL;
}

void redis_tls_close(redis_tls *t) {
    if (!t) return;
    pthread_join(t->thread, NULL);
    free(t);
}

#else

redis_tls *redis_tls_connect(const redis_url *u, int timeout_s, int *fd, char *err, size_t errn) {
    (void)u;
    (void)timeout_s;
    (void)fd;
    snprintf(err, errn, "rediss:// needs OpenSSL: this leandiff was built without it (install libssl-dev and "
                        "rebuild)");
    return NULL;
}

void redis_tls_close(redis_tls *t) { (void)t; }

#endif
