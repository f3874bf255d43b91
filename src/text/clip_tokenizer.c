/* CLIP byte-level BPE tokenizer (see clip_tokenizer.h).
 *
 * Symbols are interned strings of the bytes_to_unicode alphabet: every
 * vocab.json entry, plus any symbol merges.txt or the byte alphabet needs that
 * the vocabulary lacks (those encode as the unknown token). A merge is a hash
 * entry (left symbol, right symbol) -> (rank, merged symbol), so BPE never
 * touches strings: each word is a linked list of symbols and a heap of
 * adjacent pairs ordered by (rank, position), which merges exactly as the
 * reference's "lowest rank first, all occurrences left to right" loop does. */
#include "text/clip_tokenizer.h"

#include "io/fileio.h"
#include "io/json.h"
#include "text/clip_clean.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define CLIP_MAX_MERGES (49152 - 256 - 2) /* the reference reads merges.txt lines 1..48894 */
#define MAX_FILE_BYTES ((size_t)256 << 20)

struct ld_clip_tokenizer {
    /* interned symbols: str[i] (NUL-terminated, in blob), vocab_id[i] or -1 */
    char *blob;
    size_t blob_len, blob_cap;
    uint32_t *str_off;
    int64_t *vocab_id;
    int32_t nsym, sym_cap;
    int32_t *sym_slots; /* open addressing: symbol index + 1, 0 = empty */
    uint32_t sym_mask;
    /* merges */
    uint64_t *merge_key; /* (left << 32) | right */
    int32_t *merge_rank, *merge_result;
    int32_t nmerge;
    int32_t *merge_slots;
    uint32_t merge_mask;
    /* the byte alphabet: symbol of byte b, and of b + "</w>" */
    int32_t byte_sym[256], byte_sym_end[256];
    int64_t vocab_size, bos, eos, pad, unk;
};

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t p = 1024;
    while (p < n) p *= 2;
    return p;
}

static const char *sym_str(const ld_clip_tokenizer *t, int32_t i) { return t->blob + t->str_off[i]; }

/* Symbol index of s[0..n), or -1. */
static int32_t sym_find(const ld_clip_tokenizer *t, const char *s, size_t n) {
    uint32_t h = (uint32_t)hash_bytes(s, n) & t->sym_mask;
    for (;; h = (h + 1) & t->sym_mask) {
        int32_t e = t->sym_slots[h];
        if (!e) return -1;
        const char *c = sym_str(t, e - 1);
        if (strncmp(c, s, n) == 0 && c[n] == 0) return e - 1;
    }
}

/* Interns s[0..n) (no NUL inside); returns its index or -1 when out of memory. */
static int32_t sym_intern(ld_clip_tokenizer *t, const char *s, size_t n) {
    uint32_t h = (uint32_t)hash_bytes(s, n) & t->sym_mask;
    for (;; h = (h + 1) & t->sym_mask) {
        int32_t e = t->sym_slots[h];
        if (!e) break;
        const char *c = sym_str(t, e - 1);
        if (strncmp(c, s, n) == 0 && c[n] == 0) return e - 1;
    }
    if (t->nsym >= t->sym_cap) return -1; /* capacity was sized at load */
    if (t->blob_len + n + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap * 2 : 1 << 20;
        while (cap < t->blob_len + n + 1) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return -1;
        t->blob = b;
        t->blob_cap = cap;
    }
    memcpy(t->blob + t->blob_len, s, n);
    t->blob[t->blob_len + n] = 0;
    int32_t i = t->nsym++;
    t->str_off[i] = (uint32_t)t->blob_len;
    t->vocab_id[i] = -1;
    t->blob_len += n + 1;
    t->sym_slots[h] = i + 1;
    return i;
}

static int32_t merge_find(const ld_clip_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t h = (uint32_t)hash_u64(key) & t->merge_mask;
    for (;; h = (h + 1) & t->merge_mask) {
        int32_t e = t->merge_slots[h];
        if (!e) return -1;
        if (t->merge_key[e - 1] == key) return e - 1;
    }
}

/* A repeated pair keeps its last rank, as Python's dict(zip(merges, range)) does. */
static void merge_add(ld_clip_tokenizer *t, int32_t left, int32_t right, int32_t result, int32_t rank) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t h = (uint32_t)hash_u64(key) & t->merge_mask;
    for (;; h = (h + 1) & t->merge_mask) {
        int32_t e = t->merge_slots[h];
        if (!e) break;
        if (t->merge_key[e - 1] == key) {
            t->merge_rank[e - 1] = rank;
            return;
        }
    }
    int32_t i = t->nmerge++;
    t->merge_key[i] = key;
    t->merge_rank[i] = rank;
    t->merge_result[i] = result;
    t->merge_slots[h] = i + 1;
}

/* ---- vocab.json ---- */

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* A JSON string at s[*i] (the opening quote) into out (UTF-8, < cap bytes,
 * no NUL); *i moves past the closing quote. Returns 0 on a malformed string. */
static int vocab_string(const char *s, size_t n, size_t *i, char *out, size_t cap, size_t *len) {
    size_t p = *i + 1, k = 0;
    while (p < n && s[p] != '"') {
        if (k + 4 >= cap) return 0;
        unsigned char c = (unsigned char)s[p];
        if (c < 0x20) return 0;
        if (c != '\\') {
            out[k++] = (char)c;
            p++;
            continue;
        }
        if (++p >= n) return 0;
        char e = s[p++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            out[k++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || p + 4 > n || !hex4(s + p, &cp)) return 0;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
            if (p + 6 > n || s[p] != '\\' || s[p + 1] != 'u' || !hex4(s + p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
            return 0;
        }
        k += (size_t)ld_utf8_encode(cp, (unsigned char *)out + k);
    }
    if (p >= n) return 0;
    *i = p + 1;
    *len = k;
    return 1;
}

static ld_status parse_vocab(ld_ctx *ctx, const char *path, const char *s, size_t n, ld_clip_tokenizer *t) {
    char key[1024];
    size_t i = skip_ws(s, n, 0), klen;
    if (i >= n || s[i] != '{') return ld_fail(ctx, LD_ERR_FORMAT, "%s: must be a JSON object of token -> id", path);
    i = skip_ws(s, n, i + 1);
    int first = 1;
    while (i < n && s[i] != '}') {
        if (!first) {
            if (s[i] != ',') return ld_fail(ctx, LD_ERR_FORMAT, "%s: expected ',' at byte %zu", path, i);
            i = skip_ws(s, n, i + 1);
        }
        first = 0;
        size_t at = i;
        if (i >= n || s[i] != '"' || !vocab_string(s, n, &i, key, sizeof key, &klen))
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: bad token string at byte %zu", path, at);
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':') return ld_fail(ctx, LD_ERR_FORMAT, "%s: expected ':' at byte %zu", path, i);
        i = skip_ws(s, n, i + 1);
        int64_t id = 0;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && id <= INT32_MAX) id = id * 10 + (s[i++] - '0');
        if (i == d || id > INT32_MAX || (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')))
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: the id of \"%.*s\" must be an integer in [0, 2^31)", path,
                           (int)klen, key);
        int32_t sym = sym_intern(t, key, klen);
        if (sym < 0) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
        if (t->vocab_id[sym] >= 0)
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: duplicate token \"%.*s\"", path, (int)klen, key);
        t->vocab_id[sym] = id;
        t->vocab_size++;
        i = skip_ws(s, n, i);
    }
    if (i >= n) return ld_fail(ctx, LD_ERR_FORMAT, "%s: truncated (no closing '}')", path);
    if (skip_ws(s, n, i + 1) != n) return ld_fail(ctx, LD_ERR_FORMAT, "%s: data after the object", path);
    return LD_OK;
}

/* ---- loading ---- */

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * others to U+0100 upwards in byte order. */
static uint32_t byte_to_unicode(int b) {
    int n = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        if (printable) {
            if (c == b) return (uint32_t)c;
        } else {
            if (c == b) return (uint32_t)(256 + n);
            n++;
        }
    }
    return 0;
}

/* pad_token / unk_token from special_tokens_map.json, else tokenizer_config.json:
 * a string or {"content": string}. */
static ld_status special_token(ld_ctx *ctx, const char *dir, const char *key, const char *dflt, char *out, size_t n) {
    const char *files[2] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int f = 0; f < 2; f++) {
        char path[4096];
        LD_TRY(ld_path_join(ctx, path, sizeof path, dir, files[f]));
        if (!ld_file_exists(path)) continue;
        json_t *j;
        LD_TRY(ld_json_load_file(ctx, path, &j));
        json_t *v = json_is_object(j) ? json_object_get(j, key) : NULL;
        if (json_is_object(v)) v = json_object_get(v, "content");
        if (v && !json_is_null(v)) {
            if (!json_is_string(v)) {
                json_decref(j);
                return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s must be a string or {\"content\": string}", path, key);
            }
            if (strlen(json_string_value(v)) >= n) {
                json_decref(j);
                return ld_fail(ctx, LD_ERR_FORMAT, "%s: %s is too long", path, key);
            }
            strcpy(out, json_string_value(v));
            json_decref(j);
            return LD_OK;
        }
        json_decref(j);
    }
    strcpy(out, dflt);
    return LD_OK;
}

static ld_status vocab_token_id(ld_ctx *ctx, const ld_clip_tokenizer *t, const char *dir, const char *what,
                                const char *token, int64_t *id) {
    int32_t s = sym_find(t, token, strlen(token));
    if (s < 0 || t->vocab_id[s] < 0)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s/vocab.json: the %s \"%s\" is not in the vocabulary", dir, what, token);
    *id = t->vocab_id[s];
    return LD_OK;
}

static int is_space_ascii(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* merges.txt lines after the header, [lo, hi) of the stripped file: rank r
 * is "left right" on line r + 2. */
static ld_status parse_merges(ld_ctx *ctx, const char *path, const char *merges, size_t lo, size_t hi, int64_t nm,
                              ld_clip_tokenizer *t) {
    size_t p = lo;
    while (p < hi && merges[p] != '\n') p++; /* skip the header line */
    for (int64_t r = 0; r < nm; r++) {
        size_t a = ++p;
        while (p < hi && merges[p] != '\n') p++;
        /* the line [a, p): exactly two whitespace-separated symbols */
        const char *part[3];
        size_t plen[3];
        int np = 0;
        for (size_t i = a; i < p;) {
            while (i < p && is_space_ascii(merges[i])) i++;
            if (i >= p) break;
            size_t b = i;
            while (i < p && !is_space_ascii(merges[i])) i++;
            if (np < 3) {
                part[np] = merges + b;
                plen[np] = i - b;
            }
            np++;
        }
        if (np != 2)
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: line %lld must hold two symbols, found %d", path,
                           (long long)r + 2, np);
        if (memchr(part[0], 0, plen[0]) || memchr(part[1], 0, plen[1]))
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: line %lld contains a NUL byte", path, (long long)r + 2);
        char joined[1024];
        if (plen[0] + plen[1] >= sizeof joined)
            return ld_fail(ctx, LD_ERR_FORMAT, "%s: line %lld: symbols too long", path, (long long)r + 2);
        memcpy(joined, part[0], plen[0]);
        memcpy(joined + plen[0], part[1], plen[1]);
        int32_t left = sym_intern(t, part[0], plen[0]);
        int32_t right = sym_intern(t, part[1], plen[1]);
        int32_t res = sym_intern(t, joined, plen[0] + plen[1]);
        if (left < 0 || right < 0 || res < 0) return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", path);
        merge_add(t, left, right, res, (int32_t)r);
    }
    return LD_OK;
}

static ld_status load(ld_ctx *ctx, const char *dir, ld_clip_tokenizer *t, char *merges, size_t merges_len) {
    char path[4096];
    /* merges.txt: strip the file, skip the first (#version) line, take up to CLIP_MAX_MERGES lines */
    size_t lo = 0, hi = merges_len;
    while (lo < hi && (is_space_ascii(merges[lo]) || merges[lo] == '\n')) lo++;
    while (hi > lo && (is_space_ascii(merges[hi - 1]) || merges[hi - 1] == '\n')) hi--;
    int64_t nlines = 0;
    for (size_t i = lo; i < hi; i++) nlines += merges[i] == '\n';
    int64_t nm = nlines < CLIP_MAX_MERGES ? nlines : CLIP_MAX_MERGES;

    /* vocab.json is read by a small dedicated parser: a flat object of
     * string -> integer, ~3x faster than building a generic JSON tree */
    LD_TRY(ld_path_join(ctx, path, sizeof path, dir, "vocab.json"));
    char *vtext;
    size_t vlen;
    LD_TRY(ld_read_file(ctx, path, &vtext, &vlen, MAX_FILE_BYTES));
    int64_t colons = 0; /* >= the number of entries */
    for (size_t i = 0; i < vlen; i++) colons += vtext[i] == ':';
    int64_t cap = colons + 3 * nm + 512 + 1;
    if (cap > INT32_MAX / 4) {
        free(vtext);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: absurd vocabulary size", path);
    }
    t->sym_cap = (int32_t)cap;
    t->sym_mask = pow2_at_least((uint64_t)cap * 2) - 1;
    t->merge_mask = pow2_at_least((uint64_t)nm * 2 + 2) - 1;
    t->str_off = malloc((size_t)cap * sizeof *t->str_off);
    t->vocab_id = malloc((size_t)cap * sizeof *t->vocab_id);
    t->sym_slots = calloc((size_t)t->sym_mask + 1, sizeof *t->sym_slots);
    t->merge_key = malloc(((size_t)nm + 1) * sizeof *t->merge_key);
    t->merge_rank = malloc(((size_t)nm + 1) * sizeof *t->merge_rank);
    t->merge_result = malloc(((size_t)nm + 1) * sizeof *t->merge_result);
    t->merge_slots = calloc((size_t)t->merge_mask + 1, sizeof *t->merge_slots);
    ld_status st;
    if (!t->str_off || !t->vocab_id || !t->sym_slots || !t->merge_key || !t->merge_rank || !t->merge_result ||
        !t->merge_slots)
        st = ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory for the tokenizer tables", dir);
    else
        st = parse_vocab(ctx, path, vtext, vlen, t);
    free(vtext);
    LD_TRY(st);

    LD_TRY(ld_path_join(ctx, path, sizeof path, dir, "merges.txt"));
    LD_TRY(parse_merges(ctx, path, merges, lo, hi, nm, t));

    for (int b = 0; b < 256; b++) {
        unsigned char u[8];
        int k = ld_utf8_encode(byte_to_unicode(b), u);
        memcpy(u + k, "</w>", 4);
        t->byte_sym[b] = sym_intern(t, (const char *)u, (size_t)k);
        t->byte_sym_end[b] = sym_intern(t, (const char *)u, (size_t)k + 4);
        if (t->byte_sym[b] < 0 || t->byte_sym_end[b] < 0)
            return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", dir);
    }

    char pad[256], unk[256];
    LD_TRY(vocab_token_id(ctx, t, dir, "start token", "<|startoftext|>", &t->bos));
    LD_TRY(vocab_token_id(ctx, t, dir, "end token", "<|endoftext|>", &t->eos));
    LD_TRY(special_token(ctx, dir, "pad_token", "<|endoftext|>", pad, sizeof pad));
    LD_TRY(special_token(ctx, dir, "unk_token", "<|endoftext|>", unk, sizeof unk));
    LD_TRY(vocab_token_id(ctx, t, dir, "pad_token", pad, &t->pad));
    LD_TRY(vocab_token_id(ctx, t, dir, "unk_token", unk, &t->unk));
    return LD_OK;
}

ld_status ld_clip_tokenizer_load(ld_ctx *ctx, const char *tokenizer_dir, ld_clip_tokenizer **out) {
    *out = NULL;
    char path[4096];
    LD_TRY(ld_path_join(ctx, path, sizeof path, tokenizer_dir, "merges.txt"));
    char *merges;
    size_t merges_len;
    LD_TRY(ld_read_file(ctx, path, &merges, &merges_len, MAX_FILE_BYTES));
    ld_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(merges);
        return ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory", tokenizer_dir);
    }
    ld_status st = load(ctx, tokenizer_dir, t, merges, merges_len);
    free(merges);
    if (st != LD_OK) {
        ld_clip_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LD_OK;
}

void ld_clip_tokenizer_free(ld_clip_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->str_off);
    free(t->vocab_id);
    free(t->sym_slots);
    free(t->merge_key);
    free(t->merge_rank);
    free(t->merge_result);
    free(t->merge_slots);
    free(t);
}

int64_t ld_clip_tokenizer_pad_id(const ld_clip_tokenizer *t) { return t->pad; }
int64_t ld_clip_tokenizer_vocab_size(const ld_clip_tokenizer *t) { return t->vocab_size; }

/* ---- BPE ---- */

typedef struct {
    int32_t rank, pos, left, right, result;
} pair_entry;

typedef struct {
    int32_t *sym, *prev, *next;
    pair_entry *heap;
    int32_t nheap;
    size_t cap; /* symbols */
} bpe_scratch;

static int pair_less(const pair_entry *a, const pair_entry *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_scratch *w, pair_entry e) {
    int32_t i = w->nheap++;
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!pair_less(&e, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = e;
}

static pair_entry heap_pop(bpe_scratch *w) {
    pair_entry top = w->heap[0], last = w->heap[--w->nheap];
    int32_t i = 0, n = w->nheap;
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static void push_pair(const ld_clip_tokenizer *t, bpe_scratch *w, int32_t pos) {
    int32_t nx = w->next[pos];
    if (nx < 0) return;
    int32_t m = merge_find(t, w->sym[pos], w->sym[nx]);
    if (m < 0) return;
    pair_entry e = {t->merge_rank[m], pos, w->sym[pos], w->sym[nx], t->merge_result[m]};
    heap_push(w, e);
}

/* Merges the n symbols in w->sym; the survivors are reached from index 0 via next[]. */
static void bpe_merge(const ld_clip_tokenizer *t, bpe_scratch *w, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < n ? i + 1 : -1;
    }
    w->nheap = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(t, w, i);
    while (w->nheap > 0) {
        pair_entry e = heap_pop(w);
        int32_t pos = e.pos, nx = w->next[pos];
        if (w->sym[pos] != e.left || nx < 0 || w->sym[nx] != e.right) continue; /* stale */
        w->sym[pos] = e.result;
        w->sym[nx] = -1;
        w->next[pos] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = pos;
        if (w->prev[pos] >= 0) push_pair(t, w, w->prev[pos]);
        push_pair(t, w, pos);
    }
}

typedef struct {
    int64_t *ids;
    size_t cap, n, limit; /* stop after `limit` ids */
} id_sink;

static void emit(id_sink *s, int64_t id) {
    if (s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

static int matches_ascii(const uint32_t *c, size_t n, size_t i, const char *lit) {
    for (size_t k = 0; lit[k]; k++) {
        if (i + k >= n) return 0;
        uint32_t x = c[i + k];
        if (x == 0x17F) x = 's'; /* the case-insensitive regex folds long s to s */
        if (x != (unsigned char)lit[k]) return 0;
    }
    return 1;
}

/* Length of the contraction ('s 't 're 've 'm 'll 'd) at i, or 0. */
static size_t contraction(const uint32_t *c, size_t n, size_t i) {
    static const char *const forms[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int f = 0; f < 7; f++)
        if (matches_ascii(c, n, i, forms[f])) return strlen(forms[f]);
    return 0;
}

static int is_other(uint32_t c) { return !ld_uni_is_whitespace(c) && !ld_uni_is_letter(c) && !ld_uni_is_number(c); }

/* Splits the cleaned text with CLIP's pattern and BPE-encodes each piece. */
static void encode(const ld_clip_tokenizer *t, const uint32_t *c, size_t n, bpe_scratch *w, id_sink *out) {
    size_t i = 0;
    while (i < n && out->n < out->limit) {
        size_t len;
        if (matches_ascii(c, n, i, "<|startoftext|>")) {
            emit(out, t->bos);
            i += 15;
            continue;
        }
        if (matches_ascii(c, n, i, "<|endoftext|>")) {
            emit(out, t->eos);
            i += 13;
            continue;
        }
        if ((len = contraction(c, n, i)) == 0) {
            if (ld_uni_is_whitespace(c[i])) {
                i++;
                continue;
            }
            len = 1;
            if (ld_uni_is_letter(c[i])) {
                while (i + len < n && ld_uni_is_letter(c[i + len])) len++;
            } else if (!ld_uni_is_number(c[i])) {
                while (i + len < n && is_other(c[i + len])) len++;
            }
        }
        /* the piece's UTF-8 bytes -> byte symbols, "</w>" on the last */
        int32_t m = 0;
        unsigned char u[4];
        int nb = 0;
        for (size_t k = i; k < i + len; k++) {
            nb = ld_utf8_encode(c[k], u);
            for (int b = 0; b < nb; b++) w->sym[m++] = t->byte_sym[u[b]];
        }
        w->sym[m - 1] = t->byte_sym_end[u[nb - 1]];
        bpe_merge(t, w, m);
        for (int32_t s = 0; s >= 0; s = w->next[s]) {
            int64_t id = t->vocab_id[w->sym[s]];
            emit(out, id >= 0 ? id : t->unk);
        }
        i += len;
    }
}

static ld_status run(ld_ctx *ctx, const ld_clip_tokenizer *t, const char *text, size_t len, id_sink *out) {
    uint32_t *c;
    size_t n;
    LD_TRY(ld_clip_clean(ctx, text, len, &c, &n));
    bpe_scratch w = {0};
    size_t cap = n * 4 + 4; /* bytes bound the symbols of any piece */
    if (cap > INT32_MAX / 4) {
        free(c);
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "text: too long (%zu characters)", n);
    }
    w.sym = malloc(cap * sizeof *w.sym);
    w.prev = malloc(cap * sizeof *w.prev);
    w.next = malloc(cap * sizeof *w.next);
    w.heap = malloc(cap * 3 * sizeof *w.heap);
    ld_status st = LD_OK;
    if (!w.sym || !w.prev || !w.next || !w.heap)
        st = ld_fail(ctx, LD_ERR_NOMEM, "text: out of memory for %zu characters", n);
    else
        encode(t, c, n, &w, out);
    free(w.sym);
    free(w.prev);
    free(w.next);
    free(w.heap);
    free(c);
    return st;
}

ld_status ld_clip_bpe(ld_ctx *ctx, const ld_clip_tokenizer *t, const char *text, size_t len, int64_t *ids,
                      size_t cap, size_t *n) {
    if (!t || (!text && len) || (!ids && cap) || !n)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "ld_clip_bpe: NULL argument");
    id_sink s = {ids, cap, 0, SIZE_MAX};
    LD_TRY(run(ctx, t, text ? text : "", len, &s));
    *n = s.n;
    return LD_OK;
}

void ld_clip_warn_truncation(const ld_clip_tokenizer *tok, const char *text, const char *what, const char *hint) {
    size_t n = 0;
    if (!text || ld_clip_bpe(NULL, tok, text, strlen(text), NULL, 0, &n) != LD_OK || n <= LD_CLIP_CONTEXT - 2) return;
    ld_log_warn("%s: %zu tokens; the text encoder reads only the first %d, the rest is ignored%s", what, n,
                LD_CLIP_CONTEXT - 2, hint);
}

ld_status ld_clip_tokenize_n(ld_ctx *ctx, const ld_clip_tokenizer *t, const char *text, size_t len,
                             int64_t ids[LD_CLIP_CONTEXT], int64_t mask[LD_CLIP_CONTEXT]) {
    if (!t || (!text && len) || !ids) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "ld_clip_tokenize: NULL argument");
    int64_t body[LD_CLIP_CONTEXT];
    id_sink s = {body, LD_CLIP_CONTEXT - 2, 0, LD_CLIP_CONTEXT - 2};
    LD_TRY(run(ctx, t, text ? text : "", len, &s));
    size_t nb = s.n < LD_CLIP_CONTEXT - 2 ? s.n : LD_CLIP_CONTEXT - 2;
    ids[0] = t->bos;
    memcpy(ids + 1, body, nb * sizeof *ids);
    ids[nb + 1] = t->eos;
    for (size_t i = nb + 2; i < LD_CLIP_CONTEXT; i++) ids[i] = t->pad;
    if (mask)
        for (size_t i = 0; i < LD_CLIP_CONTEXT; i++) mask[i] = i < nb + 2;
    return LD_OK;
}

ld_status ld_clip_tokenize(ld_ctx *ctx, const ld_clip_tokenizer *t, const char *text, int64_t ids[LD_CLIP_CONTEXT],
                           int64_t mask[LD_CLIP_CONTEXT]) {
    return ld_clip_tokenize_n(ctx, t, text, text ? strlen(text) : 0, ids, mask);
}
