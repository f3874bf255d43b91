/* A multipart/form-data body (RFC 7578), as OpenAI's POST /v1/images/edits
 * receives it from `curl -F` and the OpenAI clients: the parts are found in
 * place, no byte of the body is copied (each part's data points into it).
 *
 *     char boundary[MULTIPART_BOUNDARY_MAX + 1], err[256];
 *     mp_part parts[MULTIPART_MAX_PARTS];
 *     int n;
 *     if (!multipart_boundary(content_type, boundary, err, sizeof err) ||
 *         !multipart_parse(boundary, body, len, parts, MULTIPART_MAX_PARTS, &n, err, sizeof err))
 *         ... 400 err ...
 *     const mp_part *img = multipart_get(parts, n, "image");
 *
 * Bounded: at most max_parts parts, MULTIPART_HEADER_MAX bytes of headers a
 * part, names and file names of limited length; every refusal says what is
 * wrong and in which part ("part 2: header line without ':'").
 */
#ifndef LD_APP_MULTIPART_H
#define LD_APP_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define MULTIPART_HEADER_MAX 4096 /* header bytes of one part */
#define MULTIPART_MAX_PARTS 32

typedef struct {
    char name[64];         /* the form field (Content-Disposition name) */
    char filename[256];    /* "" when the part is not a file */
    int is_file;           /* a filename parameter was present */
    char content_type[96]; /* "" when absent */
    const uint8_t *data;   /* into the body */
    size_t len;
} mp_part;

/* The boundary parameter of a Content-Type header value that must be
 * multipart/form-data; 0 with the reason in err. */
int multipart_boundary(const char *content_type, char *boundary, char *err, size_t errn);

/* Splits body into parts; 0 with the reason in err (no part is valid then). */
int multipart_parse(const char *boundary, const void *body, size_t len, mp_part *parts, int max_parts, int *nparts,
                    char *err, size_t errn);

/* The first part with that field name, or NULL. */
const mp_part *multipart_get(const mp_part *parts, int n, const char *name);

#endif
