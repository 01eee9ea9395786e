/* fit_mpi.c — df_fit's ranks over an MPI communicator (df_fit_mpi_comm in
 * src/dagflow_mpi.h; built with --with-mpi only).
 *
 * Every collective here is nonblocking and waited for by polling, so that
 * with a timeout a rank gives up when a peer has died or hung instead of
 * waiting forever. A request that timed out stays pending: the communicator
 * is unusable from then on, so the first failure is kept and every later
 * call returns it at once (df_fit then returns it on this rank; the job
 * should end, e.g. with MPI_Abort). */
#ifdef DF_WITH_MPI
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow_mpi.h"

enum { MSG_CAP = 1024 };
#define PIECE ((uint64_t)1 << 30)      /* bytes per MPI_Ibcast: MPI counts are int */

typedef struct fit_mpi {
    df_fit_comm comm;                  /* first: df_fit_comm * and fit_mpi * convert */
    MPI_Comm mpi;                      /* a duplicate: df_fit's collectives never meet the caller's */
    double timeout;
    df_status broken;                  /* the first communication failure, or DF_OK */
    char broken_msg[MSG_CAP];
} fit_mpi;

static df_status still_broken(const fit_mpi *m)
{
    return df_error(m->broken, "%s", m->broken_msg);
}

/* Keeps the current error (a communication failure) for every later call. */
static df_status break_down(fit_mpi *m, df_status st)
{
    m->broken = st;
    snprintf(m->broken_msg, sizeof m->broken_msg, "%s", df_last_error());
    return st;
}

static df_status mpi_failed(fit_mpi *m, int rc, const char *call)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    df_error(DF_ERR_STATE, "df_fit: %s failed: %s", call, msg);
    return break_down(m, DF_ERR_STATE);
}

/* Waits for a started collective: forever, or at most the timeout. */
static df_status finish(fit_mpi *m, int started, MPI_Request *req, const char *what)
{
    if (started != MPI_SUCCESS) return mpi_failed(m, started, what);
    if (!(m->timeout > 0)) {
        int rc = MPI_Wait(req, MPI_STATUS_IGNORE);
        return rc == MPI_SUCCESS ? DF_OK : mpi_failed(m, rc, what);
    }
    double start = MPI_Wtime();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(m, rc, what);
        if (done) return DF_OK;
        if (MPI_Wtime() - start > m->timeout) {
            df_error(DF_ERR_STATE, "df_fit: %s: no reply from the other rank%s within %g s: a peer has died or hung "
                     "(the communicator is unusable now; end the job)", what, m->comm.size > 2 ? "s" : "",
                     m->timeout);
            return break_down(m, DF_ERR_STATE);
        }
    }
}

static df_status sum(void *user, double *values, int n)
{
    fit_mpi *m = user;
    if (m->broken) return still_broken(m);
    if (n < 0 || n > 8) return df_error(DF_ERR_ARG, "df_fit_mpi_comm: sum of %d values (at most 8)", n);
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, m->mpi, &req);
    return finish(m, rc, &req, "summing over the ranks");
}

static df_status agree(void *user, df_status st)
{
    fit_mpi *m = user;
    if (m->broken) return still_broken(m);
    int rank = m->comm.rank, size = m->comm.size;
    int mine = st != DF_OK ? rank : size, first = size;
    MPI_Request req;
    df_status sent = finish(m, MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, m->mpi, &req), &req,
                            "agreeing on an error");
    if (sent != DF_OK) return sent;
    if (first == size) return DF_OK;
    struct { int status; char msg[MSG_CAP]; } e = {0};
    if (rank == first) {
        e.status = st;
        snprintf(e.msg, sizeof e.msg, "%s", df_last_error());
    }
    sent = finish(m, MPI_Ibcast(&e, (int)sizeof e, MPI_BYTE, first, m->mpi, &req), &req, "sharing an error");
    if (sent != DF_OK) return sent;
    e.msg[MSG_CAP - 1] = 0;
    /* The lowest failing rank's message, naming it unless it is rank 0 (an
     * error agreed before comes back from rank 0, already named). */
    return first == 0 ? df_error((df_status)e.status, "%s", e.msg)
                      : df_error((df_status)e.status, "rank %d of %d: %s", first, size, e.msg);
}

static df_status broadcast(void *user, void **data, size_t *len)
{
    fit_mpi *m = user;
    if (m->broken) return still_broken(m);
    bool root = m->comm.rank == 0;
    uint64_t n = root ? *len : 0;
    MPI_Request req;
    df_status st = finish(m, MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, m->mpi, &req), &req, "broadcasting");
    if (st != DF_OK) return st;
    char *buf = root ? *data : malloc(n ? (size_t)n : 1);
    st = agree(m, buf ? DF_OK : df_error(DF_ERR_NOMEM, "df_fit: out of memory for %" PRIu64 " bytes from rank 0", n));
    for (uint64_t at = 0; st == DF_OK && at < n; at += PIECE) {
        int piece = (int)(n - at < PIECE ? n - at : PIECE);
        st = finish(m, MPI_Ibcast(buf + at, piece, MPI_BYTE, 0, m->mpi, &req), &req, "broadcasting");
    }
    if (root) return st;
    if (st != DF_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *len = (size_t)n;
    return DF_OK;
}

static df_status gather(void *user, const void *mine, size_t len, void *all)
{
    fit_mpi *m = user;
    if (m->broken) return still_broken(m);
    if (len > INT_MAX) return df_error(DF_ERR_ARG, "df_fit_mpi_comm: gather of %zu bytes a rank (at most %d)", len, INT_MAX);
    MPI_Request req;
    int rc = MPI_Igather(mine, (int)len, MPI_BYTE, all, (int)len, MPI_BYTE, 0, m->mpi, &req);
    return finish(m, rc, &req, "gathering the ranks' variables");
}

/* The train step failed here: a peer may wait in its gradient all-reduce,
 * which nothing but ending the job can release. */
static void abort_job(void *user, df_status st)
{
    fit_mpi *m = user;
    fprintf(stderr, "df_fit: rank %d of %d: the train step failed (%s): %s; ending the job (MPI_Abort)\n",
            m->comm.rank, m->comm.size, df_status_name(st), df_last_error());
    fflush(stderr);
    MPI_Abort(m->mpi, 1);
}

bool df_fit_mpi_comm_broken(const df_fit_comm *comm) { return comm && ((const fit_mpi *)comm)->broken != DF_OK; }

df_fit_comm *df_fit_mpi_comm(MPI_Comm comm, double timeout)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) {
        df_error(DF_ERR_STATE, "df_fit_mpi_comm: MPI is %s", fin ? "already finalised" : "not initialised (call "
                 "MPI_Init or MPI_Init_thread first)");
        return NULL;
    }
    if (comm == MPI_COMM_NULL) {
        df_error(DF_ERR_ARG, "df_fit_mpi_comm: MPI_COMM_NULL");
        return NULL;
    }
    if (!(timeout >= 0) || isinf(timeout)) {
        df_error(DF_ERR_ARG, "df_fit_mpi_comm: timeout must be >= 0 seconds, got %g", timeout);
        return NULL;
    }
    fit_mpi *m = calloc(1, sizeof *m);
    if (!m) {
        df_error(DF_ERR_NOMEM, "df_fit_mpi_comm: out of memory");
        return NULL;
    }
    int rc = MPI_Comm_dup(comm, &m->mpi);
    if (rc != MPI_SUCCESS) {
        mpi_failed(m, rc, "MPI_Comm_dup");
        free(m);
        return NULL;
    }
    MPI_Comm_rank(m->mpi, &m->comm.rank);
    MPI_Comm_size(m->mpi, &m->comm.size);
    m->comm.sum = sum;
    m->comm.agree = agree;
    m->comm.broadcast = broadcast;
    m->comm.gather = gather;
    m->comm.abort = abort_job;
    m->comm.user = m;
    m->timeout = timeout;
    return &m->comm;
}

void df_fit_mpi_comm_free(df_fit_comm *comm)
{
    if (!comm) return;
    fit_mpi *m = (fit_mpi *)comm;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && !m->broken) MPI_Comm_free(&m->mpi);   /* a pending request would make the free wait */
    free(m);
}
#else
typedef int df_fit_mpi_needs_mpi;      /* ISO C: a translation unit declares something */
#endif
