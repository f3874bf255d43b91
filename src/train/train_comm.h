/* Data-parallel training across processes: what the trainer needs from a
 * communication engine, and the gradient buckets it sums while the backward
 * pass continues.
 *
 * The library does not link any engine: the caller supplies the operations
 * (the CLI's is Open MPI, app/mpi_comm.c). Each process runs the same
 * program on its share of the global batch; the gradients are summed across
 * processes, so every process applies the same update. The trainer scales
 * each process's gradient by 1/(accum * size), which makes the sum the mean
 * over the global batch. The sums must come out the same on every process
 * (MPI_SUM of floats in Open MPI does: two operands commute exactly, and
 * its ring and tree algorithms give every process the one reduced value),
 * so the processes' weights never drift apart.
 *
 * Buckets (ld_grad_sync): the packed gradient is cut into contiguous pieces
 * of about bucket_bytes; a piece is handed to sum_start as soon as the
 * backward has written the last of its tensors (the U-Net reports the order
 * in which its tensors' gradients become final, ld_train_unet_grad_order),
 * so the sums of early pieces run while later blocks are still computed.
 *
 *     ld_grad_sync gs;
 *     LD_TRY(ld_grad_sync_init(ctx, &gs, comm, params, 32 << 20));
 *     per step:  ld_grad_sync_arm(&gs, order)  before the last micro-batch's backward,
 *                ld_grad_sync_ready(ctx, &gs, seq)  after each of its blocks,
 *                ld_grad_sync_finish(ctx, &gs)      after it: every bucket summed.
 */
#ifndef LD_TRAIN_TRAIN_COMM_H
#define LD_TRAIN_TRAIN_COMM_H

#include "train/train_params.h"

typedef struct ld_train_comm {
    int rank, size; /* this process, and how many take part */
    void *user;
    /* Starts summing buf[0..n) across processes, in place (non-blocking). */
    ld_status (*sum_start)(ld_ctx *ctx, void *user, float *buf, int64_t n);
    /* Lets started sums advance; called between blocks of the backward. */
    ld_status (*poll)(ld_ctx *ctx, void *user);
    /* Waits until every started sum is complete. */
    ld_status (*wait_all)(ld_ctx *ctx, void *user);
    /* Sums v[0..n) across processes, in place (blocking): losses, flags. */
    ld_status (*sum_doubles)(ld_ctx *ctx, void *user, double *v, int n);
    ld_status (*barrier)(ld_ctx *ctx, void *user);
} ld_train_comm;

typedef struct {
    const ld_train_comm *comm;
    float *grad;
    int nb;            /* buckets */
    int64_t *start, *len;
    int *first, *last; /* tensor index range of each bucket */
    int *ready_at;     /* backward position after which the bucket is final (INT_MAX: at the end) */
    int *started;
    int next_ready;    /* buckets sorted by ready_at: the next to start */
    int *by_ready;
    int armed;
    int early;         /* buckets started before the last block (reported with -vv) */
} ld_grad_sync;

/* Buckets over the packed gradients of p (tensor boundaries kept). */
ld_status ld_grad_sync_init(ld_ctx *ctx, ld_grad_sync *gs, const ld_train_comm *comm, const ld_train_params *p,
                            int64_t bucket_bytes);
void ld_grad_sync_free(ld_grad_sync *gs);
/* The next backward is the step's last: its buckets are summed as they
 * become final. order[i]: the backward position after which tensor i's
 * gradient is final (ld_train_unet_grad_order; -1: never written), or NULL
 * (not known yet: everything is summed by ld_grad_sync_finish). */
void ld_grad_sync_arm(ld_grad_sync *gs, const int *order);
/* The backward finished position seq: starts the buckets final by then. */
ld_status ld_grad_sync_ready(ld_ctx *ctx, ld_grad_sync *gs, int seq);
/* Starts what is left and waits: the gradients are the sums. */
ld_status ld_grad_sync_finish(ld_ctx *ctx, ld_grad_sync *gs);

#endif
