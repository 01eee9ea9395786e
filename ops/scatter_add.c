/* scatter_add.c — the adjoint of gather: x f32 (..., E), indices i32 with
 * indices.shape == x.shape[:-1] -> y (rows, E), zeros, then
 * y[indices[i]] += x[i] for every position i in order. Deterministic for
 * any thread count: threads split the E columns, and each walks all
 * positions in order over its own columns (no atomics, no shared sums). An
 * index outside [0, rows) fails the run with DF_ERR_RANGE.
 * The gradient of x is gather(dy, indices); indices get none. */
#include <omp.h>
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { int64_t rows; } scatter_add_attrs;
DF_ATTRS_END

static df_status scatter_add_infer(df_node *n)
{
    const df_node *x = n->in[0], *indices = n->in[1];
    char sx[64], si[64];
    if (x->dtype != DF_F32 || indices->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "x must be f32 and indices i32, got %s x %s and %s indices %s",
                           df_dtype_name(x->dtype), df_node_shape_str(x, sx, sizeof sx),
                           df_dtype_name(indices->dtype), df_node_shape_str(indices, si, sizeof si));
    if (x->ndim < 1 || !df_shape_equal(x->ndim - 1, x->shape, indices->ndim, indices->shape))
        return df_op_error(n, DF_ERR_SHAPE, "x %s must be indices.shape + (E), indices are %s",
                           df_node_shape_str(x, sx, sizeof sx), df_node_shape_str(indices, si, sizeof si));
    int64_t rows = DF_ATTRS(n, scatter_add_attrs)->rows;
    if (rows < 0)
        return df_op_error(n, DF_ERR_ARG, "rows must be >= 0, got %lld (x %s)", (long long)rows,
                           df_node_shape_str(x, sx, sizeof sx));
    n->dtype = DF_F32;
    n->ndim = 2;
    n->shape[0] = rows;
    n->shape[1] = x->shape[x->ndim - 1];
    return DF_OK;
}

/* y[idx[i], c0:c1] += x[i, c0:c1] for i = 0..count-1, in order. */
static void add_rows_in_columns(const float *X, const int32_t *idx, int64_t count, int64_t E, int64_t c0,
                                int64_t c1, float *Y)
{
    for (int64_t i = 0; i < count; i++) {
        const float *src = X + i * E;
        float *dst = Y + (int64_t)idx[i] * E;
        for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
}

// x (..., E), indices (...) -> y (rows, E)
static df_status scatter_add_forward(df_node *n)
{
    const df_node *x = n->in[0], *indices = n->in[1];
    const int32_t *idx = DF_I32P(indices);
    int64_t count = indices->numel, E = n->shape[1];
    df_status st = df_check_indices(idx, count, n->shape[0]);
    if (st != DF_OK) return st;
    float *Y = DF_F32P(n);
    memset(Y, 0, (size_t)n->numel * sizeof *Y);
    int64_t N = x->numel, chunks = N > DF_PAR_MIN ? omp_get_max_threads() : 1;
    if (chunks > E) chunks = E;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t k = 0; k < chunks; k++)
        add_rows_in_columns(DF_F32P(x), idx, count, E, E * k / chunks, E * (k + 1) / chunks, Y);
    return DF_OK;
}

static df_status scatter_add_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    if (need[0]) dx[0] = df_gather(g, dy, n->in[1]);
    return g->status;
}

static df_node *scatter_5(df_graph *g, df_node **in) { return df_scatter_add(g, in[0], in[1], 5); }
static df_node *scatter_3(df_graph *g, df_node **in) { return df_scatter_add(g, in[0], in[1], 3); }

static const df_gradcheck_case scatter_add_cases[] = {
    {"(6,3) into 5 rows, repeats", 2, {DF_GC_F32(6, 3), DF_GC_I32(5, 6)}, scatter_5, 0, 0},
    {"(2,3,2) into 3 rows", 2, {DF_GC_F32(2, 3, 2), DF_GC_I32(3, 2, 3)}, scatter_3, 0, 0},
    {0},
};

/* One add per element of x; x and ids read, the output written. */
static void scatter_add_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_scatter_add = {
    .name = "scatter_add", .infer = scatter_add_infer, .forward = scatter_add_forward,
    .backward = scatter_add_backward, .gradcheck = scatter_add_cases, .attrs_size = sizeof(scatter_add_attrs),
    .cost = scatter_add_cost,
};

df_node *df_scatter_add(df_graph *g, df_node *x, df_node *indices, int64_t rows)
{
    df_node *in[2] = {x, indices};
    return df_node_new(g, &df_op_scatter_add, 2, in, &(scatter_add_attrs){.rows = rows});
}
