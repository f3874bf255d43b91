/* Packed weights kept between products (see gemm_cache.c).
 *
 * Memory that never changes while it is mapped (the read-only mmaps of
 * safetensors files, or their copies read into memory) is registered here. When a bf16-kernel product reads a
 * half-precision operand that lies wholly inside such a range, its second
 * product packs it into bf16 pairs for good (the first packs as usual and
 * only records it: a weight used once costs no copy), and every later
 * product with the same operand, shape, strides, kernel and blocking uses
 * the copy instead of packing again; the packed copy has the size of the f16/bf16 source, so
 * the source's pages are then given back (MADV_DONTNEED, or for a read copy
 * the file mapped over them: they are re-read from the file if anything
 * reads them again) and the resident memory stays what it was. Unregistering a range (closing the file) drops its copies.
 *
 * LEANDIFF_PACK_CACHE=0 turns the cache off (every product packs, as before).
 * Results are the same bits with or without it.
 */
#ifndef LD_TENSOR_GEMM_CACHE_H
#define LD_TENSOR_GEMM_CACHE_H

#include <stddef.h>
#include <stdint.h>

void ld_gemm_const_register(const void *base, size_t len);
/* The same for memory holding a read copy of file fd (its offset 0 at base,
 * base page aligned; fd stays open until unregistered): packed weights give
 * its pages back by mapping the file over them. */
void ld_gemm_const_register_copy(const void *base, size_t len, int fd);
/* Drops the packed copies of operands inside [base, base+len) and forgets the
 * range. Call before the memory is unmapped. */
void ld_gemm_const_unregister(const void *base, size_t len);

/* What identifies one packed copy. */
typedef struct {
    const void *data;
    int64_t rows, cols, rs, cs; /* the operand as the product reads it */
    int dtype;
    const void *kernel;
    int64_t kc, mc; /* blocking the layout was made for */
    int which;      /* 'A' or 'B' */
} ld_pack_key;

/* 1 if the cache is on and the operand [data, data+bytes) lies inside one
 * registered range. */
int ld_gemm_cache_eligible(const void *data, size_t bytes);
/* The packed copy for key, or NULL. Without a copy, *pack_now tells whether
 * to make one: 1 from the operand's second product on, 0 on its first (which
 * is only recorded), so a weight used once (a text encoder's, a one-tile
 * decode's) never costs a copy. */
const void *ld_gemm_cache_find(const ld_pack_key *key, int *pack_now);
/* Stores buf (bytes long, from ld_gemm_cache_alloc, packed from
 * source_bytes of key->data) as the copy for key and returns the copy to
 * use: buf, or the one another thread stored first (buf is then freed).
 * NULL when it could not be stored (the range was unregistered meanwhile, or
 * out of memory): buf stays the caller's, to use once and free with
 * ld_aligned_free. */
const void *ld_gemm_cache_insert(const ld_pack_key *key, void *buf, size_t bytes, size_t source_bytes);
void *ld_gemm_cache_alloc(size_t bytes);
/* Called after a product that read key's operand from its source (there was
 * no copy when it began): if a copy is stored by now (this product's, or
 * another thread's made meanwhile), the source pages this product faulted
 * back in are given back again. Without it, two products of one weight at
 * the same time (the halves of a guided step) kept both the copy and the
 * source resident: 4.0 GB instead of 2.1 for a Stable Cascade image. */
void ld_gemm_cache_source_read(const ld_pack_key *key, size_t source_bytes);
/* Copies and bytes held (for tests and the bench). */
void ld_gemm_cache_stats(size_t *copies, size_t *bytes);

#endif
