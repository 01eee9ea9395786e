/* dist.h — char-rnn across processes: data-parallel training under mpirun in
 * builds configured --with-mpi; one process (and no MPI) otherwise.
 *
 * With N ranks each one trains on batch/N rows of every batch (its shard;
 * all ranks draw the same shuffle order), the gradients are averaged with
 * one fused MPI_Allreduce per step (the allreduce_mean op through the
 * optimizer's gradient transform), so all ranks apply the same update and
 * hold the same weights; losses are averaged too, so the run prints what
 * one process with the whole batch would. Rank 0 alone prints and writes
 * files (CSV, plot, checkpoints); on resume it reads the checkpoint and
 * broadcasts its bytes, so the other machines need no shared file system.
 *
 * Errors: a failure that every rank can see (bad flags, batch not divisible,
 * no corpus on some machine, a checkpoint that cannot be written) is agreed
 * on collectively and every rank exits cleanly with the same message, which
 * rank 0 prints. A failure inside a training step on one rank, while the
 * others may be waiting in the all-reduce, ends the job with MPI_Abort
 * after printing its message; so does a rank whose peer hung: with
 * --peer-timeout, every collective (the gradient all-reduce and the small
 * ones here) waits that long at most. A rank that dies is the MPI
 * runtime's to notice: Open MPI's mpirun then ends the job. */
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
/* Seconds an all-reduce waits for the other ranks (0 = forever). */
void cr_dist_set_peer_timeout(double seconds);
double cr_dist_peer_timeout(void);

/* Collective: DF_OK if st is DF_OK on every rank, else on every rank the
 * error of the lowest failing rank, with its message. */
df_status cr_dist_agree(df_status st);
/* A failure on this rank alone (a training step): with other ranks, prints
 * it naming the rank and ends the job (MPI_Abort); else returns st. */
df_status cr_dist_fail(df_status st);
/* Collective: the mean of v over the ranks. */
double cr_dist_mean(double v);
/* Collective: true on every rank if flag is true on any. */
bool cr_dist_any(bool flag);
/* Collective, once per step: *loss becomes the mean over the ranks; returns
 * whether any rank asked to stop, so all ranks stop after the same step. */
bool cr_dist_step(float *loss, bool stop);

/* This rank's shard of b (cr_batcher_shard). */
df_status cr_dist_shard(cr_batcher *b);
/* Installs the gradient all-reduce on the model's optimizer (N > 1). */
df_status cr_dist_setup_model(cr_model *m);
/* Collective: fails on every rank unless the len bytes at data (the
 * corpus) hash alike on all ranks; what names them in the message. */
df_status cr_dist_check_same(const void *data, size_t len, const char *what);
/* Collective: XXH64 of the weights and optimizer state, which must be the
 * same on every rank (else DF_ERR_STATE listing the hashes). */
df_status cr_dist_check_weights(cr_model *m, uint64_t *hash);

/* Collective: the latest checkpoint in dir, read by rank 0 and broadcast.
 * path receives its name. */
df_status cr_dist_read_latest(const char *dir, char *path, size_t cap, df_checkpoint **ck);
/* Mid-epoch recurrent state, for checkpoints that do not depend on N: the
 * ranks' (batch/N, H) rows gathered into rank 0's (batch, H) state before a
 * save (collective), and this rank's rows taken from the (batch, H) state
 * after a load (local). No-ops with one rank. */
df_status cr_dist_gather_state(cr_model *m, const cr_batcher *b);
df_status cr_dist_scatter_state(cr_model *m, const cr_batcher *b);

#endif
