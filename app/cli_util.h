/* Strict parsing of command-line values: the whole string must be a number
 * in range or one of the listed words, otherwise a message naming the flag
 * goes to stderr. And the signal set-up the long-running commands share. */
#ifndef LD_APP_CLI_UTIL_H
#define LD_APP_CLI_UTIL_H

#include <stdint.h>

int cli_parse_int(const char *flag, const char *s, long long min, long long max, long long *out);
int cli_parse_u64(const char *flag, const char *s, uint64_t *out);
int cli_parse_float(const char *flag, const char *s, double min, double max, double *out);
/* The index of s among the NULL-terminated choices, or -1 after a message
 * ("leandiff: --schedule must be default or karras, got 'x'"). */
int cli_parse_choice(const char *flag, const char *s, const char *const *choices);

/* The long-running commands' signals (worker, batch): SIGINT and SIGTERM go
 * to handler (which only sets a flag), SIGPIPE is ignored (a closed pipe or
 * socket is an error return, not a death). */
void cli_catch_stop_signals(void (*handler)(int));

#endif
