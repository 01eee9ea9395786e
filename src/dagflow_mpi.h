/*
 * dagflow_mpi.h — data parallelism across processes and machines with MPI
 * (installed by builds configured with --with-mpi; compile with mpicc or with
 * `pkg-config --cflags ompi-c`).
 *
 * Each process (rank) holds the same variables and runs the same train step
 * on its own share of the batch. Before the optimizer updates, the gradients
 * are averaged over the ranks, so every rank applies the same update and the
 * weights stay identical; with equal shares the result equals one process
 * running the whole batch (up to float summation order):
 *
 *      MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
 *      static df_allreduce_opts ar = {.timeout = 600};
 *      ar.comm = MPI_COMM_WORLD;
 *      df_optimizer_set_gradient_transform(opt, df_allreduce_gradient, &ar);
 *      ... train as in one process, each rank on rows [rank*B/N, (rank+1)*B/N)
 *
 * With df_fit (dagflow.h, "training loop") the pieces are three: each rank's
 * data source gives its shard of every batch, the optimizer averages the
 * gradients (the transform above), and df_fit_options.comm lets the loop
 * agree across the ranks (mean losses, stop requests, errors; rank 0 alone
 * prints and writes the CSV, SVG and checkpoints, and on resume reads the
 * checkpoint and sends it to the others):
 *
 *      df_fit_comm *ranks = df_fit_mpi_comm(MPI_COMM_WORLD, 600);  // collective
 *      struct shard data = {.rows = B / size, .row0 = rank * B / size, ...};
 *      df_fit_options o = {
 *          .train_step = step, .n_inputs = 2, .optimizer = opt, .n_variables = 2, .variables = vars,
 *          .train = {.next = next_shard, .start_epoch = shuffle, .save = save_pos, .restore = load_pos,
 *                    .user = &data},
 *          .epochs = 10, .checkpoint_dir = "run", .csv_path = "run/losses.csv",
 *          .comm = ranks, .check_weights = true,
 *      };
 *      df_status st = df_fit(&o, &h);     // the same status and message on every rank
 *      df_fit_mpi_comm_free(ranks);       // before MPI_Finalize
 *
 * Every rank draws the same shuffle (one seed) and takes its rows of each
 * batch, so with equal shards the loss curve is one process's with the
 * whole batch. The data source's save records what the ranks share (the
 * position, the shuffle's RNG), not this rank's rows: on resume every rank
 * restores rank 0's record. What does differ per rank, the carried state of
 * a stateful RNN's rows, goes in df_fit_options.rank_variables: a checkpoint
 * holds every rank's rows (gathered to rank 0) and each rank resumes with
 * its own. Per step df_fit adds two small all-reduces (one
 * after fetching the batch, so that a data source failing on one rank stops
 * every rank before the gradient all-reduce; one after the step, for the
 * mean loss and any stop request). A train step that fails on one rank
 * alone, inside the step, leaves the others in the gradient all-reduce, so
 * df_fit_mpi_comm's abort hook (df_fit_comm.abort) prints that rank's error
 * on its stderr and ends the job with MPI_Abort (a non-zero exit).
 *
 * Run-time rules (MPI semantics): every rank must build the same graphs and
 * call them the same number of times, in the same order, or the collective
 * calls do not match up and the ranks wait for each other forever. Only the
 * thread that calls df_function_call / df_graph_run talks to MPI
 * (MPI_THREAD_FUNNELED is enough; kernels still use OpenMP threads).
 */
#ifndef DAGFLOW_MPI_H
#define DAGFLOW_MPI_H

#include <mpi.h>
#include "dagflow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct df_allreduce_opts {
    MPI_Comm comm;    /* the ranks to average over, e.g. MPI_COMM_WORLD */
    /* Seconds one all-reduce may wait for the other ranks before the run
     * fails with DF_ERR_STATE ("a peer died or hung"); 0 waits forever. After
     * a timeout the all-reduce is still pending, so the communicator is
     * unusable: end the job (MPI_Abort). Open MPI's mpirun already ends the
     * job when a rank dies; the timeout also covers a rank that hangs. */
    double timeout;
} df_allreduce_opts;

/* out[i] = the mean of xs[i] (f32, any shape) over the N ranks of
 * opts->comm, as one allreduce_mean node: each run copies all xs, divided by
 * N, into one flat buffer, makes one MPI_Allreduce (sum) over it, and out[i]
 * are views into that buffer. opts is copied. Fails (DF_ERR_STATE)
 * when MPI is not initialised, or is finalised. The first run checks that
 * every rank reduces the same number of floats (a mismatch fails the run on
 * every rank instead of corrupting memory). No gradient. */
df_status df_allreduce_mean(df_graph *g, const df_allreduce_opts *opts, int n, df_node *const *xs,
                            df_node **out);

/* A df_gradient_transform for df_optimizer_set_gradient_transform, with
 * user = a df_allreduce_opts that outlives the optimizer: the gradients of
 * one df_optimizer_apply join one allreduce_mean node (one fused
 * MPI_Allreduce per step, not one per variable). It returns NULL (and fails
 * the trace) when MPI is not initialised. */
df_node *df_allreduce_gradient(df_graph *g, df_node *grad, void *opts);

/* The ranks of comm for df_fit (df_fit_options.comm). Collective: every rank
 * calls it (its collectives run on a duplicate of comm, MPI_Comm_dup, so they
 * never mix with the caller's). Each of them waits at most timeout seconds
 * for the other ranks (0: forever); after a timeout df_fit returns
 * DF_ERR_STATE ("a peer has died or hung") and the communicator is unusable:
 * end the job (MPI_Abort). A train step failing on this rank ends the job at
 * once (its abort hook: the error on stderr, then MPI_Abort), since a peer may
 * be waiting in the step's all-reduce. NULL on error: MPI not initialised or finalised,
 * MPI_COMM_NULL, a negative or infinite timeout (df_last_error says which). */
df_fit_comm *df_fit_mpi_comm(MPI_Comm comm, double timeout);
/* Whether a collective of comm failed or timed out: the communicator is then
 * unusable and the job should end (MPI_Abort), as MPI_Finalize may wait forever. */
bool df_fit_mpi_comm_broken(const df_fit_comm *comm);
/* Frees it (MPI_Comm_free of the duplicate), before MPI_Finalize. NULL is a no-op. */
void df_fit_mpi_comm_free(df_fit_comm *comm);

#ifdef __cplusplus
}
#endif
#endif /* DAGFLOW_MPI_H */
