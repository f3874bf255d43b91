/* Base64 (RFC 4648, standard alphabet) for the JSON APIs' images.
 *
 *     char *s = ld_base64_encode(png, len);                  // free()
 *     unsigned char *b; size_t n;
 *     if (!ld_base64_decode(s, strlen(s), &b, &n)) ...       // 0: not base64 (or out of memory)
 */
#ifndef LD_IO_BASE64_H
#define LD_IO_BASE64_H

#include <stddef.h>

/* malloc'ed NUL-terminated base64 of len bytes; NULL when out of memory. */
char *ld_base64_encode(const unsigned char *data, size_t len);
/* Decodes n characters (whitespace skipped, '=' padding optional at the
 * end) into a malloc'ed buffer. Returns 0 for anything that is not base64. */
int ld_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len);

#endif
