/* A text-to-image training dataset on disk, in the two layouts people have:
 *
 *   DIR/a.png + DIR/a.txt, DIR/b.png + DIR/b.txt, ...   (kohya / A1111 style:
 *       every image with a same-name .txt caption)
 *   DIR/metadata.jsonl + images                          (Hugging Face imagefolder:
 *       one JSON object per line with "file_name" and "text")
 *
 *   FILE of prompts, one per line                        (data-free distillation:
 *       the teacher makes each item's latents; image is NULL)
 *
 * Opening lists the items and reads the captions; the images are decoded
 * later (train_cache.h). A bad entry (missing caption, unreadable caption
 * file, a broken JSON line, a file_name that escapes DIR or does not exist)
 * is reported by file (and line) and skipped, or is an error when skip_bad
 * is 0.
 *
 *     ld_dataset ds;
 *     LD_TRY(ld_dataset_open(ctx, "data/", 1, &ds));
 *     for (size_t i = 0; i < ds.n; i++) use(ds.items[i].image, ds.items[i].caption);
 *     ld_dataset_free(&ds);
 */
#ifndef LD_TRAIN_DATASET_H
#define LD_TRAIN_DATASET_H

#include "base/status.h"

#include <stddef.h>

typedef struct {
    char *image;   /* path; NULL for a prompt without an image */
    char *caption; /* UTF-8, surrounding whitespace removed */
} ld_dataset_item;

typedef struct {
    ld_dataset_item *items;
    size_t n, cap;
    size_t skipped; /* bad entries reported and left out */
} ld_dataset;

ld_status ld_dataset_open(ld_ctx *ctx, const char *dir, int skip_bad, ld_dataset *out);
/* The metadata.jsonl layout from its text (len bytes; where names it in
 * messages; images resolved under dir, which check_files makes us stat). */
ld_status ld_dataset_parse_jsonl(ld_ctx *ctx, const char *where, const char *text, size_t len, const char *dir,
                                 int skip_bad, int check_files, ld_dataset *out);
/* A prompts file: one prompt per line (UTF-8; CR LF accepted; blank lines
 * and lines starting with '#' ignored); an invalid line (bad UTF-8, over
 * 64 KB) is reported by line and skipped, or an error without skip_bad. */
ld_status ld_dataset_open_prompts(ld_ctx *ctx, const char *path, int skip_bad, ld_dataset *out);
ld_status ld_dataset_parse_prompts(ld_ctx *ctx, const char *where, const char *text, size_t len, int skip_bad,
                                   ld_dataset *out);
void ld_dataset_free(ld_dataset *d);

#endif
