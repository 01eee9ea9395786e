/* sum.c — sum over axes (all axes when none are given). */
#include "common.h"

// x (...) -> y (x's shape without the reduced axes, or with 1s if keepdims)
static df_status sum_forward(df_node *n)
{
    const df_node *x = n->in[0];
    df_reduce_axes(DF_F32P(x), x->ndim, x->shape, DF_ATTRS(n, df_reduce_attrs)->axes, 1.0f, DF_F32P(n), n->aux);
    return DF_OK;
}

static df_status sum_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    df_node *x = n->in[0];
    if (x->dyn) {               /* shapes that follow x at run time */
        dx[0] = df_broadcast_like(g, df_reshape_to_like(g, dy, x, DF_ATTRS(n, df_reduce_attrs)->axes), x, false);
        return g->status;
    }
    int64_t keep[DF_MAX_DIMS];
    df_reduce_keep_shape(n, keep);
    dx[0] = df_broadcast_to(g, df_reshape(g, dy, x->ndim, keep), x->ndim, x->shape);
    return g->status;
}

static df_node *sum_all(df_graph *g, df_node **in) { return df_sum(g, in[0], NULL, 0, false); }
static df_node *sum_axis1(df_graph *g, df_node **in) { return df_sum(g, in[0], (int[]){1}, 1, false); }
static df_node *sum_axes02_keep(df_graph *g, df_node **in) { return df_sum(g, in[0], (int[]){0, -1}, 2, true); }

static const df_gradcheck_case sum_cases[] = {
    {"all axes", 1, {DF_GC_F32(2, 3)}, sum_all, 0, 0},
    {"middle axis", 1, {DF_GC_F32(2, 3, 2)}, sum_axis1, 0, 0},
    {"axes 0 and -1, keepdims", 1, {DF_GC_F32(2, 3, 2)}, sum_axes02_keep, 0, 0},
    {0},
};

/* One add per input element. */
static void sum_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_sum = {
    .name = "sum", .infer = df_infer_reduce, .forward = sum_forward,
    .backward = sum_backward, .gradcheck = sum_cases, .attrs_size = sizeof(df_reduce_attrs),
    .cost = sum_cost,
};

df_node *df_sum(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims)
{
    return df_reduce_make(g, &df_op_sum, x, axes, n_axes, keepdims);
}
