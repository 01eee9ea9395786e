/* reshape.c — same elements, new shape; a view (no copy, no kernel). */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t shape[DF_MAX_DIMS];   /* target; one dimension may be -1 (inferred) */
    int32_t ndim;
    uint32_t ones_mask;           /* like form: input 1's shape with these axes set to 1 */
} reshape_attrs;
DF_ATTRS_END

/* Target of the shape-following form (gradients with dynamic shapes):
 * input 1's shape with the axes in ones_mask set to 1. */
static int like_target(df_node *n)
{
    const df_node *like = n->in[1];
    unsigned ones = DF_ATTRS(n, reshape_attrs)->ones_mask;
    for (int d = 0; d < like->ndim; d++) n->shape[d] = (ones >> d & 1) ? 1 : like->shape[d];
    return like->ndim;
}

static df_status reshape_infer(df_node *n)
{
    const df_node *x = n->in[0];
    if (n->n_in == 2) {
        char sx[64], s_[64];
        n->ndim = like_target(n);
        n->dtype = x->dtype;
        if (df_shape_numel(n->ndim, n->shape) == x->numel) return DF_OK;
        return df_op_error(n, DF_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                           df_node_shape_str(x, sx, sizeof sx), (long long)x->numel,
                           df_shape_str(n->ndim, n->shape, s_, sizeof s_));
    }
    const reshape_attrs *a = DF_ATTRS(n, reshape_attrs);
    int nd = a->ndim, infer_at = -1;
    int64_t known = 1;
    char sx[64], s_[64];
    if (nd < 0 || nd > DF_MAX_DIMS)            /* the constructor checks it; a saved graph may not */
        return df_op_error(n, DF_ERR_SHAPE, "target rank %d not in 0..%d", nd, DF_MAX_DIMS);
    for (int d = 0; d < nd; d++) {
        n->shape[d] = a->shape[d];
        if (n->shape[d] == -1 && infer_at < 0) infer_at = d;
        else if (n->shape[d] < 0)
            return df_op_error(n, DF_ERR_SHAPE, "bad dimension %lld in target shape", (long long)n->shape[d]);
        else if (__builtin_mul_overflow(known, n->shape[d], &known))
            return df_op_error(n, DF_ERR_SHAPE, "target shape too large");
    }
    n->ndim = nd;
    n->dtype = x->dtype;
    if (infer_at >= 0) {
        if (known == 0 || x->numel % known)
            return df_op_error(n, DF_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                               df_node_shape_str(x, sx, sizeof sx), (long long)x->numel,
                               df_shape_str(nd, n->shape, s_, sizeof s_));
        n->shape[infer_at] = x->numel / known;
    }
    if (df_shape_numel(nd, n->shape) != x->numel)
        return df_op_error(n, DF_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                           df_node_shape_str(x, sx, sizeof sx), (long long)x->numel,
                           df_shape_str(nd, n->shape, s_, sizeof s_));
    return DF_OK;
}

static df_status reshape_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    (void)n;
    dx[0] = df_reshape_like(g, dy, n->in[0]);
    return g->status;
}

static df_node *reshape_flat(df_graph *g, df_node **in) { return df_reshape(g, in[0], 2, (int64_t[]){-1, 2}); }

static const df_gradcheck_case reshape_cases[] = {
    {"(2,3,2) -> (-1,2)", 1, {DF_GC_F32(2, 3, 2)}, reshape_flat, 0, 0},
    {0},
};

const df_op_def df_op_reshape = {
    .name = "reshape", .flags = DF_OP_VIEW, .infer = reshape_infer,
    .backward = reshape_backward, .gradcheck = reshape_cases, .attrs_size = sizeof(reshape_attrs),
};

df_node *df_reshape(df_graph *g, df_node *x, int ndim, const int64_t *shape)
{
    if (!df_check_shape_arg(g, "reshape", ndim, shape)) return NULL;
    reshape_attrs a = {.ndim = ndim};
    for (int d = 0; d < ndim; d++) a.shape[d] = shape[d];
    return df_node_new(g, &df_op_reshape, 1, &x, &a);
}

df_node *df_reshape_to_like(df_graph *g, df_node *x, df_node *like, unsigned ones_mask)
{
    return df_like_make(g, &df_op_reshape, x, like, &(reshape_attrs){.ones_mask = ones_mask});
}
