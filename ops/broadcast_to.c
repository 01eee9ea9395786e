/* broadcast_to.c — repeat x along axes of size 1 (or missing leading axes)
 * to a target shape; or, in the form gradients use with dynamic shapes, to
 * the shape of a second input, optionally dividing by the repeat count (the
 * gradient of a mean over a dynamic axis: the count is known only at run
 * time). */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t shape[DF_MAX_DIMS];   /* target (the like form: input 1's shape) */
    int32_t ndim;
    int32_t average;              /* like form only: 1 = divide by the repeat count */
} broadcast_to_attrs;
DF_ATTRS_END

static df_status broadcast_to_infer(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    const broadcast_to_attrs *a = DF_ATTRS(n, broadcast_to_attrs);
    int nd = df_target_shape(n, a->ndim, a->shape, n->shape);
    char sx[64], st_[64];
    if (nd < x->ndim || nd > DF_MAX_DIMS)
        return df_op_error(n, DF_ERR_SHAPE, "cannot broadcast %s to rank %d", df_node_shape_str(x, sx, sizeof sx), nd);
    for (int d = 0; d < x->ndim; d++) {
        int64_t xd = x->shape[d], td = n->shape[d + nd - x->ndim];
        if (xd != td && xd != 1)
            return df_op_error(n, DF_ERR_SHAPE, "cannot broadcast %s to %s", df_node_shape_str(x, sx, sizeof sx),
                               df_shape_str(nd, n->shape, st_, sizeof st_));
    }
    n->ndim = nd;
    n->dtype = DF_F32;
    return DF_OK;
}

// x (broadcastable to shape) -> y (shape)
static df_status broadcast_to_forward(df_node *n)
{
    const float *X = DF_F32P(n->in[0]);
    float *Y = DF_F32P(n);
    int64_t sx[DF_MAX_DIMS], N = n->numel;
    int nd = n->ndim;
    df_broadcast_strides(n->in[0], nd, n->shape, sx);
    int64_t inner = nd ? n->shape[nd - 1] : 1, rows = inner ? N / inner : 0, step = nd ? sx[nd - 1] : 0;
    /* the same float arithmetic as mean's 1/count (ops/mean.c) */
    float count = n->in[0]->numel ? (float)N / (float)n->in[0]->numel : 0.0f;
    bool average = DF_ATTRS(n, broadcast_to_attrs)->average != 0;
    float scale = average && count ? 1.0f / count : 1.0f;
    DF_PAR_FOR(N > DF_PAR_MIN,
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int d = nd - 2; d >= 0; d--) {
            off += rem % n->shape[d] * sx[d];
            rem /= n->shape[d];
        }
        if (average)
            for (int64_t j = 0; j < inner; j++) Y[r * inner + j] = X[off + j * step] * scale;
        else
            for (int64_t j = 0; j < inner; j++) Y[r * inner + j] = X[off + j * step];
    });
    return DF_OK;
}

static df_status broadcast_to_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    if (DF_ATTRS(n, broadcast_to_attrs)->average)      /* only made by gradients of means over dynamic axes */
        return df_op_error(n, DF_ERR_ARG, "the gradient of a mean over a dynamic axis is not differentiable again");
    dx[0] = df_unbroadcast(g, dy, n->in[0]);
    return g->status;
}

static df_node *bcast_rows(df_graph *g, df_node **in) { return df_broadcast_to(g, in[0], 2, (int64_t[]){3, 4}); }
static df_node *bcast_mid(df_graph *g, df_node **in) { return df_broadcast_to(g, in[0], 3, (int64_t[]){2, 3, 2}); }

static const df_gradcheck_case broadcast_to_cases[] = {
    {"(4) -> (3,4)", 1, {DF_GC_F32(4)}, bcast_rows, 0, 0},
    {"(2,1,2) -> (2,3,2)", 1, {DF_GC_F32(2, 1, 2)}, bcast_mid, 0, 0},
    {0},
};

/* A copy: no arithmetic. */
static void broadcast_to_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_broadcast_to = {
    .name = "broadcast_to", .infer = broadcast_to_infer, .forward = broadcast_to_forward,
    .backward = broadcast_to_backward, .gradcheck = broadcast_to_cases,
    .attrs_size = sizeof(broadcast_to_attrs),
    .cost = broadcast_to_cost,
    .min_inputs = 1, .max_inputs = 2,
};

df_node *df_broadcast_to(df_graph *g, df_node *x, int ndim, const int64_t *shape)
{
    if (!df_check_shape_arg(g, "broadcast_to", ndim, shape)) return NULL;
    broadcast_to_attrs a = {.ndim = ndim};
    for (int d = 0; d < ndim; d++) a.shape[d] = shape[d];
    return df_node_new(g, &df_op_broadcast_to, 1, &x, &a);
}

df_node *df_broadcast_like(df_graph *g, df_node *x, df_node *like, bool average)
{
    return df_like_make(g, &df_op_broadcast_to, x, like, &(broadcast_to_attrs){.average = average});
}
