/* dist.c — see dist.h. The MPI part is compiled only with --with-mpi
 * (DF_WITH_MPI); without it every function is the one-process identity. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "dist.h"
#ifdef DF_WITH_MPI
#include <mpi.h>
#include "dagflow_mpi.h"
#endif

static int rank_ = 0, size_ = 1;
static double peer_timeout = 0;
static df_fit_comm *comm;

int cr_dist_rank(void) { return rank_; }
int cr_dist_size(void) { return size_; }
void cr_dist_set_peer_timeout(double seconds) { peer_timeout = seconds; }

FILE *cr_dist_err(void)
{
    static FILE *null_stream;
    if (rank_ == 0) return stderr;
    if (!null_stream) null_stream = fopen("/dev/null", "w");
    return null_stream ? null_stream : stderr;
}

/* Number of processes a launcher started (-1: some, unknown), 0 if none;
 * *rank gets this one's rank when the launcher says. */
static int launched(int *rank)
{
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},  /* Open MPI */
                                          {"PMI_SIZE", "PMI_RANK"},                          /* MPICH, Intel MPI */
                                          {"PMIX_SIZE", "PMIX_RANK"}};                       /* PMIx (srun, prterun) */
    *rank = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *size = getenv(vars[i][0]), *rank_s = getenv(vars[i][1]);
        if (!size && !rank_s) continue;
        if (rank_s) *rank = atoi(rank_s);
        return size ? atoi(size) : -1;
    }
    return 0;
}

df_status cr_dist_agree(df_status st) { return comm || cr_dist_comm() ? comm->agree(comm->user, st) : st; }

double cr_dist_mean(double v)
{
    if (!cr_dist_comm()) return v;
    return comm->sum(comm->user, &v, 1) == DF_OK ? v / size_ : v;
}

df_status cr_dist_shard(cr_batcher *b) { return cr_batcher_shard(b, rank_, size_); }

df_status cr_dist_check_same(const void *data, size_t len, const char *what)
{
    if (!cr_dist_comm()) return DF_OK;
    uint64_t mine = XXH64(data, len, 0), first = mine;
    void *sent = &first;
    size_t n = sizeof first;
    df_status st = comm->broadcast(comm->user, &sent, &n);
    if (st != DF_OK) return st;
    if (rank_ != 0) {
        memcpy(&first, sent, sizeof first);
        free(sent);
    }
    if (first != mine)
        st = df_error(DF_ERR_STATE, "%s differ between the ranks (XXH64: rank 0 %016" PRIx64 ", rank %d %016" PRIx64
                      "): every machine needs the same file", what, first, rank_, mine);
    return cr_dist_agree(st);
}

#ifdef DF_WITH_MPI

static bool started;
static df_allreduce_opts allreduce_opts;

df_status cr_dist_init(int *argc, char ***argv)
{
    int env_rank, n = launched(&env_rank);
    if (n == 0 || started) return DF_OK;            /* run directly: one process, no MPI */
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return df_error(DF_ERR_STATE, "MPI_Init_thread failed (error %d)", rc);
    started = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (rank_ != 0 && !freopen("/dev/null", "w", stdout))
        return df_error(DF_ERR_IO, "rank %d: cannot send stdout to /dev/null: %s", rank_, strerror(errno));
    return DF_OK;
}

const df_fit_comm *cr_dist_comm(void)
{
    if (!comm && size_ > 1) comm = df_fit_mpi_comm(MPI_COMM_WORLD, peer_timeout);
    return comm;
}

void cr_dist_abort_if_broken(void)
{
    if (!df_fit_mpi_comm_broken(comm)) return;
    fprintf(stderr, "char-rnn train (rank %d of %d): %s\n"
                    "char-rnn train: ending the job (MPI_Abort), as the other ranks may be waiting for this one\n",
            rank_, size_, df_last_error());
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

void cr_dist_finalize(void)
{
    if (!started) return;
    fflush(stdout);
    df_fit_mpi_comm_free(comm);
    comm = NULL;
    MPI_Finalize();
    started = false;
}

df_status cr_dist_setup_model(cr_model *m)
{
    if (size_ == 1) return DF_OK;
    allreduce_opts = (df_allreduce_opts){.comm = MPI_COMM_WORLD, .timeout = peer_timeout};
    df_optimizer_set_gradient_transform(m->opt, df_allreduce_gradient, &allreduce_opts);
    return DF_OK;
}

#else /* one process */

df_status cr_dist_init(int *argc, char ***argv)
{
    int env_rank, n = launched(&env_rank);
    if (n > 1) {
        rank_ = env_rank;        /* so that only the first process prints the error */
        return df_error(DF_ERR_STATE, "started as one of %d processes (by mpirun?), but this char-rnn was built without "
                        "MPI: each would train alone on the whole batch and overwrite the others' checkpoints. "
                        "Reconfigure with ./configure --with-mpi, or run one process", n);
    }
    return DF_OK;
}

const df_fit_comm *cr_dist_comm(void) { return NULL; }
void cr_dist_abort_if_broken(void) {}
void cr_dist_finalize(void) {}
df_status cr_dist_setup_model(cr_model *m) { return DF_OK; }

#endif
