/* Data tables of Python's html.unescape, generated into html_entities_data.c
 * by tools/gen_html_entities.py. Used by the CLIP text cleaner. */
#ifndef LD_TEXT_HTML_ENTITIES_H
#define LD_TEXT_HTML_ENTITIES_H

#include <stdint.h>

typedef struct {
    const char *name;  /* "amp;" or "amp" (legacy names are accepted without ';') */
    const char *value; /* UTF-8 replacement */
} ld_html_entity;

typedef struct {
    uint32_t num;
    const char *value; /* UTF-8 replacement for &#num; */
} ld_html_charref_fix;

extern const ld_html_entity ld_html_entities[]; /* sorted by strcmp of name */
extern const int ld_html_entity_count;
extern const ld_html_charref_fix ld_html_invalid_charrefs[]; /* sorted by num */
extern const int ld_html_invalid_charref_count;
extern const uint32_t ld_html_invalid_codepoints[]; /* sorted; &#n; for these becomes "" */
extern const int ld_html_invalid_codepoint_count;

#endif
