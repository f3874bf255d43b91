/* CLIP text cleaning (see clip_clean.h): the Python reference's
 * html.unescape(html.unescape(text)), whitespace clean-up and lower(), on
 * Unicode code points, with NFC and character classes from utf8proc. */
#include "text/clip_clean.h"

#include "text/html_entities.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_reserve(cpbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) return 0;
    b->v = v;
    b->cap = cap;
    return 1;
}

static int cp_push(cpbuf *b, uint32_t c) {
    if (!cp_reserve(b, 1)) return 0;
    b->v[b->n++] = c;
    return 1;
}

static ld_status nomem(ld_ctx *ctx) { return ld_fail(ctx, LD_ERR_NOMEM, "text cleaning: out of memory"); }

/* ---- UTF-8 ---- */

ld_status ld_utf8_decode(ld_ctx *ctx, const char *text, size_t len, uint32_t **out, size_t *n) {
    const unsigned char *s = (const unsigned char *)text;
    cpbuf b = {0};
    if (!cp_reserve(&b, len + 1)) return nomem(ctx);
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;
        int k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F;
            k = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            k = 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            k = 4;
        } else {
            free(b.v);
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text: invalid UTF-8 at byte offset %zu (byte 0x%02X)", i, c);
        }
        if (len - i < (size_t)k) {
            free(b.v);
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text: invalid UTF-8 at byte offset %zu (truncated sequence)",
                           i);
        }
        for (int j = 1; j < k; j++) {
            unsigned t = s[i + j];
            /* the second byte's range excludes overlongs, surrogates and > U+10FFFF */
            unsigned lo = 0x80, hi = 0xBF;
            if (j == 1 && c == 0xE0) lo = 0xA0;
            if (j == 1 && c == 0xED) hi = 0x9F;
            if (j == 1 && c == 0xF0) lo = 0x90;
            if (j == 1 && c == 0xF4) hi = 0x8F;
            if (t < lo || t > hi) {
                free(b.v);
                return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                               "text: invalid UTF-8 at byte offset %zu (byte 0x%02X followed by 0x%02X)", i, c, t);
            }
            cp = (cp << 6) | (t & 0x3F);
        }
        b.v[b.n++] = cp;
        i += (size_t)k;
    }
    *out = b.v;
    *n = b.n;
    return LD_OK;
}

int ld_utf8_encode(uint32_t c, unsigned char buf[4]) {
    if (c < 0x80) {
        buf[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        buf[0] = (unsigned char)(0xC0 | (c >> 6));
        buf[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        buf[0] = (unsigned char)(0xE0 | (c >> 12));
        buf[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        buf[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    buf[0] = (unsigned char)(0xF0 | (c >> 18));
    buf[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    buf[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    buf[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- character classes ---- */

static utf8proc_category_t category(uint32_t c) {
    return c > 0x10FFFF ? UTF8PROC_CATEGORY_CN : utf8proc_category((utf8proc_int32_t)c);
}

int ld_uni_is_letter(uint32_t c) {
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}

int ld_uni_is_number(uint32_t c) {
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int ld_uni_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isspace(), used by str.strip(): White_Space plus U+001C..U+001F. */
static int py_isspace(uint32_t c) { return ld_uni_is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

/* ---- html.unescape ---- */

static const char *entity_lookup(const char *name) {
    int lo = 0, hi = ld_html_entity_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(ld_html_entities[mid].name, name);
        if (c == 0) return ld_html_entities[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static int push_utf8(cpbuf *b, const char *s) {
    uint32_t *cps;
    size_t n;
    if (ld_utf8_decode(NULL, s, strlen(s), &cps, &n) != LD_OK) return 0; /* table is valid UTF-8 */
    int ok = cp_reserve(b, n);
    if (ok) {
        memcpy(b->v + b->n, cps, n * sizeof *cps);
        b->n += n;
    }
    free(cps);
    return ok;
}

/* Python: _invalid_charrefs, then surrogates / > U+10FFFF -> U+FFFD, then
 * _invalid_codepoints -> "", else chr(num). */
static int push_charref(cpbuf *b, uint32_t num) {
    for (int i = 0; i < ld_html_invalid_charref_count; i++)
        if (ld_html_invalid_charrefs[i].num == num) return push_utf8(b, ld_html_invalid_charrefs[i].value);
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return cp_push(b, 0xFFFD);
    for (int i = 0; i < ld_html_invalid_codepoint_count; i++)
        if (ld_html_invalid_codepoints[i] == num) return 1;
    return cp_push(b, num);
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int hex_val(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* One pass of html.unescape: the regex
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) and its replacement. */
static int html_unescape(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_reserve(out, n + 1)) return 0; /* never NULL, even for empty text */
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            if (!cp_push(out, in[i++])) return 0;
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            size_t k = j + 1;
            int hex = 0;
            if (k < n && (in[k] == 'x' || in[k] == 'X') && k + 1 < n && hex_val(in[k + 1]) >= 0) {
                hex = 1;
                k++;
            } else if (!(k < n && is_digit(in[k]))) {
                if (!cp_push(out, in[i++])) return 0; /* a literal '&' */
                continue;
            }
            uint32_t num = 0;
            for (; k < n && (hex ? hex_val(in[k]) >= 0 : is_digit(in[k])); k++) {
                uint32_t d = hex ? (uint32_t)hex_val(in[k]) : in[k] - '0';
                num = num > 0x10FFFF ? num : num * (hex ? 16 : 10) + d; /* saturates above U+10FFFF */
            }
            if (k < n && in[k] == ';') k++;
            if (!push_charref(out, num)) return 0;
            i = k;
            continue;
        }
        /* named reference: up to 32 characters, then an optional ';' */
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' && in[k] != ' ' &&
               in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
            k++;
        if (k == j) {
            if (!cp_push(out, in[i++])) return 0;
            continue;
        }
        size_t end = (k < n && in[k] == ';') ? k + 1 : k;
        size_t m = end - j; /* the matched name s, with its ';' if any */
        char name[40];
        size_t ascii = 0; /* names are ASCII: only the ASCII prefix can match */
        while (ascii < m && in[j + ascii] < 0x80 && in[j + ascii] != 0) {
            name[ascii] = (char)in[j + ascii];
            ascii++;
        }
        const char *value = NULL;
        size_t x = m;
        if (ascii == m) {
            name[m] = 0;
            value = entity_lookup(name);
        }
        /* else the longest prefix s[:x], len(s)-1 >= x >= 2 */
        if (!value) {
            for (x = m - 1; x >= 2; x--) {
                if (x > ascii) continue;
                name[x] = 0;
                if ((value = entity_lookup(name)) != NULL) break;
            }
        }
        if (value) {
            if (!push_utf8(out, value)) return 0;
            for (size_t t = j + x; t < end; t++)
                if (!cp_push(out, in[t])) return 0;
        } else {
            for (size_t t = i; t < end; t++)
                if (!cp_push(out, in[t])) return 0;
        }
        i = end;
    }
    return 1;
}

/* ---- NFC ---- */

static ld_status nfc(ld_ctx *ctx, cpbuf *b) {
    if (b->n == 0) return LD_OK;
    /* utf8proc_map decomposes, reorders combining marks canonically and
     * recomposes; it works on UTF-8 (length-based, so NUL is a character) */
    unsigned char *u8 = malloc(b->n * 4);
    if (!u8) return nomem(ctx);
    size_t nb = 0;
    for (size_t i = 0; i < b->n; i++) nb += (size_t)ld_utf8_encode(b->v[i], u8 + nb);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map(u8, (utf8proc_ssize_t)nb, &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(u8);
    if (r < 0) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text: NFC failed: %s", utf8proc_errmsg(r));
    uint32_t *cps;
    size_t n;
    ld_status st = ld_utf8_decode(ctx, (const char *)dst, (size_t)r, &cps, &n);
    free(dst);
    if (st != LD_OK) return st;
    free(b->v);
    b->v = cps;
    b->n = n;
    b->cap = n + 1; /* ld_utf8_decode allocates len + 1 >= n + 1 entries */
    return LD_OK;
}

/* ---- lower() ---- */

static int is_cased(uint32_t c) {
    utf8proc_category_t k = category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int is_case_ignorable(uint32_t c) {
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK || c == '\'' || c == '.' || c == ':' ||
           c == 0xB7 || c == 0x2018 || c == 0x2019 || c == 0x2024 || c == 0xFE52 || c == 0xFF07 || c == 0xFF0E ||
           c == 0x387 || c == 0x5F4 || c == 0x2027 || c == 0xFE13 || c == 0xFE55 || c == 0xFF1A;
}

/* CPython's final-sigma rule: a cased letter before (skipping case-ignorable
 * characters) and none after. */
static uint32_t lower_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    int before = 0, after = 0;
    while (j > 0) {
        uint32_t c = s[--j];
        if (is_case_ignorable(c)) continue;
        before = is_cased(c);
        break;
    }
    for (j = i + 1; j < n; j++) {
        if (is_case_ignorable(s[j])) continue;
        after = is_cased(s[j]);
        break;
    }
    return before && !after ? 0x3C2 : 0x3C3;
}

static int lower(const uint32_t *in, size_t n, cpbuf *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            if (!cp_push(out, c >= 'A' && c <= 'Z' ? c + 32 : c)) return 0;
        } else if (c == 0x130) { /* the one unconditional multi-character lower-case mapping */
            if (!cp_push(out, 'i') || !cp_push(out, 0x307)) return 0;
        } else if (c == 0x3A3) {
            if (!cp_push(out, lower_sigma(in, n, i))) return 0;
        } else {
            if (!cp_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c))) return 0;
        }
    }
    return 1;
}

/* ---- the whole cleaning ---- */

ld_status ld_clip_clean(ld_ctx *ctx, const char *text, size_t len, uint32_t **out, size_t *n) {
    uint32_t *cps;
    size_t ncp;
    LD_TRY(ld_utf8_decode(ctx, text, len, &cps, &ncp));
    cpbuf a = {0}, b = {0};
    int ok = html_unescape(cps, ncp, &a);
    free(cps);
    ok = ok && html_unescape(a.v, a.n, &b);
    free(a.v);
    a = (cpbuf){0};
    if (!ok) {
        free(b.v);
        return nomem(ctx);
    }
    ld_status st = nfc(ctx, &b);
    if (st != LD_OK) {
        free(b.v);
        return st;
    }
    /* strip, collapse whitespace runs to one space, strip */
    size_t lo = 0, hi = b.n;
    while (lo < hi && py_isspace(b.v[lo])) lo++;
    while (hi > lo && py_isspace(b.v[hi - 1])) hi--;
    size_t w = 0;
    for (size_t i = lo; i < hi; i++) {
        if (ld_uni_is_whitespace(b.v[i])) {
            while (i + 1 < hi && ld_uni_is_whitespace(b.v[i + 1])) i++;
            b.v[w++] = ' ';
        } else {
            b.v[w++] = b.v[i];
        }
    }
    lo = 0;
    while (lo < w && py_isspace(b.v[lo])) lo++;
    while (w > lo && py_isspace(b.v[w - 1])) w--;
    ok = cp_reserve(&a, w - lo + 1) && lower(b.v + lo, w - lo, &a);
    free(b.v);
    if (!ok) {
        free(a.v);
        return nomem(ctx);
    }
    if (!a.v && !cp_reserve(&a, 1)) return nomem(ctx);
    *out = a.v;
    *n = a.n;
    return LD_OK;
}

ld_status ld_clip_clean_utf8(ld_ctx *ctx, const char *text, size_t len, char **out, size_t *n) {
    uint32_t *cps;
    size_t ncp;
    LD_TRY(ld_clip_clean(ctx, text, len, &cps, &ncp));
    unsigned char *s = malloc(ncp * 4 + 1);
    if (!s) {
        free(cps);
        return nomem(ctx);
    }
    size_t k = 0;
    for (size_t i = 0; i < ncp; i++) k += (size_t)ld_utf8_encode(cps[i], s + k);
    s[k] = 0;
    free(cps);
    *out = (char *)s;
    *n = k;
    return LD_OK;
}
