/* Gradient buckets summed across processes as the backward makes them
 * final (train_comm.h). */
#include "train/train_comm.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Cuts p's tensors into runs of about `per` elements (whole tensors); with
 * gs->start NULL only counts them. */
static int cut(ld_grad_sync *gs, const ld_train_params *p, int64_t per) {
    int nb = 0;
    for (size_t i = 0; i < p->count; nb++) {
        const size_t i0 = i;
        int64_t n = 0;
        while (i < p->count && (i == i0 || n + ld_tensor_numel(&p->tensors[i]) <= per)) n += ld_tensor_numel(&p->tensors[i++]);
        if (gs->start) {
            gs->start[nb] = p->offset[i0];
            gs->len[nb] = n;
            gs->first[nb] = (int)i0;
            gs->last[nb] = (int)i - 1;
        }
    }
    return nb;
}

ld_status ld_grad_sync_init(ld_ctx *ctx, ld_grad_sync *gs, const ld_train_comm *comm, const ld_train_params *p,
                            int64_t bucket_bytes) {
    memset(gs, 0, sizeof *gs);
    gs->comm = comm;
    gs->grad = p->grad;
    const int64_t per = bucket_bytes / (int64_t)sizeof(float) > 0 ? bucket_bytes / (int64_t)sizeof(float) : 1;
    const size_t nb = (size_t)cut(gs, p, per) + 1;
    gs->start = malloc(sizeof(int64_t) * nb);
    gs->len = malloc(sizeof(int64_t) * nb);
    gs->first = malloc(sizeof(int) * nb);
    gs->last = malloc(sizeof(int) * nb);
    gs->ready_at = malloc(sizeof(int) * nb);
    gs->started = calloc(nb, sizeof(int));
    gs->by_ready = malloc(sizeof(int) * nb);
    if (!gs->start || !gs->len || !gs->first || !gs->last || !gs->ready_at || !gs->started || !gs->by_ready) {
        ld_grad_sync_free(gs);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for gradient buckets");
    }
    gs->nb = cut(gs, p, per);
    return LD_OK;
}

void ld_grad_sync_free(ld_grad_sync *gs) {
    free(gs->start), free(gs->len), free(gs->first), free(gs->last);
    free(gs->ready_at), free(gs->started), free(gs->by_ready);
    memset(gs, 0, sizeof *gs);
}

void ld_grad_sync_arm(ld_grad_sync *gs, const int *order) {
    for (int b = 0; b < gs->nb; b++) {
        int r = 0;
        for (int i = gs->first[b]; order && i <= gs->last[b]; i++)
            if (order[i] > r) r = order[i];
        gs->ready_at[b] = order ? r : INT_MAX;
        gs->started[b] = 0;
    }
    for (int b = 0; b < gs->nb; b++) { /* insertion sort by ready_at: the backward finishes them in this order */
        int j = b;
        while (j > 0 && gs->ready_at[gs->by_ready[j - 1]] > gs->ready_at[b]) {
            gs->by_ready[j] = gs->by_ready[j - 1];
            j--;
        }
        gs->by_ready[j] = b;
    }
    gs->next_ready = 0;
    gs->early = 0;
    gs->armed = 1;
}

static ld_status start(ld_ctx *ctx, ld_grad_sync *gs, int b) {
    gs->started[b] = 1;
    return gs->comm->sum_start(ctx, gs->comm->user, gs->grad + gs->start[b], gs->len[b]);
}

ld_status ld_grad_sync_ready(ld_ctx *ctx, ld_grad_sync *gs, int seq) {
    if (!gs->armed) return LD_OK;
    int any = 0;
    while (gs->next_ready < gs->nb && gs->ready_at[gs->by_ready[gs->next_ready]] <= seq) {
        LD_TRY(start(ctx, gs, gs->by_ready[gs->next_ready++]));
        any = 1;
        if (gs->ready_at[gs->by_ready[gs->nb - 1]] > seq) gs->early++;
    }
    return any || gs->next_ready > 0 ? gs->comm->poll(ctx, gs->comm->user) : LD_OK;
}

ld_status ld_grad_sync_finish(ld_ctx *ctx, ld_grad_sync *gs) {
    ld_log_debug("gradient sums: %d of %d buckets started before the backward's last block", gs->early, gs->nb);
    for (int b = 0; b < gs->nb; b++)
        if (!gs->armed || !gs->started[b]) LD_TRY(start(ctx, gs, b));
    gs->armed = 0;
    return gs->comm->wait_all(ctx, gs->comm->user);
}
