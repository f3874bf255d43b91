/* One line of a `leandiff batch` file (see batch_line.h). */
#include "batch_line.h"

#include <stdio.h>
#include <string.h>

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

batch_line_kind batch_line_parse(const char *line, size_t len, const json_t *defaults, json_t **params, char *err,
                                 size_t errn) {
    *params = NULL;
    if (errn) err[0] = 0;
    if (len > BATCH_LINE_MAX) {
        snprintf(err, errn, "the line is longer than %d bytes", BATCH_LINE_MAX);
        return BATCH_LINE_BAD;
    }
    if (memchr(line, 0, len)) {
        snprintf(err, errn, "the line holds a NUL byte");
        return BATCH_LINE_BAD;
    }
    size_t a = 0, b = len;
    if (len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) a = 3;
    const size_t bom = a;
    while (a < b && blank(line[a])) a++;
    while (b > a && blank(line[b - 1])) b--;
    if (a == b || line[a] == '#') return BATCH_LINE_SKIP;

    json_t *o;
    if (line[a] == '{') {
        json_error_t e;
        o = json_loadb(line + a, b - a, JSON_REJECT_DUPLICATES, &e);
        if (!o) {
            if (e.column > 0)
                snprintf(err, errn, "invalid JSON at column %d: %s", e.column + (int)(a - bom), e.text);
            else
                snprintf(err, errn, "invalid JSON: %s", e.text);
            return BATCH_LINE_BAD;
        }
        if (!json_is_object(o)) { /* cannot happen for text starting with '{'; kept for safety */
            json_decref(o);
            snprintf(err, errn, "a line starting with { must be one JSON object");
            return BATCH_LINE_BAD;
        }
    } else {
        json_t *p = json_stringn(line + a, b - a);
        if (!p) {
            snprintf(err, errn, "the prompt is not valid UTF-8");
            return BATCH_LINE_BAD;
        }
        o = json_object();
        if (!o || json_object_set_new(o, "prompt", p)) {
            json_decref(o);
            snprintf(err, errn, "out of memory");
            return BATCH_LINE_BAD;
        }
    }
    if (defaults && json_object_update_missing(o, (json_t *)defaults)) {
        json_decref(o);
        snprintf(err, errn, "out of memory");
        return BATCH_LINE_BAD;
    }
    *params = o;
    return BATCH_LINE_JOB;
}
