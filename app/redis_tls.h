/* rediss:// for a hiredis without TLS (Debian 12 ships hiredis 0.14, whose
 * TLS support came in 1.0): OpenSSL makes the TLS connection to the server
 * and a relay thread moves bytes between it and one end of a socket pair;
 * hiredis gets the other end (redisConnectFd) and speaks plain RESP on it.
 *
 *     int fd;
 *     char err[256];
 *     redis_tls *t = redis_tls_connect(&url, 5, &fd, err, sizeof err);
 *     if (t) rc = redisConnectFd(fd);
 *     ...
 *     redisFree(rc);          // closes fd: the relay ends
 *     redis_tls_close(t);     // joins it
 *
 * The server's certificate is verified (the system's CA store, or the URL's
 * `cacert`) and so is its name or IP address; `cert`/`key` are sent when the
 * server asks for a client certificate. Closing fd (redisFree) ends the relay,
 * which then closes the TLS connection; the server closing it closes the
 * relay's end, so hiredis sees the connection lost.
 */
#ifndef LD_APP_REDIS_TLS_H
#define LD_APP_REDIS_TLS_H

#include <stddef.h>

#include "redis_url.h"

typedef struct redis_tls redis_tls;

/* The relay with *fd set, or NULL with a message in err (connection refused,
 * handshake or certificate failure, a file that cannot be read, no OpenSSL
 * in this build). timeout_s bounds the connect and the handshake. */
redis_tls *redis_tls_connect(const redis_url *u, int timeout_s, int *fd, char *err, size_t errn);
/* After fd was closed (redisFree): waits for the relay thread to end and
 * frees it. NULL is ignored. */
void redis_tls_close(redis_tls *t);

#endif
