/* assign_at.c — writes a slab of a variable at a position given at run time:
 * v[..., pos : pos + m, ...] = value along one axis, in place (a KV cache's
 * write of one step's keys, or of a whole prompt's). A side effect like
 * assign: the node's value is the variable after the write, so nodes that
 * read the written variable through it run after it. Inputs: value (v's
 * shape with m <= v's size at axis), pos (an i32 with one element). */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { df_variable *var; int32_t axis; uint32_t unused; } assign_at_attrs;
DF_ATTRS_END

static df_status assign_at_infer(df_node *n)
{
    assign_at_attrs *a = DF_ATTRS(n, assign_at_attrs);
    df_variable *v = a->var;
    const df_node *value = n->in[0], *pos = n->in[1];
    char sv[64], sx[64];
    if (a->axis < 0) a->axis += v->ndim;
    if (a->axis < 0 || a->axis >= v->ndim)
        return df_op_error(n, DF_ERR_ARG, "axis out of range for variable '%s' of rank %d", v->name, v->ndim);
    if (value->dtype != v->dtype)
        return df_op_error(n, DF_ERR_DTYPE, "variable '%s' is %s, value is %s", v->name, df_dtype_name(v->dtype),
                           df_dtype_name(value->dtype));
    bool fits = value->ndim == v->ndim;
    for (int d = 0; fits && d < v->ndim; d++)
        fits = d == a->axis ? value->shape[d] <= v->shape[d] : value->shape[d] == v->shape[d];
    if (!fits)
        return df_op_error(n, DF_ERR_SHAPE, "value %s must be variable '%s''s shape %s, at most as long at axis %d",
                           df_node_shape_str(value, sx, sizeof sx), v->name,
                           df_shape_str(v->ndim, v->shape, sv, sizeof sv), (int)a->axis);
    if (pos->dtype != DF_I32 || pos->numel != 1)
        return df_op_error(n, DF_ERR_DTYPE, "pos must be an i32 with one element, got %s %s",
                           df_dtype_name(pos->dtype), df_node_shape_str(pos, sx, sizeof sx));
    n->dtype = v->dtype;
    n->ndim = v->ndim;
    memcpy(n->shape, v->shape, sizeof n->shape);
    n->data = v->data;
    return DF_OK;
}

// value (v's shape, m at axis), pos () -> variable storage with value at pos .. pos + m - 1
static df_status assign_at_forward(df_node *n)
{
    const assign_at_attrs *a = DF_ATTRS(n, assign_at_attrs);
    int64_t len = n->shape[a->axis], m = n->in[0]->shape[a->axis], inner = 1, outer = 1;
    int64_t pos = DF_I32P(n->in[1])[0];
    if (pos < 0 || pos + m > len)
        return df_op_error(n, DF_ERR_RANGE, "position %lld of %lld rows outside [0, %lld) of variable '%s'",
                           (long long)pos, (long long)m, (long long)len, a->var->name);
    for (int d = a->axis + 1; d < n->ndim; d++) inner *= n->shape[d];
    for (int d = 0; d < a->axis; d++) outer *= n->shape[d];
    size_t es = df_dtype_size(n->dtype), row = (size_t)inner * es;
    char *dst = n->data;
    const char *src = n->in[0]->data;
    for (int64_t o = 0; o < outer; o++)
        memcpy(dst + (size_t)(o * len + pos) * row, src + (size_t)(o * m) * row, (size_t)m * row);
    return DF_OK;
}

/* A copy of the slab: the value read and written into the variable (the
 * rest of the variable is not touched), pos read. */
static void assign_at_cost(const df_node *n, df_op_cost *out)
{
    const df_node *value = n->in[0], *pos = n->in[1];
    double es = (double)df_dtype_size(n->dtype);
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * es * (double)value->numel + 4.0 * (double)pos->numel};
}

const df_op_def df_op_assign_at = {
    .name = "assign_at", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = assign_at_infer, .forward = assign_at_forward, .attrs_size = sizeof(assign_at_attrs),
    .min_inputs = 2, .max_inputs = 2, .attrs_kind = DF_ATTRS_VARIABLE,
    .no_gradcheck = "no gradient: writes a variable (tests/test_chargpt.c, suite assign_at)",
    .cost = assign_at_cost,
};

df_node *df_assign_at(df_graph *g, df_variable *v, df_node *value, df_node *pos, int axis)
{
    df_node *in[2] = {value, pos};
    return df_variable_update_make(g, &df_op_assign_at, 2, in, &(assign_at_attrs){.var = v, .axis = axis});
}
