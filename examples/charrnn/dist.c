/* dist.c — see dist.h. The MPI part is compiled only with --with-mpi
 * (DF_WITH_MPI); without it every function is the one-process identity. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "dist.h"
#include "runstate.h"
#ifdef DF_WITH_MPI
#include <mpi.h>
#include "dagflow_mpi.h"
#endif

static int rank_ = 0, size_ = 1;
static double peer_timeout = 0;

int cr_dist_rank(void) { return rank_; }
int cr_dist_size(void) { return size_; }
void cr_dist_set_peer_timeout(double seconds) { peer_timeout = seconds; }
double cr_dist_peer_timeout(void) { return peer_timeout; }

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

void cr_dist_finalize(void)
{
    if (!started) return;
    fflush(stdout);
    MPI_Finalize();
    started = false;
}

/* Waits for a collective started by this file. Every collective here is
 * nonblocking, so that with --peer-timeout a rank gives up when a peer died
 * or hung: it prints why and ends the job (MPI_Abort). */
static void finish(MPI_Request *req, const char *what)
{
    if (!(peer_timeout > 0)) {
        MPI_Wait(req, MPI_STATUS_IGNORE);
        return;
    }
    double start = MPI_Wtime();
    for (int done = 0;;) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        if (MPI_Wtime() - start > peer_timeout) {
            df_error(DF_ERR_STATE, "%s: no reply from the other rank%s within %g s: a peer has died or hung", what,
                     size_ > 2 ? "s" : "", peer_timeout);
            cr_dist_fail(DF_ERR_STATE);
        }
    }
}

static void allreduce(const void *in, void *out, int count, MPI_Datatype type, MPI_Op op, const char *what)
{
    MPI_Request req;
    MPI_Iallreduce(in, out, count, type, op, MPI_COMM_WORLD, &req);
    finish(&req, what);
}

static void bcast(void *data, int count, MPI_Datatype type, int root, const char *what)
{
    MPI_Request req;
    MPI_Ibcast(data, count, type, root, MPI_COMM_WORLD, &req);
    finish(&req, what);
}

df_status cr_dist_agree(df_status st)
{
    if (size_ == 1) return st;
    int mine = st != DF_OK ? rank_ : size_, first = size_;
    allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, "agreeing on errors");
    if (first == size_) return DF_OK;
    struct { int status; char msg[1024]; } e = {0};
    if (rank_ == first) {
        e.status = st;
        snprintf(e.msg, sizeof e.msg, "%s", df_last_error());
    }
    bcast(&e, (int)sizeof e, MPI_BYTE, first, "sharing an error");
    return first == 0 ? df_error((df_status)e.status, "%s", e.msg)
                      : df_error((df_status)e.status, "rank %d of %d: %s", first, size_, e.msg);
}

df_status cr_dist_fail(df_status st)
{
    if (st == DF_OK || size_ == 1) return st;
    fprintf(stderr, "char-rnn train (rank %d of %d): %s\n"
                    "char-rnn train: ending the job (MPI_Abort), as the other ranks may be waiting for this one\n",
            rank_, size_, df_last_error());
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return st;
}

double cr_dist_mean(double v)
{
    if (size_ == 1) return v;
    double sum = 0;
    allreduce(&v, &sum, 1, MPI_DOUBLE, MPI_SUM, "averaging a loss");
    return sum / size_;
}

bool cr_dist_any(bool flag)
{
    if (size_ == 1) return flag;
    int mine = flag, any = 0;
    allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, "agreeing on a stop");
    return any != 0;
}

bool cr_dist_step(float *loss, bool stop)
{
    if (size_ == 1) return stop;
    double v[2] = {*loss, stop}, sum[2];
    allreduce(v, sum, 2, MPI_DOUBLE, MPI_SUM, "averaging the step's loss");
    *loss = (float)(sum[0] / size_);
    return sum[1] > 0;
}

df_status cr_dist_setup_model(cr_model *m)
{
    if (size_ == 1) return DF_OK;
    allreduce_opts = (df_allreduce_opts){.comm = MPI_COMM_WORLD, .timeout = peer_timeout};
    df_optimizer_set_gradient_transform(m->opt, df_allreduce_gradient, &allreduce_opts);
    return DF_OK;
}

/* Every rank's hash; DF_OK if all equal rank 0's, else an error listing them. */
static df_status compare_hashes(uint64_t mine, const char *what, const char *advice)
{
    uint64_t *all = malloc((size_t)size_ * sizeof *all);
    df_status st = cr_dist_agree(all ? DF_OK : df_error(DF_ERR_NOMEM, "out of memory"));
    if (st != DF_OK) {
        free(all);
        return st;
    }
    MPI_Request req;
    MPI_Iallgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD, &req);
    finish(&req, "comparing hashes");
    char list[512] = "";
    size_t at = 0;
    bool same = true;
    for (int r = 0; r < size_; r++) {
        same = same && all[r] == all[0];
        if (r < 8 && at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s rank %d %016" PRIx64, r ? "," : "", r, all[r]);
    }
    free(all);
    if (same) return DF_OK;
    return df_error(DF_ERR_STATE, "%s differ between the ranks (XXH64:%s%s)%s", what, list, size_ > 8 ? ", ..." : "",
                    advice);
}

df_status cr_dist_check_same(const void *data, size_t len, const char *what)
{
    if (size_ == 1) return DF_OK;
    return compare_hashes(XXH64(data, len, 0), what, ": every machine needs the same file");
}

static df_status read_file(const char *path, void **data, uint64_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return df_error(DF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    df_status st = DF_OK;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) st = df_error(DF_ERR_IO, "cannot seek %s: %s", path, strerror(errno));
    *data = st == DF_OK ? malloc(size ? (size_t)size : 1) : NULL;
    if (st == DF_OK && !*data) st = df_error(DF_ERR_NOMEM, "out of memory reading %s", path);
    if (st == DF_OK && fread(*data, 1, (size_t)size, f) != (size_t)size)
        st = df_error(DF_ERR_IO, "cannot read %s", path);
    fclose(f);
    *len = (uint64_t)size;
    return st;
}

/* MPI_Bcast of len bytes from rank 0, in pieces that fit MPI's int counts. */
static void bcast_bytes(void *data, uint64_t len)
{
    for (uint64_t at = 0; at < len; at += 1u << 30) {
        uint64_t piece = len - at < (1u << 30) ? len - at : (1u << 30);
        bcast((char *)data + at, (int)piece, MPI_BYTE, 0, "broadcasting the checkpoint");
    }
}

df_status cr_dist_read_latest(const char *dir, char *path, size_t cap, df_checkpoint **ck)
{
    *ck = NULL;
    void *bytes = NULL;
    uint64_t len = 0;
    df_status st = DF_OK;
    if (rank_ == 0) {             /* rank 0's read verifies it and gives the usual messages */
        st = cr_latest_checkpoint(dir, path, cap);
        if (st == DF_OK) st = df_checkpoint_read(path, ck);
        if (st == DF_OK && size_ > 1) st = read_file(path, &bytes, &len);
    }
    if ((st = cr_dist_agree(st)) != DF_OK || size_ == 1) {
        free(bytes);
        if (st != DF_OK) {
            df_checkpoint_free(*ck);
            *ck = NULL;
        }
        return st;
    }
    char name[4096] = "";
    if (rank_ == 0) snprintf(name, sizeof name, "%s", path);
    bcast(name, (int)sizeof name, MPI_CHAR, 0, "broadcasting the checkpoint");
    bcast(&len, 1, MPI_UINT64_T, 0, "broadcasting the checkpoint");
    if (rank_ != 0) {
        snprintf(path, cap, "%s", name);
        bytes = malloc(len ? (size_t)len : 1);
        if (!bytes) st = df_error(DF_ERR_NOMEM, "out of memory for the %" PRIu64 "-byte checkpoint", len);
    }
    if ((st = cr_dist_agree(st)) == DF_OK) {
        bcast_bytes(bytes, len);
        if (rank_ != 0) st = df_checkpoint_read_memory(bytes, (size_t)len, ck);
        st = cr_dist_agree(st);
    }
    free(bytes);
    if (st != DF_OK) {
        df_checkpoint_free(*ck);
        *ck = NULL;
    }
    return st;
}

df_status cr_dist_gather_state(cr_model *m, const cr_batcher *b)
{
    if (size_ == 1) return DF_OK;
    cr_state *mine = cr_model_state(m, b->rows, CR_STATE_MAIN);
    cr_state *all = rank_ == 0 ? cr_model_state(m, b->batch, CR_STATE_MAIN) : NULL;
    df_status st = cr_dist_agree(mine && (all || rank_ != 0) ? DF_OK : df_error(DF_ERR_NOMEM, "no state to gather"));
    if (st != DF_OK) return st;
    int count = (int)(b->rows * (int64_t)m->cfg.hidden);
    for (int k = 0; k < m->n_layers; k++)          /* h of each layer, and c for an LSTM */
        for (int i = 0; i < 2; i++) {
            df_variable *from = i ? mine->c[k] : mine->h[k], *to = all ? (i ? all->c[k] : all->h[k]) : NULL;
            if (!from) continue;
            MPI_Request req;
            MPI_Igather(df_variable_tensor(from).data, count, MPI_FLOAT, to ? df_variable_tensor(to).data : NULL, count,
                        MPI_FLOAT, 0, MPI_COMM_WORLD, &req);
            finish(&req, "gathering the recurrent state");
        }
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

void cr_dist_finalize(void) {}
df_status cr_dist_agree(df_status st) { return st; }
df_status cr_dist_fail(df_status st) { return st; }
double cr_dist_mean(double v) { return v; }
bool cr_dist_any(bool flag) { return flag; }
bool cr_dist_step(float *loss, bool stop) { return stop; }
df_status cr_dist_setup_model(cr_model *m) { return DF_OK; }
df_status cr_dist_check_same(const void *data, size_t len, const char *what) { return DF_OK; }
df_status cr_dist_gather_state(cr_model *m, const cr_batcher *b) { return DF_OK; }

df_status cr_dist_read_latest(const char *dir, char *path, size_t cap, df_checkpoint **ck)
{
    *ck = NULL;
    df_status st = cr_latest_checkpoint(dir, path, cap);
    return st == DF_OK ? df_checkpoint_read(path, ck) : st;
}

#endif

df_status cr_dist_shard(cr_batcher *b) { return cr_batcher_shard(b, rank_, size_); }

df_status cr_dist_scatter_state(cr_model *m, const cr_batcher *b)
{
    if (b->rows == b->batch) return DF_OK;
    cr_state *all = cr_model_state(m, b->batch, CR_STATE_MAIN), *mine = all ? cr_model_state(m, b->rows, CR_STATE_MAIN) : NULL;
    if (!mine) return df_error(DF_ERR_NOMEM, "no recurrent state for batch %d", b->rows);
    size_t row = (size_t)m->cfg.hidden * sizeof(float);
    for (int k = 0; k < m->n_layers; k++)
        for (int i = 0; i < 2; i++) {
            df_variable *from = i ? all->c[k] : all->h[k], *to = i ? mine->c[k] : mine->h[k];
            if (from && to)
                memcpy(df_variable_tensor(to).data, (char *)df_variable_tensor(from).data + b->row0 * row,
                       b->rows * row);
        }
    return DF_OK;
}

/* XXH64 over every weight and optimizer variable, in a fixed order. */
static uint64_t weights_hash(cr_model *m)
{
    uint64_t h = 0;
    for (int i = 0; i < m->n_params; i++) {
        df_tensor t = df_variable_tensor(m->params[i]);
        h = XXH64(t.data, (size_t)df_tensor_numel(&t) * df_dtype_size(t.dtype), h);
    }
    int n = df_optimizer_state(m->opt, NULL, 0);
    df_variable **state = malloc((size_t)(n ? n : 1) * sizeof *state);
    if (!state) return h;
    df_optimizer_state(m->opt, state, n);
    for (int i = 0; i < n; i++) {
        df_tensor t = df_variable_tensor(state[i]);
        h = XXH64(t.data, (size_t)df_tensor_numel(&t) * df_dtype_size(t.dtype), h);
    }
    free(state);
    return h;
}

df_status cr_dist_check_weights(cr_model *m, uint64_t *hash)
{
    uint64_t h = weights_hash(m);
    if (hash) *hash = h;
#ifdef DF_WITH_MPI
    if (size_ > 1)
        return compare_hashes(h, "weights and optimizer state",
                              ": the ranks diverged (same --threads on every rank? same OpenBLAS?)");
#endif
    return DF_OK;
}
