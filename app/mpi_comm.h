/* The processes of a training run started by `mpirun` (Open MPI): the
 * ld_train_comm the trainer sums its gradients through (src/train/
 * train_comm.h). Started only when the environment says mpirun launched
 * us, so a plain `leandiff train` never touches MPI; a build without MPI
 * that is launched by mpirun says so instead of training N copies alone.
 *
 *     ld_train_comm *comm;
 *     if (mpi_comm_start(ctx, &comm) != LD_OK) ...    comm: NULL for one process
 *     ... o.comm = comm; ld_train_run(ctx, &o) ...
 *     mpi_comm_stop();                                 or mpi_comm_abort(1) after an error
 */
#ifndef LD_APP_MPI_COMM_H
#define LD_APP_MPI_COMM_H

#include "train/train_comm.h"

/* Starts MPI on the first call (later calls return the same comm). */
ld_status mpi_comm_start(ld_ctx *ctx, ld_train_comm **comm);
/* Ends MPI (after every process reached it). */
void mpi_comm_stop(void);
/* An error on one process ends every process of the run (they would wait
 * for its gradients forever). */
void mpi_comm_abort(int code);
/* This process's rank (0 without MPI). */
int mpi_comm_rank(void);

#endif
