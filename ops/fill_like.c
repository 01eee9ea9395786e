/* fill_like.c — a value in a shape that follows another node's dimensions: the zero
 * initial state (B,H) of a recurrent layer on x (B,T,E) with an open batch
 * dimension. Input 0 is read only for its shape. */
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t dims[DF_MAX_DIMS];    /* DF_DYNAMIC: like's dimension at that axis */
    int32_t ndim;
    df_dtype dtype;
    float value;
    uint32_t unused;              /* 0: no padding */
} fill_like_attrs;
DF_ATTRS_END

static df_status fill_like_infer(df_node *n)
{
    const df_node *like = n->in[0];
    const fill_like_attrs *a = DF_ATTRS(n, fill_like_attrs);
    int nd = a->ndim;
    if (nd < 0 || nd > DF_MAX_DIMS || (a->dtype != DF_F32 && a->dtype != DF_I32))   /* e.g. from a saved graph */
        return df_op_error(n, DF_ERR_ARG, "rank %d, dtype %d", nd, (int)a->dtype);
    for (int d = 0; d < nd; d++) {
        if (a->dims[d] != DF_DYNAMIC) n->shape[d] = a->dims[d];
        else if (d < like->ndim) n->shape[d] = like->shape[d];
        else {
            char s[64];
            return df_op_error(n, DF_ERR_SHAPE, "dimension %d follows the input, which has shape %s", d,
                               df_node_shape_str(like, s, sizeof s));
        }
    }
    n->ndim = nd;
    n->dtype = a->dtype;
    return DF_OK;
}

// like (any; read for its shape only) -> y (ndim dims, each fixed or like's)
static df_status fill_like_forward(df_node *n)
{
    float value = DF_ATTRS(n, fill_like_attrs)->value;
    if (n->dtype == DF_I32)
        for (int64_t i = 0; i < n->numel; i++) DF_I32P(n)[i] = (int32_t)value;
    else
        for (int64_t i = 0; i < n->numel; i++) DF_F32P(n)[i] = value;
    return DF_OK;
}

/* Writes y; its input is read for its shape only. No bench definition: on a
 * graph without an open dimension df_fill_like folds to a constant. */
static void fill_like_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 4.0 * (double)n->numel};
}

const df_op_def df_op_fill_like = {
    .name = "fill_like", .infer = fill_like_infer, .forward = fill_like_forward,
    .attrs_size = sizeof(fill_like_attrs),
    .no_gradcheck = "no gradient: its input is read for its shape only, so autodiff passes it none "
                    "(tests/test_layers.c)",
    .min_inputs = 1, .max_inputs = 1,
    .cost = fill_like_cost,
};

df_node *df_fill_like_dims(df_graph *g, df_node *like, float value, df_dtype dtype, int ndim,
                           const int64_t *dims)
{
    if (!g) {
        df_error(DF_ERR_ARG, "fill_like: null graph");
        return NULL;
    }
    if (g->status != DF_OK) return NULL;
    if (!like) {
        df_graph_fail(g, DF_ERR_ARG, "fill_like: null input");
        return NULL;
    }
    if (ndim < 0 || ndim > DF_MAX_DIMS || (ndim > 0 && !dims) || (dtype != DF_F32 && dtype != DF_I32)) {
        df_graph_fail(g, DF_ERR_ARG, "fill_like: rank %d (0..%d), dims %p, dtype %d", ndim, DF_MAX_DIMS,
                      (const void *)dims, (int)dtype);
        return NULL;
    }
    fill_like_attrs a = {.ndim = ndim, .dtype = dtype, .value = value};
    bool follows = false;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 && dims[d] != DF_DYNAMIC) {
            char s[64];
            df_graph_fail(g, DF_ERR_SHAPE, "fill_like: dims %s (each >= 0 or DF_DYNAMIC)", df_shape_str(ndim, dims, s, sizeof s));
            return NULL;
        }
        a.dims[d] = dims[d];
        follows |= dims[d] == DF_DYNAMIC && d < like->ndim && (like->dyn >> d & 1);
    }
    if (!follows && dtype == DF_F32) {   /* every size is known now: a constant, which the passes may fold */
        int64_t shape[DF_MAX_DIMS];
        bool known = true;
        for (int d = 0; d < ndim; d++) {
            known &= dims[d] != DF_DYNAMIC || d < like->ndim;   /* else fill_like_infer names the problem */
            shape[d] = dims[d] == DF_DYNAMIC && d < like->ndim ? like->shape[d] : dims[d];
        }
        if (known) return df_fill(g, value, ndim, shape);
    }
    df_node *n = df_node_new(g, &df_op_fill_like, 1, &like, &a);
    if (n) n->shape_only = 1u;
    return n;
}

df_node *df_fill_like(df_graph *g, df_node *like, float value)
{
    int64_t dims[DF_MAX_DIMS] = {DF_DYNAMIC, DF_DYNAMIC, DF_DYNAMIC, DF_DYNAMIC};
    return df_fill_like_dims(g, like, value, like ? like->dtype : DF_F32, like ? like->ndim : 0, dims);
}

df_node *df_zeros_like(df_graph *g, df_node *like) { return df_fill_like(g, like, 0.0f); }
