/* Where the bytes of a large weight file live while a model runs: read
 * into memory backed by transparent huge pages, or mapped from the page cache.
 *
 * Products with few rows (the 256 tokens of an SDXL U-Net's deepest level at
 * 512x512, the 77 tokens of the text encoders) read each weight once per
 * product, so their time is mostly the walk over the weights. Mapped from
 * the page cache, a 5 GB file is 1.25 M pages of 4 KB and nearly every row
 * of a weight costs a TLB miss (in a virtual machine a two-level page walk):
 * SDXL's 256 x 10240 x 1280 product took 31 ms from the mapping and 20 ms
 * from huge pages on the Zen 5 VM soon after it started (an hour later the
 * mapping was nearly as fast: in a VM the cost of a miss depends on the
 * host; docs/performance.md). Huge pages take that variance away. Training and
 * distillation, which run such products in f32 at every step, read: a file
 * of at least 64 MB is read into huge-page memory when the kernel offers
 * transparent huge pages (enabled "always" or "madvise") and the file takes
 * at most half of the memory available (base/meminfo.h); otherwise it is
 * mapped. Generation does the same for the denoiser of an exact-path run,
 * which packs every weight again at every step (pipeline/run.h), and maps
 * everything else: the bf16 path packs its weights into huge pages anyway,
 * and a mapping keeps only the tensors used resident (0.1 GB less peak RSS
 * for a KOALA image, whose text encoders and VAE hold tensors a text-to-image
 * run never reads). $LEANDIFF_WEIGHTS overrides both: mmap maps
 * always (processes share the page cache), read reads always, auto applies
 * the rule above. */
#ifndef LD_IO_WEIGHTS_MEMORY_H
#define LD_IO_WEIGHTS_MEMORY_H

#include "base/status.h"

#include <stddef.h>

/* Makes the rule above apply (1) or files be mapped (0, the default) to the
 * files the calling thread opens when $LEANDIFF_WEIGHTS does not say;
 * returns the thread's previous setting. */
int ld_weights_prefer_read(int on);

/* 1 when the file of `size` bytes at `path` should be read into memory, 0
 * when it should be mapped (the reason is logged at -vv). */
int ld_weights_should_read(const char *path, size_t size);

/* n bytes of private memory, 2 MB aligned and asked for transparent huge
 * pages (an anonymous mapping of its own, so the packed-weight cache may map
 * the file over parts of it, tensor/gemm_cache.h); NULL and an error naming
 * path when there is none. Freed with ld_weights_mem_free(p, n). */
void *ld_weights_mem_alloc(ld_ctx *ctx, const char *path, size_t n);
void ld_weights_mem_free(void *p, size_t n);

/* Reads n bytes of fd from offset 0 into dst, 64 MB pieces on all threads;
 * an error naming path when the file is shorter than n or a read fails. */
ld_status ld_read_all(ld_ctx *ctx, const char *path, int fd, void *dst, size_t n);

#endif
