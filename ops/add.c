/* add.c — elementwise add with NumPy broadcasting. */
#include "common.h"

// a (broadcastable), b (broadcastable) -> y (broadcast shape)
DF_BINARY_KERNEL(add_forward, a + b)

static df_status add_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = need[0] ? df_unbroadcast(g, dy, n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, dy, n->in[1]) : NULL;
    return g->status;
}

static df_node *add_build(df_graph *g, df_node **in) { return df_add(g, in[0], in[1]); }

static const df_gradcheck_case add_cases[] = {
    {"same shape", 2, {DF_GC_F32(2, 3), DF_GC_F32(2, 3)}, add_build, 0, 0},
    {"broadcast row", 2, {DF_GC_F32(2, 3), DF_GC_F32(3)}, add_build, 0, 0},
    {"broadcast column and scalar", 2, {DF_GC_F32(2, 1, 3), DF_GC_F32(4, 1)}, add_build, 0, 0},
    {"scalar operand", 2, {DF_GC_SCALAR, DF_GC_F32(2, 2)}, add_build, 0, 0},
    {0},
};

const df_op_def df_op_add = {
    .name = "add", .infer = df_infer_broadcast, .forward = add_forward,
    .backward = add_backward, .gradcheck = add_cases,
    .elementwise = DF_EW_ADD,
};

df_node *df_add(df_graph *g, df_node *a, df_node *b)
{
    df_node *in[2] = {a, b};
    return df_node_make(g, &df_op_add, 2, in, NULL, 0, NULL, 0, NULL);
}
