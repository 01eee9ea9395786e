/* variable.c — reads a variable: the node's data is the variable's storage. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { df_variable *var; } variable_attrs;
DF_ATTRS_END

static df_status variable_infer(df_node *n)
{
    df_variable *v = DF_ATTRS(n, variable_attrs)->var;
    n->dtype = v->dtype;
    n->ndim = v->ndim;
    memcpy(n->shape, v->shape, sizeof n->shape);
    n->data = v->data;
    n->name = v->name;
    return DF_OK;
}

/* NO_CSE: its value is the variable's, which changes between runs, not a
 * function of inputs and attributes (df_var already makes one read node per
 * variable). */
const df_op_def df_op_variable = {
    .name = "variable", .flags = DF_OP_EXTERNAL | DF_OP_NO_CSE | DF_OP_LEAF, .infer = variable_infer,
    .attrs_size = sizeof(variable_attrs),
    .no_gradcheck = "leaf: no inputs to differentiate",
    .min_inputs = 0, .max_inputs = 0, .attrs_kind = DF_ATTRS_VARIABLE,
};

df_node *df_var(df_graph *g, df_variable *v)
{
    if (!g) {
        df_error(DF_ERR_ARG, "df_var: null graph");
        return NULL;
    }
    if (!v) {
        df_graph_fail(g, DF_ERR_ARG, "df_var: null variable");
        return NULL;
    }
    /* One read node per variable per graph, so gradients w.r.t. a variable
     * collect every use of it. */
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == &df_op_variable && DF_ATTRS(g->nodes[i], variable_attrs)->var == v) return g->nodes[i];
    return df_node_new(g, &df_op_variable, 0, NULL, &(variable_attrs){.var = v});
}
