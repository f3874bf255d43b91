/* A1111 prompt syntax (see prompt_syntax.h): a scanner that takes, at each
 * position, the first of A1111's token alternatives that matches, then the
 * chunker and the emphasis. Weights are doubles multiplied in A1111's order,
 * so they equal A1111's Python floats bit for bit. */
#include "text/prompt_syntax.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    ld_prompt_piece *p;
    size_t n, cap;
} piece_list;

static int push(piece_list *l, const char *text, size_t len, double weight, int is_break) {
    if (l->n == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 16;
        ld_prompt_piece *p = realloc(l->p, c * sizeof *p);
        if (!p) return 0;
        l->p = p;
        l->cap = c;
    }
    char *t = malloc(len + 1);
    if (!t) return 0;
    memcpy(t, text, len);
    t[len] = 0;
    l->p[l->n++] = (ld_prompt_piece){t, weight, is_break};
    return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
/* \w: ASCII letters, digits, '_', and any byte of a multi-byte UTF-8 character
 * (letters of other scripts count as word characters in Python too) */
static int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit((char)c) || c == '_' || c >= 0x80;
}

/* Matches `:\s*([+-]?[.\d]+)\s*\)` at s; returns its length (0: no match) and
 * the number's span. */
static size_t match_weight(const char *s, const char **num, size_t *num_len) {
    size_t i = 0;
    if (s[i++] != ':') return 0;
    while (is_space(s[i])) i++;
    size_t b = i;
    if (s[i] == '+' || s[i] == '-') i++;
    size_t d = i;
    while (s[i] == '.' || is_digit(s[i])) i++;
    if (i == d) return 0;
    size_t e = i;
    while (is_space(s[i])) i++;
    if (s[i] != ')') return 0;
    *num = s + b;
    *num_len = e - b;
    return i + 1;
}

/* Python float() of [+-]?[.\d]+: digits with at most one point and at least one digit. */
static int parse_weight(const char *s, size_t len, double *out) {
    char buf[64];
    if (len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    int digits = 0, points = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '.') points++;
        else if (is_digit(buf[i])) digits++;
    }
    if (!digits || points > 1) return 0;
    char *end;
    *out = strtod(buf, &end);
    return *end == 0;
}

/* A plain-text run split at BREAK (`\s*\bBREAK\b\s*`): text pieces of weight 1
 * with break pieces between them. */
static int push_text(piece_list *l, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5)) continue;
        if ((i > 0 && is_word((unsigned char)s[i - 1])) || (i + 5 < len && is_word((unsigned char)s[i + 5]))) continue;
        size_t a = i, b = i + 5;
        while (a > start && is_space(s[a - 1])) a--;
        while (b < len && is_space(s[b])) b++;
        if (!push(l, s + start, a - start, 1.0, 0) || !push(l, "BREAK", 5, -1.0, 1)) return 0;
        start = b;
        i = b - 1;
    }
    return push(l, s + start, len - start, 1.0, 0);
}

static void multiply_range(piece_list *l, size_t from, double m) {
    for (size_t p = from; p < l->n; p++) l->p[p].weight *= m;
}

void ld_prompt_pieces_free(ld_prompt_pieces *pp) {
    for (size_t i = 0; pp && i < pp->n; i++) free(pp->p[i].text);
    if (pp) {
        free(pp->p);
        pp->p = NULL;
        pp->n = 0;
    }
}

ld_status ld_prompt_parse(ld_ctx *ctx, const char *s, ld_prompt_pieces *out) {
    out->p = NULL;
    out->n = 0;
    piece_list l = {0};
    size_t *round = NULL, *square = NULL, nr = 0, ns = 0, len = strlen(s);
    /* at most one open bracket per byte */
    round = malloc((len + 1) * sizeof *round);
    square = malloc((len + 1) * sizeof *square);
    int ok = round && square;
    ld_status st = LD_OK;
    for (size_t i = 0; ok && st == LD_OK && i < len;) {
        const char *num;
        size_t num_len, m;
        char c = s[i];
        if (c == '\\') {
            char n = s[i + 1];
            if (n == '(' || n == ')' || n == '[' || n == ']' || n == '\\') {
                ok = push(&l, s + i + 1, 1, 1.0, 0);
                i += 2;
            } else {
                ok = push(&l, "", 0, 1.0, 0); /* a lone backslash: A1111 keeps text[1:], nothing */
                i += 1;
            }
        } else if (c == '(') {
            round[nr++] = l.n;
            i++;
        } else if (c == '[') {
            square[ns++] = l.n;
            i++;
        } else if ((m = match_weight(s + i, &num, &num_len)) > 0) {
            double w;
            if (nr > 0) {
                if (!parse_weight(num, num_len, &w)) {
                    st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt: the weight '%.*s' at byte %zu is not a number",
                                 (int)num_len, num, i);
                    break;
                }
                multiply_range(&l, round[--nr], w);
            } else {
                ok = push_text(&l, s + i, m);
            }
            i += m;
        } else if (c == ')' && nr > 0) {
            multiply_range(&l, round[--nr], 1.1);
            i++;
        } else if (c == ']' && ns > 0) {
            multiply_range(&l, square[--ns], 1 / 1.1);
            i++;
        } else if (c == ')' || c == ']' || c == ':') {
            ok = push_text(&l, s + i, 1);
            i++;
        } else {
            size_t j = i;
            while (j < len && !strchr("\\()[]:", s[j])) j++;
            ok = push_text(&l, s + i, j - i);
            i = j;
        }
    }
    for (size_t k = 0; ok && k < nr; k++) multiply_range(&l, round[k], 1.1);
    for (size_t k = 0; ok && k < ns; k++) multiply_range(&l, square[k], 1 / 1.1);
    if (ok && st == LD_OK && l.n == 0) ok = push(&l, "", 0, 1.0, 0);
    /* merge neighbours of equal weight (A1111 merges BREAKs too) */
    for (size_t i = 0; ok && st == LD_OK && i + 1 < l.n;) {
        if (l.p[i].weight != l.p[i + 1].weight) {
            i++;
            continue;
        }
        size_t a = strlen(l.p[i].text), b = strlen(l.p[i + 1].text);
        char *t = realloc(l.p[i].text, a + b + 1);
        if (!t) {
            ok = 0;
            break;
        }
        memcpy(t + a, l.p[i + 1].text, b + 1);
        l.p[i].text = t;
        l.p[i].is_break = l.p[i].is_break && !strcmp(t, "BREAK");
        free(l.p[i + 1].text);
        memmove(l.p + i + 1, l.p + i + 2, (l.n - i - 2) * sizeof *l.p);
        l.n--;
    }
    /* A1111 breaks only where the piece is "BREAK" with weight exactly -1: inside
     * brackets it is the word BREAK with a negative weight */
    for (size_t i = 0; ok && i < l.n; i++) l.p[i].is_break = l.p[i].is_break && l.p[i].weight == -1.0;
    free(round);
    free(square);
    ld_prompt_pieces pp = {l.p, l.n};
    if (st == LD_OK && !ok) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    if (st != LD_OK) {
        ld_prompt_pieces_free(&pp);
        return st;
    }
    *out = pp;
    return LD_OK;
}

/* ---- chunks ---- */

typedef struct {
    int64_t tok[LD_PROMPT_CHUNK_TOKENS];
    float mult[LD_PROMPT_CHUNK_TOKENS];
    int n;
} chunk_buf;

/* Closes the current chunk into out (BOS + tokens + EOS + pad). */
static ld_status close_chunk(ld_ctx *ctx, ld_prompt_chunks *out, chunk_buf *c, int64_t pad) {
    if (out->n >= LD_PROMPT_MAX_CHUNKS)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt: longer than %d chunks of %d tokens", LD_PROMPT_MAX_CHUNKS,
                       LD_PROMPT_CHUNK_TOKENS);
    int64_t *ids = out->ids + (size_t)out->n * LD_CLIP_CONTEXT;
    float *mult = out->mult + (size_t)out->n * LD_CLIP_CONTEXT;
    ids[0] = LD_CLIP_BOS;
    mult[0] = 1;
    for (int i = 0; i < LD_PROMPT_CHUNK_TOKENS; i++) {
        ids[1 + i] = i < c->n ? c->tok[i] : (i == c->n ? LD_CLIP_EOS : pad);
        mult[1 + i] = i < c->n ? c->mult[i] : 1;
    }
    ids[LD_CLIP_CONTEXT - 1] = c->n == LD_PROMPT_CHUNK_TOKENS ? LD_CLIP_EOS : pad;
    mult[LD_CLIP_CONTEXT - 1] = 1;
    out->tokens += (size_t)c->n;
    out->n++;
    c->n = 0;
    return LD_OK;
}

void ld_prompt_chunks_free(ld_prompt_chunks *ch) {
    if (!ch) return;
    free(ch->ids);
    free(ch->mult);
    memset(ch, 0, sizeof *ch);
}

ld_status ld_prompt_chunk(ld_ctx *ctx, const ld_clip_tokenizer *tok, const ld_prompt_pieces *pp,
                          ld_prompt_chunks *out) {
    memset(out, 0, sizeof *out);
    out->ids = malloc(sizeof(int64_t) * LD_CLIP_CONTEXT * LD_PROMPT_MAX_CHUNKS);
    out->mult = malloc(sizeof(float) * LD_CLIP_CONTEXT * LD_PROMPT_MAX_CHUNKS);
    if (!out->ids || !out->mult) {
        ld_prompt_chunks_free(out);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    const int64_t pad = ld_clip_tokenizer_pad_id(tok);
    int64_t comma = -1; /* the id of ",</w>" (A1111's comma_token) */
    size_t nc = 0;
    if (ld_clip_bpe(ctx, tok, ",", 1, &comma, 1, &nc) != LD_OK || nc != 1) comma = -1;
    const int backtrack = 20;  /* A1111's comma_padding_backtrack default */
    chunk_buf c = {.n = 0};
    int last_comma = -1;
    ld_status st = LD_OK;
    int64_t *ids = NULL;
    for (size_t i = 0; st == LD_OK && i < pp->n; i++) {
        const ld_prompt_piece *p = &pp->p[i];
        if (p->is_break) {
            st = close_chunk(ctx, out, &c, pad);
            last_comma = -1;
            continue;
        }
        size_t n = 0;
        st = ld_clip_bpe(ctx, tok, p->text, strlen(p->text), NULL, 0, &n);
        if (st != LD_OK) break;
        if (n > (size_t)LD_PROMPT_MAX_CHUNKS * LD_PROMPT_CHUNK_TOKENS) {
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt: longer than %d tokens",
                         LD_PROMPT_MAX_CHUNKS * LD_PROMPT_CHUNK_TOKENS);
            break;
        }
        free(ids);
        ids = malloc(sizeof(int64_t) * (n ? n : 1));
        if (!ids) {
            st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            break;
        }
        st = ld_clip_bpe(ctx, tok, p->text, strlen(p->text), ids, n, &n);
        for (size_t k = 0; st == LD_OK && k < n; k++) {
            if (ids[k] == comma) {
                last_comma = c.n;
            } else if (c.n == LD_PROMPT_CHUNK_TOKENS && last_comma != -1 && c.n - last_comma <= backtrack) {
                chunk_buf rest = {.n = c.n - (last_comma + 1)};
                memcpy(rest.tok, c.tok + last_comma + 1, sizeof(int64_t) * (size_t)rest.n);
                memcpy(rest.mult, c.mult + last_comma + 1, sizeof(float) * (size_t)rest.n);
                c.n = last_comma + 1;
                st = close_chunk(ctx, out, &c, pad);
                c = rest;
                last_comma = -1;
            }
            if (st == LD_OK && c.n == LD_PROMPT_CHUNK_TOKENS) {
                st = close_chunk(ctx, out, &c, pad);
                last_comma = -1;
            }
            if (st == LD_OK) {
                c.tok[c.n] = ids[k];
                c.mult[c.n++] = (float)p->weight;
            }
        }
    }
    free(ids);
    if (st == LD_OK && (c.n > 0 || out->n == 0)) st = close_chunk(ctx, out, &c, pad);
    if (st != LD_OK) ld_prompt_chunks_free(out);
    return st;
}

ld_status ld_prompt_chunk_text(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *prompt, ld_prompt_chunks *out) {
    ld_prompt_pieces pp;
    memset(out, 0, sizeof *out);
    LD_TRY(ld_prompt_parse(ctx, prompt, &pp));
    ld_status st = ld_prompt_chunk(ctx, tok, &pp, out);
    ld_prompt_pieces_free(&pp);
    return st;
}

ld_status ld_prompt_chunks_pad(ld_ctx *ctx, ld_prompt_chunks *ch, int n, const ld_prompt_chunks *pad) {
    if (n > LD_PROMPT_MAX_CHUNKS || pad->n < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "cannot pad a prompt to %d chunks", n);
    for (; ch->n < n; ch->n++) {
        memcpy(ch->ids + (size_t)ch->n * LD_CLIP_CONTEXT, pad->ids, sizeof(int64_t) * LD_CLIP_CONTEXT);
        memcpy(ch->mult + (size_t)ch->n * LD_CLIP_CONTEXT, pad->mult, sizeof(float) * LD_CLIP_CONTEXT);
    }
    return LD_OK;
}

void ld_prompt_emphasis(float *hidden, const float *mult, int n, int D) {
    for (int c = 0; c < n; c++) {
        float *h = hidden + (size_t)c * LD_CLIP_CONTEXT * (size_t)D;
        const float *m = mult + (size_t)c * LD_CLIP_CONTEXT;
        double before = 0, after = 0;
        for (int t = 0; t < LD_CLIP_CONTEXT; t++)
            for (int d = 0; d < D; d++) {
                before += h[(size_t)t * D + d];
                h[(size_t)t * D + d] *= m[t];
                after += h[(size_t)t * D + d];
            }
        if (after != 0) {
            const float s = (float)(before / after);
            for (size_t i = 0; i < (size_t)LD_CLIP_CONTEXT * (size_t)D; i++) h[i] *= s;
        }
    }
}

ld_status ld_prompt_syntax_name(ld_ctx *ctx, const char *name, int *a1111) {
    if (!name || !strcmp(name, "a1111")) *a1111 = 1;
    else if (!strcmp(name, "plain")) *a1111 = 0;
    else return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt syntax '%s' is not a1111 or plain", name);
    return LD_OK;
}
