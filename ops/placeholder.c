/* placeholder.c — a graph input, fed by the caller on each run. */
#include "common.h"

static df_status placeholder_infer(df_node *n)
{
    n->dtype = (df_dtype)n->ia[0];
    n->ndim = (int)n->ia[1];
    if (n->dtype != DF_F32 && n->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "unknown dtype %d", (int)n->dtype);
    if (n->ndim < 0 || n->ndim > DF_MAX_DIMS)
        return df_op_error(n, DF_ERR_SHAPE, "rank %d not in 0..%d", n->ndim, DF_MAX_DIMS);
    const int64_t *shape = n->pa;
    for (int d = 0; d < n->ndim; d++) {
        if (shape[d] < 0 && shape[d] != DF_DYNAMIC)
            return df_op_error(n, DF_ERR_SHAPE, "negative dimension %lld (DF_DYNAMIC, -1, leaves it open)",
                               (long long)shape[d]);
        /* a dynamic dimension is traced at two sizes (graph/dynamic.c) */
        n->shape[d] = shape[d] == DF_DYNAMIC ? DF_TRACE_DIM : shape[d];
        n->alt_shape[d] = shape[d] == DF_DYNAMIC ? DF_TRACE_DIM_ALT : shape[d];
        if (shape[d] == DF_DYNAMIC) n->dyn |= 1u << d;
    }
    n->pa = NULL;
    return DF_OK;
}

const df_op_def df_op_placeholder = {
    .name = "placeholder", .flags = DF_OP_INPUT, .infer = placeholder_infer,
    .no_gradcheck = "leaf: fed by the caller, no inputs to differentiate",
};

df_node *df_placeholder(df_graph *g, df_dtype dtype, int ndim, const int64_t *shape, const char *name)
{
    if (ndim > 0 && !shape) {
        if (g) df_graph_fail(g, DF_ERR_ARG, "placeholder: null shape");
        return NULL;
    }
    int64_t ia[2] = {dtype, ndim};
    return df_node_set_name(df_node_make(g, &df_op_placeholder, 0, NULL, ia, 2, NULL, 0, (void *)shape), name);
}
