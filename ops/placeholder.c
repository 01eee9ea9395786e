/* placeholder.c — a graph input, fed by the caller on each run. */
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t shape[DF_MAX_DIMS];   /* DF_DYNAMIC: open */
    df_dtype dtype;
    int32_t ndim;
} placeholder_attrs;
DF_ATTRS_END

static df_status placeholder_infer(df_node *n)
{
    const placeholder_attrs *a = DF_ATTRS(n, placeholder_attrs);
    n->dtype = a->dtype;
    n->ndim = a->ndim;
    if (n->dtype != DF_F32 && n->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "unknown dtype %d", (int)n->dtype);
    if (n->ndim < 0 || n->ndim > DF_MAX_DIMS)
        return df_op_error(n, DF_ERR_SHAPE, "rank %d not in 0..%d", n->ndim, DF_MAX_DIMS);
    const int64_t *shape = a->shape;
    for (int d = 0; d < n->ndim; d++) {
        if (shape[d] < 0 && shape[d] != DF_DYNAMIC)
            return df_op_error(n, DF_ERR_SHAPE, "negative dimension %lld (DF_DYNAMIC, -1, leaves it open)",
                               (long long)shape[d]);
        /* a dynamic dimension is traced at two sizes (graph/dynamic.c) */
        n->shape[d] = shape[d] == DF_DYNAMIC ? DF_TRACE_DIM : shape[d];
        n->alt_shape[d] = shape[d] == DF_DYNAMIC ? DF_TRACE_DIM_ALT : shape[d];
        if (shape[d] == DF_DYNAMIC) n->dyn |= 1u << d;
    }
    return DF_OK;
}

const df_op_def df_op_placeholder = {
    .name = "placeholder", .flags = DF_OP_INPUT | DF_OP_LEAF, .infer = placeholder_infer,
    .attrs_size = sizeof(placeholder_attrs),
    .no_gradcheck = "leaf: fed by the caller, no inputs to differentiate",
    .min_inputs = 0, .max_inputs = 0,
};

df_node *df_placeholder(df_graph *g, df_dtype dtype, int ndim, const int64_t *shape, const char *name)
{
    if (ndim > 0 && !shape) {
        if (g) df_graph_fail(g, DF_ERR_ARG, "placeholder: null shape");
        return NULL;
    }
    placeholder_attrs a = {.dtype = dtype, .ndim = ndim};
    for (int d = 0; d < ndim && d < DF_MAX_DIMS; d++) a.shape[d] = shape[d];   /* a bad rank: infer names it */
    return df_node_set_name(df_node_new(g, &df_op_placeholder, 0, NULL, &a), name);
}
