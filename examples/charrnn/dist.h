/* dist.h — char-rnn across processes: data-parallel training under mpirun in
 * builds configured --with-mpi; one process (and no MPI) otherwise.
 *
 * With N ranks each one trains on batch/N rows of every batch (its shard;
 * all ranks draw the same shuffle order), and df_fit runs the loop over the
 * ranks (dagflow.h, df_fit_comm): the gradients are averaged with one fused
 * MPI_Allreduce per step, losses are averaged, rank 0 alone prints and
 * writes files, a checkpoint holds every rank's rows of the recurrent state
 * (df_fit's rank_variables), and errors reach every rank. A collective that
 * times out (--peer-timeout: a peer died or hung) ends the job with
 * MPI_Abort after this rank printed why. */
#ifndef CR_DIST_H
#define CR_DIST_H
#include <stdbool.h>
#include <stdio.h>
#include "batches.h"
#include "model.h"

/* Starts MPI (MPI_Init_thread, funneled) when launched by mpirun/mpiexec
 * (Open MPI, MPICH, PMIx); one rank otherwise. Non-zero ranks' stdout goes to
 * /dev/null. In builds without MPI, being one of several launched processes
 * is an error saying so. */
df_status cr_dist_init(int *argc, char ***argv);
/* MPI_Finalize, if started. */
void cr_dist_finalize(void);
int cr_dist_rank(void);
int cr_dist_size(void);
/* Where rank 0 prints errors; other ranks get a stream to /dev/null. */
FILE *cr_dist_err(void);
/* Seconds a collective waits for the other ranks (0 = forever); before the
 * first cr_dist_comm. */
void cr_dist_set_peer_timeout(double seconds);
/* The ranks for df_fit (created on first use, collectively); NULL with one. */
const df_fit_comm *cr_dist_comm(void);
/* After a failure: if the ranks can no longer talk (a timeout), prints
 * st's message naming this rank and ends the job (MPI_Abort). */
void cr_dist_abort_if_broken(void);

/* Collective: DF_OK if st is DF_OK on every rank, else on every rank the
 * error of the lowest failing rank, with its message. */
df_status cr_dist_agree(df_status st);
/* Collective: the mean of v over the ranks. */
double cr_dist_mean(double v);
/* This rank's shard of b (cr_batcher_shard). */
df_status cr_dist_shard(cr_batcher *b);
/* Installs the gradient all-reduce on the model's optimizer (N > 1). */
df_status cr_dist_setup_model(cr_model *m);
/* Collective: fails on every rank unless the len bytes at data (the
 * corpus) hash alike on all ranks; what names them in the message. */
df_status cr_dist_check_same(const void *data, size_t len, const char *what);

#endif
