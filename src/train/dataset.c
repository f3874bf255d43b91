/* Training dataset layouts (see dataset.h). */
#include "train/dataset.h"

#include "io/fileio.h"
#include "text/clip_clean.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAPTION_BYTES (1 << 20)
#define MAX_METADATA_BYTES ((size_t)1 << 30)

static const char *const image_exts[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", NULL};

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (int i = 0; image_exts[i]; i++)
        if (!strcasecmp(dot, image_exts[i])) return 1;
    return 0;
}

static char *trimmed_dup(const char *s, size_t len) {
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

static ld_status add_item(ld_ctx *ctx, ld_dataset *d, const char *image, const char *caption, size_t caption_len) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        ld_dataset_item *p = realloc(d->items, cap * sizeof *p);
        if (!p) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        d->items = p;
        d->cap = cap;
    }
    ld_dataset_item *it = &d->items[d->n];
    it->image = image ? strdup(image) : NULL;
    it->caption = trimmed_dup(caption, caption_len);
    if ((image && !it->image) || !it->caption) {
        free(it->image);
        free(it->caption);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    d->n++;
    return LD_OK;
}

/* A bad entry: skipped with a warning, or the error. */
static ld_status bad(ld_ctx *ctx, ld_dataset *d, int skip_bad, ld_status st) {
    if (!skip_bad) return st;
    ld_log_warn("skipping: %s", ld_ctx_error(ctx));
    d->skipped++;
    return LD_OK;
}

/* A file name from metadata.jsonl must stay inside the dataset folder. */
static int safe_relative(const char *name) {
    if (!*name || name[0] == '/') return 0;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

ld_status ld_dataset_parse_jsonl(ld_ctx *ctx, const char *where, const char *text, size_t len, const char *dir,
                                 int skip_bad, int check_files, ld_dataset *d) {
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - start) : len - pos;
        pos += ll + (nl ? 1 : 0);
        size_t k = 0;
        while (k < ll && isspace((unsigned char)start[k])) k++;
        if (k == ll) continue; /* blank line */
        json_error_t err;
        json_t *o = json_loadb(start, ll, 0, &err);
        const char *fn = NULL, *cap = NULL;
        ld_status st = LD_OK;
        if (!o)
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s:%d: not JSON (%s)", where, line, err.text);
        else if (!json_is_object(o) || !json_is_string(json_object_get(o, "file_name")))
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s:%d: needs a \"file_name\" string", where, line);
        else if (!json_is_string(json_object_get(o, "text")))
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s:%d: needs a \"text\" string (the caption)", where, line);
        if (st == LD_OK) {
            fn = json_string_value(json_object_get(o, "file_name"));
            cap = json_string_value(json_object_get(o, "text"));
            if (!safe_relative(fn))
                st = ld_fail(ctx, LD_ERR_FORMAT, "%s:%d: file_name \"%s\" must be a path inside the dataset folder",
                             where, line, fn);
            else if (json_string_length(json_object_get(o, "text")) > MAX_CAPTION_BYTES)
                st = ld_fail(ctx, LD_ERR_FORMAT, "%s:%d: caption longer than %d bytes", where, line,
                             MAX_CAPTION_BYTES);
        }
        char path[8192];
        if (st == LD_OK) {
            snprintf(path, sizeof path, "%s/%s", dir, fn);
            if (check_files && !ld_file_exists(path))
                st = ld_fail(ctx, LD_ERR_IO, "%s:%d: image %s not found", where, line, path);
        }
        if (st == LD_OK) st = add_item(ctx, d, path, cap, strlen(cap));
        else if (st != LD_ERR_NOMEM) st = bad(ctx, d, skip_bad, st);
        json_decref(o);
        LD_TRY(st);
    }
    return LD_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every image with a same-name .txt caption, in name order. */
static ld_status open_folder(ld_ctx *ctx, const char *dir, int skip_bad, ld_dataset *d) {
    DIR *dd = opendir(dir);
    if (!dd) return ld_fail(ctx, LD_ERR_IO, "dataset %s: cannot open the folder", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    ld_status st = LD_OK;
    struct dirent *e;
    while (st == LD_OK && (e = readdir(dd))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(dd);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; st == LD_OK && i < n; i++) {
        char img[8192], txt[8200];
        snprintf(img, sizeof img, "%s/%s", dir, names[i]);
        snprintf(txt, sizeof txt, "%s", img);
        char *dot = strrchr(txt, '.');
        snprintf(dot, sizeof txt - (size_t)(dot - txt), ".txt");
        char *cap = NULL;
        size_t len = 0;
        if (!ld_file_exists(txt))
            st = bad(ctx, d, skip_bad, ld_fail(ctx, LD_ERR_FORMAT, "%s: no caption (%s is missing)", img, txt));
        else if ((st = ld_read_file(ctx, txt, &cap, &len, MAX_CAPTION_BYTES)) != LD_OK)
            st = bad(ctx, d, skip_bad, st);
        else if (memchr(cap, 0, len))
            st = bad(ctx, d, skip_bad, ld_fail(ctx, LD_ERR_FORMAT, "%s: the caption is not text", txt));
        else
            st = add_item(ctx, d, img, cap, len);
        free(cap);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

ld_status ld_dataset_open(ld_ctx *ctx, const char *dir, int skip_bad, ld_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!ld_dir_exists(dir)) return ld_fail(ctx, LD_ERR_IO, "dataset %s: not a folder", dir);
    char meta[8192];
    snprintf(meta, sizeof meta, "%s/metadata.jsonl", dir);
    ld_status st;
    if (ld_file_exists(meta)) {
        char *text = NULL;
        size_t len = 0;
        st = ld_read_file(ctx, meta, &text, &len, MAX_METADATA_BYTES);
        if (st == LD_OK) st = ld_dataset_parse_jsonl(ctx, meta, text, len, dir, skip_bad, 1, out);
        free(text);
    } else {
        st = open_folder(ctx, dir, skip_bad, out);
    }
    if (st == LD_OK && out->n == 0)
        st = ld_fail(ctx, LD_ERR_FORMAT,
                     "dataset %s: no usable images (expected image files with same-name .txt captions, or a "
                     "metadata.jsonl with file_name and text)%s",
                     dir, out->skipped ? "; every entry was skipped" : "");
    if (st != LD_OK) ld_dataset_free(out);
    return st;
}

void ld_dataset_free(ld_dataset *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].image);
        free(d->items[i].caption);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

#define MAX_PROMPT_BYTES (64 << 10)
#define MAX_PROMPTS_FILE_BYTES ((size_t)1 << 30)

ld_status ld_dataset_parse_prompts(ld_ctx *ctx, const char *where, const char *text, size_t len, int skip_bad,
                                   ld_dataset *d) {
    memset(d, 0, sizeof *d);
    size_t pos = 0;
    for (int line = 1; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        const char *s = text + pos;
        pos = nl ? end + 1 : len;
        if (n && s[n - 1] == '\r') n--;
        size_t k = 0;
        while (k < n && isspace((unsigned char)s[k])) k++;
        if (k == n || s[k] == '#') continue;
        uint32_t *cps = NULL;
        size_t ncp = 0;
        ld_status st = LD_OK;
        if (n > MAX_PROMPT_BYTES)
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s line %d: a prompt of %zu bytes (at most %d)", where, line, n,
                         MAX_PROMPT_BYTES);
        else if (memchr(s, 0, n))
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s line %d: a NUL byte in the prompt", where, line);
        else if (ld_utf8_decode(ctx, s, n, &cps, &ncp) != LD_OK) {
            char why[256]; /* the decoder's message, copied before the context is written again */
            snprintf(why, sizeof why, "%s", ld_ctx_error(ctx));
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s line %d: %s", where, line, why);
        }
        free(cps);
        st = st == LD_OK ? add_item(ctx, d, NULL, s, n) : bad(ctx, d, skip_bad, st);
        if (st != LD_OK) {
            ld_dataset_free(d);
            return st;
        }
    }
    if (d->n == 0) {
        ld_dataset_free(d);
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: no prompt in it", where);
    }
    return LD_OK;
}

ld_status ld_dataset_open_prompts(ld_ctx *ctx, const char *path, int skip_bad, ld_dataset *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    LD_TRY(ld_read_file(ctx, path, &text, &len, MAX_PROMPTS_FILE_BYTES));
    ld_status st = ld_dataset_parse_prompts(ctx, path, text, len, skip_bad, out);
    free(text);
    return st;
}
