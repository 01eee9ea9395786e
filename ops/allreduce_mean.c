/* allreduce_mean.c — the mean of tensors over the ranks of an MPI
 * communicator, for data-parallel training (built with --with-mpi only; see
 * src/dagflow_mpi.h).
 *
 *   allreduce_mean  inputs x_0..x_k (f32, any shapes) -> flat (sum of sizes):
 *                   copies every x_i / N (N ranks) into the flat buffer, then
 *                   one MPI_Allreduce (sum, in place) over it.
 *                   A side effect (communication): never folded, merged or
 *                   dropped, and every rank runs it once per call.
 *   allreduce_part  a view of x_i's stretch of the flat buffer, shaped as x_i.
 *
 * The gradient transform (df_allreduce_gradient) is called once per gradient
 * by df_optimizer_apply, one call right after the other. The first call
 * makes an "open" allreduce_mean node; each later call whose graph's newest
 * node is a part of that open node appends its gradient to it (inputs and
 * flat size grow), so all gradients of one apply share one MPI_Allreduce.
 * Appending keeps creation order topological: the gradients were all made
 * before the allreduce_mean node, and its parts after it. */
#ifdef DF_WITH_MPI      /* (fuzz/fuzz.sh compiles every op file, this one empty) */
#include <math.h>
#include <mpi.h>
#include <string.h>
#include "common.h"
#include "../src/dagflow_mpi.h"

/* Elements per MPI call: MPI counts are int. */
#define AR_CHUNK ((int64_t)1 << 30)

/* An allreduce_mean node's state, changed as the node grows and first runs. */
typedef struct ar_state {
    df_allreduce_opts opts;
    int cap_in;        /* capacity of the node's input array (open nodes grow it) */
    bool checked;      /* the ranks agreed on the element count (first run) */
    bool open;         /* made by the gradient transform: later gradients may join it */
} ar_state;

DF_ATTRS_BEGIN
typedef struct { ar_state *state; } allreduce_mean_attrs;
typedef struct {
    int64_t offset;               /* into the flat buffer, in elements */
    int64_t shape[DF_MAX_DIMS];
    int64_t ndim;
} allreduce_part_attrs;
DF_ATTRS_END

static df_status mpi_ready(const char *who)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) return df_error(DF_ERR_STATE, "%s: MPI is already finalised", who);
    if (!init)
        return df_error(DF_ERR_STATE, "%s: MPI is not initialised (call MPI_Init or MPI_Init_thread first; "
                        "programs launched without mpirun have no ranks to average over)", who);
    return DF_OK;
}

static df_status mpi_failed(int rc, const char *call)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    return df_error(DF_ERR_STATE, "%s failed: %s", call, msg);
}

/* In-place all-reduce of count elements of type, in chunks of AR_CHUNK:
 * blocking calls, or nonblocking ones waited for (polled until done or out
 * of time when there is a timeout). A blocking collective never matches a
 * nonblocking one, so all ranks must choose alike. */
static df_status reduce(void *buf, int64_t count, MPI_Datatype type, MPI_Op op, const df_allreduce_opts *o,
                        bool nonblocking)
{
    int esize = 0;
    MPI_Type_size(type, &esize);
    int64_t n_chunks = (count + AR_CHUNK - 1) / AR_CHUNK;
    char *p = buf;
    if (!nonblocking) {
        for (int64_t c = 0; c < n_chunks; c++) {
            int64_t len = count - c * AR_CHUNK < AR_CHUNK ? count - c * AR_CHUNK : AR_CHUNK;
            int rc = MPI_Allreduce(MPI_IN_PLACE, p + c * AR_CHUNK * esize, (int)len, type, op, o->comm);
            if (rc != MPI_SUCCESS) return mpi_failed(rc, "MPI_Allreduce");
        }
        return DF_OK;
    }
    MPI_Request req[1024];             /* 2^40 elements at most (df_shape_numel_checked) */
    if (n_chunks > 1024) return df_error(DF_ERR_RANGE, "all-reduce of %lld elements is too large", (long long)count);
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t len = count - c * AR_CHUNK < AR_CHUNK ? count - c * AR_CHUNK : AR_CHUNK;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, p + c * AR_CHUNK * esize, (int)len, type, op, o->comm, &req[c]);
        if (rc != MPI_SUCCESS) return mpi_failed(rc, "MPI_Iallreduce");
    }
    if (!(o->timeout > 0)) {
        int rc = MPI_Waitall((int)n_chunks, req, MPI_STATUSES_IGNORE);
        return rc == MPI_SUCCESS ? DF_OK : mpi_failed(rc, "MPI_Waitall");
    }
    double start = MPI_Wtime();
    for (;;) {
        int done = 0;
        int rc = MPI_Testall((int)n_chunks, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(rc, "MPI_Testall");
        if (done) return DF_OK;
        if (MPI_Wtime() - start > o->timeout) {
            int size = 0;
            char others[32] = "rank";
            MPI_Comm_size(o->comm, &size);
            if (size > 2) snprintf(others, sizeof others, "%d ranks", size - 1);
            return df_error(DF_ERR_STATE,
                            "no reply from the other %s within %g s: a peer has died or hung "
                            "(the all-reduce stays pending; end the job)", others, o->timeout);
        }
    }
}

static df_status allreduce_mean_infer(df_node *n)
{
    int64_t total = 0;
    for (int i = 0; i < n->n_in; i++) {
        df_status st = df_require_f32(n, i);
        if (st != DF_OK) return st;
        total += n->in[i]->numel;
    }
    n->dtype = DF_F32;
    n->ndim = 1;
    n->shape[0] = total;
    return DF_OK;
}

/* dst = src * scale: the pack and the division by the rank count in one pass
 * (exact for a power-of-two count; identical on every rank for any count). */
static void pack_scaled(float *dst, const float *src, int64_t n, float scale)
{
#pragma omp parallel for simd schedule(static) if (n > DF_PAR_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] * scale;
}

// x_0..x_k -> flat (sum of numel): the mean over ranks, packed in input order
static df_status allreduce_mean_forward(df_node *n)
{
    ar_state *a = DF_ATTRS(n, allreduce_mean_attrs)->state;
    df_status st = mpi_ready("allreduce_mean");
    if (st != DF_OK) return st;
    float *flat = DF_F32P(n);
    int64_t N = n->numel, at = 0;
    bool timed = a->opts.timeout > 0;
    if (!a->checked) {      /* same count and call kind everywhere, or MPI would mismatch or overrun buffers */
        long long v[4] = {N, -N, timed, -(long long)timed};
        if ((st = reduce(v, 4, MPI_LONG_LONG, MPI_MAX, &a->opts, true)) != DF_OK) return st;
        if (v[0] != N || -v[1] != N)
            return df_error(DF_ERR_STATE,
                            "the ranks disagree on the all-reduce size (this rank %lld floats, the ranks range "
                            "from %lld to %lld): every rank must build the same model", (long long)N, -v[1], v[0]);
        if (v[2] != -v[3])
            return df_error(DF_ERR_STATE, "some ranks all-reduce with a timeout and some without: give every rank "
                            "the same timeout setting");
        a->checked = true;
    }
    int size = 1;
    MPI_Comm_size(a->opts.comm, &size);
    for (int i = 0; i < n->n_in; i++) {
        pack_scaled(flat + at, DF_F32P(n->in[i]), n->in[i]->numel, 1.0f / (float)size);
        at += n->in[i]->numel;
    }
    return size == 1 ? DF_OK : reduce(flat, N, MPI_FLOAT, MPI_SUM, &a->opts, timed);
}

/* What this rank does in memory: the pack multiplies each element by
 * 1/ranks (a FLOP) reading the inputs and writing flat. The exchange itself
 * (bytes on the wire, the sums of the reduction) depends on the rank count
 * and MPI's algorithm, so it is not counted. */
static void allreduce_mean_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_allreduce_mean = {
    .name = "allreduce_mean", .flags = DF_OP_SIDE_EFFECT,
    .infer = allreduce_mean_infer, .forward = allreduce_mean_forward, .attrs_size = sizeof(allreduce_mean_attrs),
    .no_gradcheck = "no gradient: averages gradients across MPI ranks (tests/test_mpi.c)",
    .min_inputs = 1, .max_inputs = DF_MAX_INPUTS, .attrs_kind = DF_ATTRS_UNSAVED,
    .cost = allreduce_mean_cost,
};

static df_status allreduce_part_infer(df_node *n)
{
    const df_node *flat = n->in[0];
    const allreduce_part_attrs *a = DF_ATTRS(n, allreduce_part_attrs);
    n->dtype = DF_F32;
    n->ndim = (int)a->ndim;
    for (int d = 0; d < n->ndim; d++) n->shape[d] = a->shape[d];
    int64_t numel = df_shape_numel(n->ndim, n->shape);
    if (flat->op != &df_op_allreduce_mean || a->offset < 0 || a->offset + numel > flat->numel)
        return df_op_error(n, DF_ERR_ARG, "not a part of an allreduce_mean node");
    return DF_OK;
}

/* A view at an offset: the planner gives views their root's address, so the
 * offset is applied here, before any reader runs. */
static df_status allreduce_part_forward(df_node *n)
{
    n->data = DF_F32P(n->in[0]) + DF_ATTRS(n, allreduce_part_attrs)->offset;
    return DF_OK;
}

const df_op_def df_op_allreduce_part = {
    .name = "allreduce_part", .flags = DF_OP_VIEW,
    .infer = allreduce_part_infer, .forward = allreduce_part_forward, .attrs_size = sizeof(allreduce_part_attrs),
    .no_gradcheck = "no gradient: a view into allreduce_mean's result (tests/test_mpi.c)",
    .min_inputs = 1, .max_inputs = 1, .attrs_kind = DF_ATTRS_UNSAVED,
};

static df_node *part(df_graph *g, df_node *flat, int64_t offset, const df_node *like)
{
    allreduce_part_attrs a = {.offset = offset, .ndim = like->ndim};
    for (int d = 0; d < like->ndim; d++) a.shape[d] = like->shape[d];
    return df_node_new(g, &df_op_allreduce_part, 1, &flat, &a);
}

static bool check_opts(df_graph *g, const df_allreduce_opts *opts)
{
    if (!opts) {
        df_graph_fail(g, DF_ERR_ARG, "allreduce_mean: null options (the transform's user pointer must be a "
                                     "df_allreduce_opts)");
        return false;
    }
    if (!(opts->timeout >= 0) || isinf(opts->timeout)) {
        df_graph_fail(g, DF_ERR_ARG, "allreduce_mean: timeout must be >= 0 seconds, got %g", opts->timeout);
        return false;
    }
    df_status st = mpi_ready("allreduce_mean");
    if (st == DF_OK && opts->comm == MPI_COMM_NULL) st = df_error(DF_ERR_ARG, "allreduce_mean: MPI_COMM_NULL");
    if (st != DF_OK) {
        df_graph_fail(g, st, "%s", df_last_error());
        return false;
    }
    return true;
}

static df_node *make_flat(df_graph *g, const df_allreduce_opts *opts, int n, df_node *const *xs, bool open)
{
    ar_state *a = df_graph_alloc(g, sizeof *a);
    if (!a) {
        df_graph_fail(g, DF_ERR_NOMEM, "allreduce_mean: out of memory");
        return NULL;
    }
    a->opts = *opts;
    a->cap_in = n;
    a->open = open;
    return df_node_new(g, &df_op_allreduce_mean, n, xs, &(allreduce_mean_attrs){.state = a});
}

df_status df_allreduce_mean(df_graph *g, const df_allreduce_opts *opts, int n, df_node *const *xs, df_node **out)
{
    if (!g) return df_error(DF_ERR_ARG, "df_allreduce_mean: null graph");
    if (g->status != DF_OK) return g->status;
    if (n < 0 || (n > 0 && (!xs || !out))) return df_graph_fail(g, DF_ERR_ARG, "df_allreduce_mean: bad arguments");
    if (!check_opts(g, opts)) return g->status;
    if (n == 0) return DF_OK;
    df_node *flat = make_flat(g, opts, n, xs, false);
    int64_t offset = 0;
    for (int i = 0; i < n && flat; i++) {
        out[i] = part(g, flat, offset, xs[i]);
        offset += xs[i]->numel;
    }
    return g->status;
}

/* The open allreduce_mean node grad may join: the graph's newest node is
 * one of its parts, it was made with the same options, after grad. */
static df_node *open_flat(df_graph *g, const df_node *grad, const df_allreduce_opts *opts)
{
    if (g->n_nodes == 0) return NULL;
    df_node *last = g->nodes[g->n_nodes - 1];
    if (last->op != &df_op_allreduce_part) return NULL;
    df_node *flat = last->in[0];
    if (flat->op != &df_op_allreduce_mean) return NULL;
    const ar_state *a = DF_ATTRS(flat, allreduce_mean_attrs)->state;
    if (!a->open || grad->id >= flat->id ||
        a->opts.comm != opts->comm || a->opts.timeout != opts->timeout)
        return NULL;
    return flat;
}

/* Appends grad to flat's inputs; returns grad's offset in the flat buffer, -1 on error. */
static int64_t append(df_graph *g, df_node *flat, df_node *grad)
{
    ar_state *a = DF_ATTRS(flat, allreduce_mean_attrs)->state;
    if (grad->dtype != DF_F32) {
        df_op_error(flat, DF_ERR_DTYPE, "input %d: expected f32, got %s", flat->n_in, df_dtype_name(grad->dtype));
        return -1;
    }
    if (flat->n_in == a->cap_in) {
        int cap = 2 * a->cap_in;
        df_node **grown = df_graph_alloc(g, (size_t)cap * sizeof *grown);
        if (!grown) {
            df_graph_fail(g, DF_ERR_NOMEM, "allreduce_mean: out of memory");
            return -1;
        }
        memcpy(grown, flat->in, (size_t)flat->n_in * sizeof *grown);
        flat->in = grown;
        a->cap_in = cap;
    }
    int64_t offset = flat->numel;
    flat->in[flat->n_in++] = grad;
    flat->shape[0] = flat->numel = offset + grad->numel;
    return offset;
}

df_node *df_allreduce_gradient(df_graph *g, df_node *grad, void *user)
{
    const df_allreduce_opts *opts = user;
    if (!g) {
        df_error(DF_ERR_ARG, "df_allreduce_gradient: null graph");
        return NULL;
    }
    if (g->status != DF_OK) return NULL;
    if (!grad) {
        df_graph_fail(g, DF_ERR_ARG, "df_allreduce_gradient: null gradient");
        return NULL;
    }
    if (!check_opts(g, opts)) return NULL;
    df_node *flat = open_flat(g, grad, opts);
    if (!flat) return (flat = make_flat(g, opts, 1, &grad, true)) ? part(g, flat, 0, grad) : NULL;
    int64_t offset = append(g, flat, grad);
    return offset < 0 ? NULL : part(g, flat, offset, grad);
}
#else
typedef int df_allreduce_mean_needs_mpi;  /* ISO C: a translation unit declares something */
#endif
