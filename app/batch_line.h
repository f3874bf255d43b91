/* One line of a `leandiff batch` file -> the parameters of its job
 * (docs/scale-out.md). Pure parsing with jansson: no Redis, and no checking
 * of the values (the worker's rules, gen_request_from_json, do that):
 *
 *     json_t *params;
 *     char err[256];
 *     switch (batch_line_parse(line, len, defaults, &params, err, sizeof err)) {
 *     case BATCH_LINE_SKIP: break;                       // blank, or a # comment
 *     case BATCH_LINE_JOB: ... json_decref(params); ...  // a new JSON object
 *     case BATCH_LINE_BAD: ... err says why (the caller adds FILE:LINE) ...
 *     }
 *
 * A line whose first non-blank character is '#' is a comment; '{' starts one
 * JSON object of job fields (prompt, negative_prompt, seed, ...); anything
 * else is a prompt, without its surrounding blanks. The fields of defaults
 * (an object, or NULL) are added where the line does not set them. A line
 * may end in "\r\n" or "\n" (or nothing); a UTF-8 byte order mark at its
 * start is ignored.
 */
#ifndef LD_APP_BATCH_LINE_H
#define LD_APP_BATCH_LINE_H

#include <jansson.h>
#include <stddef.h>

#define BATCH_LINE_MAX (1 << 20) /* longer lines are refused (prompts are at most 10000 bytes) */

typedef enum { BATCH_LINE_SKIP, BATCH_LINE_JOB, BATCH_LINE_BAD } batch_line_kind;

batch_line_kind batch_line_parse(const char *line, size_t len, const json_t *defaults, json_t **params, char *err,
                                 size_t errn);

#endif
