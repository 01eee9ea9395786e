/* sum_to.c — sum x down to a shape it broadcasts from: the adjoint of
 * broadcast_to, used for gradients of broadcasting ops. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t shape[DF_MAX_DIMS];   /* target (unused in the like form: input 1's shape) */
    int64_t ndim;
} sum_to_attrs;
DF_ATTRS_END

/* Axes of x (bit mask) that the target shape reduces. */
static unsigned reduced_mask(const df_node *n)
{
    const df_node *x = n->in[0];
    int lead = x->ndim - n->ndim;
    unsigned mask = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (n->shape[d - lead] == 1 && x->shape[d] != 1)) mask |= 1u << d;
    return mask;
}

static df_status sum_to_infer(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    const sum_to_attrs *a = DF_ATTRS(n, sum_to_attrs);
    int nd = df_target_shape(n, (int)a->ndim, a->shape, n->shape);
    n->ndim = nd;
    n->dtype = DF_F32;
    char sx[64], s_[64];
    bool ok = nd >= 0 && nd <= x->ndim;
    for (int d = 0; ok && d < nd; d++) {
        int64_t td = n->shape[d], xd = x->shape[d + x->ndim - nd];
        ok = td == xd || td == 1;
    }
    if (!ok)
        return df_op_error(n, DF_ERR_SHAPE, "cannot sum %s down to %s", df_node_shape_str(x, sx, sizeof sx),
                           df_shape_str(nd, n->shape, s_, sizeof s_));
    unsigned mask = reduced_mask(n);
    int runs = 0;
    for (int d = 0; d < x->ndim; d++)
        if ((mask >> d & 1) && (d == 0 || !(mask >> (d - 1) & 1))) runs++;
    n->aux_bytes = runs > 1 ? (size_t)x->numel * sizeof(float) : 0;
    return DF_OK;
}

// x (...) -> y (shape), summing the broadcast axes
static df_status sum_to_forward(df_node *n)
{
    const df_node *x = n->in[0];
    df_reduce_axes(DF_F32P(x), x->ndim, x->shape, reduced_mask(n), 1.0f, DF_F32P(n), n->aux);
    return DF_OK;
}

static df_status sum_to_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    df_node *x = n->in[0];
    dx[0] = x->dyn ? df_broadcast_like(g, dy, x, false) : df_broadcast_to(g, dy, x->ndim, x->shape);
    return g->status;
}

static df_node *sum_to_row(df_graph *g, df_node **in) { return df_sum_to(g, in[0], 1, (int64_t[]){3}); }
static df_node *sum_to_mixed(df_graph *g, df_node **in) { return df_sum_to(g, in[0], 3, (int64_t[]){2, 1, 2}); }

static const df_gradcheck_case sum_to_cases[] = {
    {"(2,3) -> (3)", 1, {DF_GC_F32(2, 3)}, sum_to_row, 0, 0},
    {"(2,3,2) -> (2,1,2)", 1, {DF_GC_F32(2, 3, 2)}, sum_to_mixed, 0, 0},
    {0},
};

/* One add per input element. */
static void sum_to_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_sum_to = {
    .name = "sum_to", .infer = sum_to_infer, .forward = sum_to_forward,
    .backward = sum_to_backward, .gradcheck = sum_to_cases, .attrs_size = sizeof(sum_to_attrs),
    .cost = sum_to_cost,
    .min_inputs = 1, .max_inputs = 2,
};

df_node *df_sum_to(df_graph *g, df_node *x, int ndim, const int64_t *shape)
{
    if (!df_check_shape_arg(g, "sum_to", ndim, shape)) return NULL;
    sum_to_attrs a = {.ndim = ndim};
    for (int d = 0; d < ndim; d++) a.shape[d] = shape[d];
    return df_node_new(g, &df_op_sum_to, 1, &x, &a);
}

df_node *df_sum_to_like(df_graph *g, df_node *x, df_node *like)
{
    return df_like_make(g, &df_op_sum_to, x, like, NULL);
}
