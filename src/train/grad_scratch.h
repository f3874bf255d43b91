/* Scratch memory for the backward ops (grad_ops.h): a small pool of
 * grow-only buffers handed out and returned, so the large temporaries of a
 * training step (a convolution's transposed weight, attention's per-thread
 * score blocks, norm statistics) are allocated once and not faulted in again
 * at every call. Thread-safe; a buffer is used by one caller at a time.
 *
 *     float *wt = grad_scratch_get(bytes);   // NULL: out of memory
 *     ...
 *     grad_scratch_put(wt);
 */
#ifndef LD_TRAIN_GRAD_SCRATCH_H
#define LD_TRAIN_GRAD_SCRATCH_H

#include <stddef.h>

void *grad_scratch_get(size_t bytes);
void grad_scratch_put(void *p);
/* Frees every pooled buffer (between runs, or to give the memory back). */
void grad_scratch_release(void);

#endif
