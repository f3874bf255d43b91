/* Strict numeric parsing for command-line flags, and the stop-signal set-up (see cli_util.h). */
#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

int cli_parse_int(const char *flag, const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        fprintf(stderr, "leandiff: %s expects an integer, got '%s'\n", flag, s);
        return 0;
    }
    if (v < min || v > max) {
        fprintf(stderr, "leandiff: %s must be between %lld and %lld, got %lld\n", flag, min, max, v);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (*s == '-') {
        fprintf(stderr, "leandiff: %s expects a non-negative integer, got '%s'\n", flag, s);
        return 0;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno) {
        fprintf(stderr, "leandiff: %s expects a non-negative integer, got '%s'\n", flag, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_float(const char *flag, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "leandiff: %s expects a number, got '%s'\n", flag, s);
        return 0;
    }
    if (v < min || v > max) {
        fprintf(stderr, "leandiff: %s must be between %g and %g, got %g\n", flag, min, max, v);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_choice(const char *flag, const char *s, const char *const *choices) {
    int n = 0;
    for (; choices[n]; n++)
        if (!strcmp(s, choices[n])) return n;
    fprintf(stderr, "leandiff: %s must be ", flag);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", choices[i]);
    fprintf(stderr, ", got '%s'\n", s);
    return -1;
}

void cli_catch_stop_signals(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
