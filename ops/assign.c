/* assign.c — writes a value into a variable (a side effect: it runs after
 * every node that does not depend on it). */
#include <string.h>
#include "common.h"

df_status df_infer_variable_update(df_node *n)
{
    df_variable *v = DF_ATTRS(n, df_update_attrs)->var;
    const df_node *value = n->in[0];
    char sv[64], sx[64];
    if (value->dtype != v->dtype)
        return df_op_error(n, DF_ERR_DTYPE, "variable '%s' is %s, value is %s", v->name,
                           df_dtype_name(v->dtype), df_dtype_name(value->dtype));
    if (!df_shape_equal(value->ndim, value->shape, v->ndim, v->shape))
        return df_op_error(n, DF_ERR_SHAPE, "variable '%s' has shape %s, value has %s", v->name,
                           df_shape_str(v->ndim, v->shape, sv, sizeof sv), df_node_shape_str(value, sx, sizeof sx));
    n->dtype = v->dtype;
    n->ndim = v->ndim;
    memcpy(n->shape, v->shape, sizeof n->shape);
    n->data = v->data;            /* the node's value is the variable after the update */
    return DF_OK;
}

/* An optimizer's update: in[0] the gradient (checked as above), in[1] the
 * learning rate (one f32), in[2] .. in[first_slot - 1] step counters (one
 * i32 each), in[first_slot] .. the variable's slots (its shape and dtype).
 * The forward reads them by those sizes, so a graph that breaks them (a
 * saved file that says so) is refused here, before any run. */
df_status df_infer_optimizer_update(df_node *n, int first_slot)
{
    df_status st = df_infer_variable_update(n);
    if (st != DF_OK) return st;
    const df_variable *v = DF_ATTRS(n, df_update_attrs)->var;
    char sv[64], sx[64];
    for (int k = 1; k < n->n_in; k++) {
        const df_node *x = n->in[k];
        if (k < first_slot) {
            const df_dtype want = k == 1 ? DF_F32 : DF_I32;
            if (x->dtype != want || df_shape_numel(x->ndim, x->shape) != 1)
                return df_op_error(n, DF_ERR_SHAPE, "input %d of the update of '%s' must be one %s, not %s %s", k,
                                   v->name, df_dtype_name(want), df_dtype_name(x->dtype),
                                   df_node_shape_str(x, sx, sizeof sx));
        } else if (x->dtype != v->dtype || !df_shape_equal(x->ndim, x->shape, v->ndim, v->shape)) {
            return df_op_error(n, DF_ERR_SHAPE, "slot input %d of the update of '%s' is %s %s, the variable %s %s", k,
                               v->name, df_dtype_name(x->dtype), df_node_shape_str(x, sx, sizeof sx),
                               df_dtype_name(v->dtype), df_shape_str(v->ndim, v->shape, sv, sizeof sv));
        }
    }
    return DF_OK;
}

df_node *df_variable_update_make(df_graph *g, const df_op_def *op, int n_in, df_node *const *in,
                                 const void *attrs)
{
    if (g && !((const df_update_attrs *)attrs)->var) {
        df_graph_fail(g, DF_ERR_ARG, "op '%s': null variable", op->name);
        return NULL;
    }
    return df_node_new(g, op, n_in, in, attrs);
}

// value (variable's shape) -> variable storage
static df_status assign_forward(df_node *n)
{
    if (n->data != n->in[0]->data)
        memcpy(n->data, n->in[0]->data, (size_t)n->numel * df_dtype_size(n->dtype));
    return DF_OK;
}

/* A copy: the value read, the variable written. */
static void assign_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)df_dtype_size(n->dtype) * (double)n->numel};
}

const df_op_def df_op_assign = {
    .name = "assign", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = df_infer_variable_update, .forward = assign_forward, .attrs_size = sizeof(df_update_attrs),
    .no_gradcheck = "no gradient: writes a variable (tests/test_graph.c)",
    .min_inputs = 1, .max_inputs = 1, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = assign_cost,
};

df_node *df_assign(df_graph *g, df_variable *v, df_node *value)
{
    return df_variable_update_make(g, &df_op_assign, 1, &value, &(df_update_attrs){.var = v});
}
