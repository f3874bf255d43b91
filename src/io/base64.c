/* Base64 encoding and decoding (see base64.h). */
#include "io/base64.h"

#include <stdlib.h>

static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ld_base64_encode(const unsigned char *d, size_t len) {
    size_t n = 4 * ((len + 2) / 3);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

static int value_of(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int ld_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    unsigned char *b = malloc(n / 4 * 3 + 3);
    if (!b) return 0;
    size_t o = 0, pad = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        const int v = value_of(c);
        if (v < 0 || pad) { /* a stray character, or data after the padding */
            free(b);
            return 0;
        }
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6) { /* a lone trailing character is not base64 */
        free(b);
        return 0;
    }
    *out = b;
    *out_len = o;
    return 1;
}
