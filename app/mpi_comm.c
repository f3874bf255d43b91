/* Open MPI for data-parallel training (mpi_comm.h): non-blocking in-place
 * sums of the gradient buckets (MPI_Iallreduce), progressed between blocks
 * of the backward and waited for before the optimizer step. */
#include "mpi_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Launched by mpirun (Open MPI, or a PMI/PMIx launcher such as srun)? */
static int launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return getenv("PMIX_RANK") ? 2 : 0; /* PMIx without a size: more than one, as far as we know */
}

#ifdef LD_HAVE_MPI
#include <mpi.h>

typedef struct {
    ld_train_comm comm;
    MPI_Request *req;
    int nreq, cap;
    int started, stopped;
} mpi_state;

static mpi_state g_mpi;

static ld_status mpi_err(ld_ctx *ctx, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ld_fail(ctx, LD_ERR_IO, "MPI %s failed (a process of the run may have stopped): %.*s", what, len, msg);
}

static ld_status sum_start(ld_ctx *ctx, void *user, float *buf, int64_t n) {
    mpi_state *m = user;
    for (int64_t done = 0; done < n;) { /* MPI counts are int */
        const int count = n - done > (1 << 30) ? 1 << 30 : (int)(n - done);
        if (m->nreq == m->cap) {
            const int cap = m->cap ? 2 * m->cap : 256;
            MPI_Request *r = realloc(m->req, sizeof *r * (size_t)cap);
            if (!r) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for MPI requests");
            m->req = r, m->cap = cap;
        }
        const int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                      &m->req[m->nreq]);
        if (rc != MPI_SUCCESS) return mpi_err(ctx, rc, "gradient sum");
        m->nreq++;
        done += count;
    }
    return LD_OK;
}

static ld_status poll(ld_ctx *ctx, void *user) {
    mpi_state *m = user;
    int flag = 0;
    const int rc = m->nreq ? MPI_Testall(m->nreq, m->req, &flag, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    return rc == MPI_SUCCESS ? LD_OK : mpi_err(ctx, rc, "gradient sum");
}

static ld_status wait_all(ld_ctx *ctx, void *user) {
    mpi_state *m = user;
    const int rc = m->nreq ? MPI_Waitall(m->nreq, m->req, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    m->nreq = 0;
    return rc == MPI_SUCCESS ? LD_OK : mpi_err(ctx, rc, "gradient sum");
}

static ld_status sum_doubles(ld_ctx *ctx, void *user, double *v, int n) {
    const int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LD_OK : mpi_err(ctx, rc, "loss sum");
}

static ld_status barrier(ld_ctx *ctx, void *user) {
    const int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LD_OK : mpi_err(ctx, rc, "barrier");
}

ld_status mpi_comm_start(ld_ctx *ctx, ld_train_comm **comm) {
    *comm = NULL;
    if (g_mpi.started) {
        *comm = g_mpi.stopped ? NULL : &g_mpi.comm;
        return LD_OK;
    }
    if (launched_size() < 1) return LD_OK;
    int provided = 0;
    /* only the main thread calls MPI, between parallel regions */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return ld_fail(ctx, LD_ERR_IO, "MPI_Init failed");
    g_mpi.started = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_mpi.comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_mpi.comm.size);
    g_mpi.comm.user = &g_mpi;
    g_mpi.comm.sum_start = sum_start;
    g_mpi.comm.poll = poll;
    g_mpi.comm.wait_all = wait_all;
    g_mpi.comm.sum_doubles = sum_doubles;
    g_mpi.comm.barrier = barrier;
    *comm = &g_mpi.comm;
    return LD_OK;
}

void mpi_comm_stop(void) {
    if (!g_mpi.started || g_mpi.stopped) return;
    MPI_Finalize();
    g_mpi.stopped = 1;
    free(g_mpi.req);
    g_mpi.req = NULL;
}

void mpi_comm_abort(int code) {
    if (g_mpi.started && !g_mpi.stopped && g_mpi.comm.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int mpi_comm_rank(void) { return g_mpi.started && !g_mpi.stopped ? g_mpi.comm.rank : 0; }

#else

ld_status mpi_comm_start(ld_ctx *ctx, ld_train_comm **comm) {
    *comm = NULL;
    if (launched_size() > 1)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                       "started by mpirun, but this leandiff was built without MPI: install libopenmpi-dev and "
                       "rebuild (each process would otherwise train alone)");
    return LD_OK;
}

void mpi_comm_stop(void) {}
void mpi_comm_abort(int code) { (void)code; }
int mpi_comm_rank(void) { return 0; }

#endif
