/* constant.c — a value copied into graph-owned memory at build time. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
/* The caller's value, read once by infer (which copies it) and then cleared:
 * a built constant's attributes are zero and its value is its data. */
typedef struct { const df_tensor *value; } constant_attrs;
DF_ATTRS_END

static df_status constant_infer(df_node *n)
{
    constant_attrs *a = DF_ATTRS(n, constant_attrs);
    const df_tensor *t = a->value;
    if (t->dtype != DF_F32 && t->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "unknown dtype %d", (int)t->dtype);
    if (t->ndim < 0 || t->ndim > DF_MAX_DIMS)
        return df_op_error(n, DF_ERR_SHAPE, "rank %d not in 0..%d", t->ndim, DF_MAX_DIMS);
    n->dtype = t->dtype;
    n->ndim = t->ndim;
    memcpy(n->shape, t->shape, sizeof n->shape);
    int64_t numel = df_tensor_numel(t);
    size_t bytes = (size_t)numel * df_dtype_size(t->dtype);
    n->data = df_graph_alloc(n->graph, bytes ? bytes : 1);
    if (!n->data) return n->graph->status;
    if (bytes && !t->data) return df_op_error(n, DF_ERR_ARG, "null data");
    if (bytes) memcpy(n->data, t->data, bytes);
    a->value = NULL;
    return DF_OK;
}

const df_op_def df_op_constant = {
    .name = "constant", .flags = DF_OP_EXTERNAL | DF_OP_CONSTANT | DF_OP_LEAF, .infer = constant_infer,
    .attrs_size = sizeof(constant_attrs),
    .no_gradcheck = "leaf: no inputs to differentiate",
    .min_inputs = 0, .max_inputs = 0, .attrs_kind = DF_ATTRS_CONSTANT,
};

df_node *df_constant(df_graph *g, const df_tensor *value)
{
    if (!value) {
        if (g) df_graph_fail(g, DF_ERR_ARG, "df_constant: null tensor");
        return NULL;
    }
    return df_node_new(g, &df_op_constant, 0, NULL, &(constant_attrs){.value = value});
}

df_node *df_scalar(df_graph *g, float value)
{
    df_tensor t = df_tensor_make(DF_F32, &value, 0, NULL);
    return df_constant(g, &t);
}

df_node *df_fill(df_graph *g, float value, int ndim, const int64_t *shape)
{
    if (!df_check_shape_arg(g, "fill", ndim, shape) || g->status != DF_OK) return NULL;
    int64_t numel = df_shape_numel(ndim, shape);
    float *buf = df_malloc((size_t)(numel ? numel : 1) * sizeof *buf);
    if (!buf) {
        df_graph_fail(g, DF_ERR_NOMEM, "fill: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < numel; i++) buf[i] = value;
    df_tensor t = df_tensor_make(DF_F32, buf, ndim, shape);
    df_node *n = df_constant(g, &t);
    df_free(buf);
    return n;
}
