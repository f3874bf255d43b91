/* multipart/form-data parsing (see multipart.h): boundary from the
 * Content-Type, then delimiter by delimiter, each part's headers read line by
 * line (Content-Disposition's name and filename, Content-Type), its data left
 * in place. */
#include "multipart.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    return 0;
}

/* Skips spaces and tabs. */
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* The value of parameter `key` in "type; a=b; key="value"" between p and end
 * (a quoted string with \-escapes, or a token) into out; 1 found, 0 absent,
 * -1 malformed or too long. */
static int param(const char *p, const char *end, const char *key, char *out, size_t outn) {
    const size_t kl = strlen(key);
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi) return 0;
        p = skip_ws(semi + 1, end);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) return 0;
        const char *ke = eq;
        while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        const int match = (size_t)(ke - p) == kl && !strncasecmp(p, key, kl);
        const char *v = skip_ws(eq + 1, end);
        size_t o = 0;
        if (v < end && *v == '"') {
            for (v++; v < end && *v != '"'; v++) {
                if (*v == '\\' && v + 1 < end) v++;
                if (match && o + 1 >= outn) return -1;
                if (match) out[o++] = *v;
            }
            if (v >= end) return -1; /* unterminated quoted string */
            v++;
        } else {
            for (; v < end && *v != ';' && *v != ' ' && *v != '\t'; v++) {
                if (match && o + 1 >= outn) return -1;
                if (match) out[o++] = *v;
            }
        }
        if (match) {
            out[o] = 0;
            return 1;
        }
        p = v;
    }
    return 0;
}

int multipart_boundary(const char *ct, char *boundary, char *err, size_t errn) {
    if (!ct || !*ct) return fail(err, errn, "Content-Type must be multipart/form-data, the request has none");
    const char *end = ct + strlen(ct), *p = skip_ws(ct, end);
    static const char type[] = "multipart/form-data";
    if (strncasecmp(p, type, sizeof type - 1) || (p[sizeof type - 1] && p[sizeof type - 1] != ';' &&
                                                   p[sizeof type - 1] != ' '))
        return fail(err, errn, "Content-Type must be multipart/form-data, got \"%.64s\"", ct);
    const int r = param(p, end, "boundary", boundary, MULTIPART_BOUNDARY_MAX + 1);
    if (r < 0) return fail(err, errn, "multipart/form-data: the boundary is malformed or longer than %d characters",
                           MULTIPART_BOUNDARY_MAX);
    if (r == 0 || !boundary[0]) return fail(err, errn, "multipart/form-data without a boundary parameter");
    return 1;
}

/* First occurrence of needle (n bytes) in hay (h bytes), or NULL. */
static const uint8_t *find(const uint8_t *hay, size_t h, const char *needle, size_t n) {
    if (n == 0 || h < n) return NULL;
    const uint8_t *last = hay + (h - n);
    for (const uint8_t *p = hay; p <= last; p++) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (!p) return NULL;
        if (!memcmp(p, needle, n)) return p;
    }
    return NULL;
}

/* One header section [h, he) (without its blank line) into part. */
static int part_headers(int k, const char *h, const char *he, mp_part *part, char *err, size_t errn) {
    int have_disp = 0;
    while (h < he) {
        const char *eol = (const char *)find((const uint8_t *)h, (size_t)(he - h), "\r\n", 2);
        const char *le = eol ? eol : he;
        const char *colon = memchr(h, ':', (size_t)(le - h));
        if (!colon || colon == h) return fail(err, errn, "part %d: header line without ':'", k);
        for (const char *c = h; c < colon; c++)
            if (!isgraph((unsigned char)*c)) return fail(err, errn, "part %d: bad header name", k);
        const size_t nl = (size_t)(colon - h);
        const char *v = skip_ws(colon + 1, le);
        if (nl == 19 && !strncasecmp(h, "Content-Disposition", nl)) {
            if ((size_t)(le - v) < 9 || strncasecmp(v, "form-data", 9) || (v + 9 < le && v[9] != ';' && v[9] != ' '))
                return fail(err, errn, "part %d: Content-Disposition must be form-data", k);
            int r = param(v, le, "name", part->name, sizeof part->name);
            if (r <= 0 || !part->name[0])
                return fail(err, errn, "part %d: Content-Disposition without a name (or a name over %zu bytes)", k,
                            sizeof part->name - 1);
            r = param(v, le, "filename", part->filename, sizeof part->filename);
            if (r < 0) return fail(err, errn, "part %d: malformed or too long filename", k);
            part->is_file = r == 1;
            have_disp = 1;
        } else if (nl == 12 && !strncasecmp(h, "Content-Type", nl)) {
            const size_t vl = (size_t)(le - v);
            if (vl >= sizeof part->content_type) return fail(err, errn, "part %d: Content-Type too long", k);
            memcpy(part->content_type, v, vl);
            part->content_type[vl] = 0;
        } /* other headers (Content-Transfer-Encoding, ...) are ignored, as RFC 7578 allows */
        h = eol ? eol + 2 : he;
    }
    if (!have_disp) return fail(err, errn, "part %d has no Content-Disposition: form-data; name=... header", k);
    return 1;
}

int multipart_parse(const char *boundary, const void *body, size_t len, mp_part *parts, int max_parts, int *nparts,
                    char *err, size_t errn) {
    *nparts = 0;
    char delim[MULTIPART_BOUNDARY_MAX + 5] = "\r\n--";
    const size_t bl = strlen(boundary);
    if (!bl || bl > MULTIPART_BOUNDARY_MAX) return fail(err, errn, "multipart/form-data: bad boundary length");
    memcpy(delim + 4, boundary, bl);
    const size_t dl = bl + 4;
    const uint8_t *b = body, *end = b + len;
    /* The first delimiter may open the body (no CRLF before it) or follow a preamble. */
    const uint8_t *p;
    if (len >= dl - 2 && !memcmp(b, delim + 2, dl - 2)) {
        p = b + dl - 2;
    } else {
        const uint8_t *d = find(b, len, delim, dl);
        if (!d) return fail(err, errn, "multipart/form-data: the body does not contain the boundary");
        p = d + dl;
    }
    for (int k = 1;; k++) {
        /* after a delimiter: "--" ends the body, else optional blanks and CRLF */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return fail(err, errn, "part %d: the boundary line is not followed by CRLF (truncated body?)", k);
        p += 2;
        if (k > max_parts) return fail(err, errn, "more than %d parts in the form", max_parts);
        size_t room = (size_t)(end - p);
        const uint8_t *hend = room >= 2 && p[0] == '\r' && p[1] == '\n' ? p : NULL; /* no headers at all */
        if (!hend) {
            const size_t look = room < MULTIPART_HEADER_MAX + 4 ? room : MULTIPART_HEADER_MAX + 4;
            const uint8_t *blank = find(p, look, "\r\n\r\n", 4);
            if (!blank)
                return fail(err, errn, room < MULTIPART_HEADER_MAX ? "part %d: headers not terminated by a blank line"
                                                                   : "part %d: headers longer than 4096 bytes", k);
            hend = blank + 2;
        }
        mp_part *part = &parts[k - 1];
        memset(part, 0, sizeof *part);
        if (!part_headers(k, (const char *)p, (const char *)hend, part, err, errn)) return 0;
        const uint8_t *data = hend + 2;
        const uint8_t *d = find(data, (size_t)(end - data), delim, dl);
        if (!d) return fail(err, errn, "part %d (\"%s\") is not closed by the boundary (truncated body?)", k, part->name);
        part->data = data;
        part->len = (size_t)(d - data);
        *nparts = k;
        p = d + dl;
    }
    if (*nparts == 0) return fail(err, errn, "multipart/form-data without any part");
    return 1;
}

const mp_part *multipart_get(const mp_part *parts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(parts[i].name, name)) return &parts[i];
    return NULL;
}
