/* Strict parsing of command-line values: the whole string must be a number
 * in range, otherwise a message naming the flag goes to stderr. */
#ifndef LD_APP_CLI_UTIL_H
#define LD_APP_CLI_UTIL_H

#include <stdint.h>

int cli_parse_int(const char *flag, const char *s, long long min, long long max, long long *out);
int cli_parse_u64(const char *flag, const char *s, uint64_t *out);
int cli_parse_float(const char *flag, const char *s, double min, double max, double *out);

#endif
