/* Parser of redis:// URLs (see redis_url.h). Every refusal says which part
 * of the URL is wrong, so a typo in a deployment script is found at once. */
#include "redis_url.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into out with %XX decoded; 0 on a bad escape, a NUL or overflow. */
static int unescape(const char *s, size_t n, char *out, size_t outn) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return 0;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return 0;
            c = (char)(hi * 16 + lo);
            if (c == 0) return 0;
            i += 2;
        }
        if (o + 1 >= outn) return 0;
        out[o++] = c;
    }
    out[o] = 0;
    return 1;
}

/* Decimal in s[0..n) within [lo, hi]. */
static int parse_num(const char *s, size_t n, long lo, long hi, int *out) {
    if (n == 0 || n > 9) return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

#define FAIL(...)                              \
    do {                                       \
        snprintf(err, errn, __VA_ARGS__);      \
        return 0;                              \
    } while (0)

int redis_url_parse(const char *text, redis_url *u, char *err, size_t errn) {
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!text) FAIL("no Redis URL given");
    const char *p;
    if (!strncmp(text, "redis://", 8)) p = text + 8;
    else if (!strncmp(text, "rediss://", 9)) p = text + 9, u->tls = 1;
    else FAIL("Redis URL '%.100s' must start with redis:// or rediss://", text);
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 127) FAIL("Redis URL contains a space or control character");
    /* authority ends at the first '/', '?' or '#' */
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (p[i] == '@') at = p + i; /* the last '@': passwords may not contain a raw one, but be lenient */
    const char *hp = p;
    if (at) {
        size_t ulen = (size_t)(at - p);
        const char *colon = memchr(p, ':', ulen);
        if (colon) {
            if (!unescape(p, (size_t)(colon - p), u->user, sizeof u->user))
                FAIL("Redis URL: the user name is too long or has a bad %%-escape");
            if (!unescape(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password))
                FAIL("Redis URL: the password is too long or has a bad %%-escape");
            u->has_password = 1;
        } else {
            /* redis://secret@host: a lone field is the password (as redis-cli reads it) */
            if (!unescape(p, ulen, u->password, sizeof u->password))
                FAIL("Redis URL: the password is too long or has a bad %%-escape");
            u->has_password = 1;
        }
        if (u->has_password && !u->password[0] && u->user[0]) FAIL("Redis URL: user '%s' with an empty password", u->user);
        if (u->has_password && !u->password[0]) u->has_password = 0;
        hp = at + 1;
    }
    size_t hplen = (size_t)(p + alen - hp);
    const char *port_s = NULL;
    size_t hlen;
    if (hplen && hp[0] == '[') {
        const char *close = memchr(hp, ']', hplen);
        if (!close) FAIL("Redis URL: '[' of an IPv6 address without ']'");
        hlen = (size_t)(close - hp - 1);
        if (hlen == 0) FAIL("Redis URL: empty IPv6 address");
        for (size_t i = 1; i <= hlen; i++)
            if (!strchr("0123456789abcdefABCDEF:.", hp[i])) FAIL("Redis URL: bad character in the IPv6 address");
        if (hlen + 1 > sizeof u->host) FAIL("Redis URL: host name too long");
        memcpy(u->host, hp + 1, hlen);
        u->host[hlen] = 0;
        const char *after = close + 1;
        if (after < hp + hplen) {
            if (*after != ':') FAIL("Redis URL: expected ':port' after the IPv6 address");
            port_s = after + 1;
        }
    } else {
        const char *colon = memchr(hp, ':', hplen);
        hlen = colon ? (size_t)(colon - hp) : hplen;
        if (colon) port_s = colon + 1;
        if (hlen + 1 > sizeof u->host) FAIL("Redis URL: host name too long");
        for (size_t i = 0; i < hlen; i++) {
            char c = hp[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_'))
                FAIL("Redis URL: bad character '%c' in the host name", c);
        }
        memcpy(u->host, hp, hlen);
        u->host[hlen] = 0;
    }
    if (!u->host[0]) FAIL("Redis URL '%.100s' has no host", text);
    if (port_s && !parse_num(port_s, (size_t)(p + alen - port_s), 1, 65535, &u->port))
        FAIL("Redis URL: the port must be a number from 1 to 65535");
    if (*rest == '/') {
        rest++;
        size_t dlen = strcspn(rest, "?#");
        if (dlen && !parse_num(rest, dlen, 0, 1000000, &u->db))
            FAIL("Redis URL: the database after '/' must be a number (0, 1, ...)");
        rest += dlen;
    }
    if (*rest == '?') {
        rest++;
        while (*rest && *rest != '#') {
            size_t len = strcspn(rest, "&#");
            const char *eq = memchr(rest, '=', len);
            if (!eq) FAIL("Redis URL: query option '%.40s' needs a value (name=value)", rest);
            size_t nlen = (size_t)(eq - rest);
            char *dst = NULL;
            size_t dstn = 0;
            if (nlen == 6 && !strncmp(rest, "cacert", 6)) dst = u->cacert, dstn = sizeof u->cacert;
            else if (nlen == 4 && !strncmp(rest, "cert", 4)) dst = u->cert, dstn = sizeof u->cert;
            else if (nlen == 3 && !strncmp(rest, "key", 3)) dst = u->key, dstn = sizeof u->key;
            else
                FAIL("Redis URL: unknown option '%.*s' (known: cacert, cert, key)", (int)(nlen < 40 ? nlen : 40), rest);
            if (!u->tls) FAIL("Redis URL: option '%.*s' is for TLS: use rediss://", (int)nlen, rest);
            if (!unescape(eq + 1, len - nlen - 1, dst, dstn) || !dst[0])
                FAIL("Redis URL: the value of '%.*s' is empty, too long or has a bad %%-escape", (int)nlen, rest);
            rest += len;
            if (*rest == '&') rest++;
        }
    }
    if (*rest) FAIL("Redis URL: unexpected '%.40s'", rest);
    if (!u->cert[0] != !u->key[0]) FAIL("Redis URL: 'cert' and 'key' go together (a client certificate and its key)");
    return 1;
}
