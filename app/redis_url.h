/* Redis connection URLs of `leandiff worker` / `serve --redis`:
 *
 *     redis://[[user]:password@]host[:port][/db]     (port 6379, db 0 by default)
 *     rediss://...[?cacert=FILE][&cert=FILE&key=FILE] (TLS, see redis_tls.h)
 *
 * rediss:// verifies the server's certificate against the system's CA store
 * or the PEM file `cacert`, and the host name (or IP address) against it;
 * `cert` and `key` are a client certificate and its key (PEM) for servers
 * that ask for one (Redis does by default: tls-auth-clients yes).
 *
 * host may be a name, an IPv4 address or [an IPv6 address]; user and
 * password may use %XX escapes. Pure parsing, no network:
 *
 *     redis_url u;
 *     char err[256];
 *     if (!redis_url_parse(text, &u, err, sizeof err)) ... err names the problem ...
 */
#ifndef LD_APP_REDIS_URL_H
#define LD_APP_REDIS_URL_H

#include <stddef.h>

typedef struct {
    char host[256];
    int port;
    int db;
    char user[128];     /* "" = none (AUTH password, or no AUTH at all) */
    char password[256]; /* "" with has_password = 0: no AUTH */
    int has_password;
    int tls;            /* rediss:// */
    char cacert[1024];  /* rediss:// options: PEM files, "" = not given */
    char cert[1024];
    char key[1024];
} redis_url;

/* Returns 1 and fills u, or 0 with a message in err. */
int redis_url_parse(const char *text, redis_url *u, char *err, size_t errn);

#endif
