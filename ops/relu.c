/* relu.c — elementwise relu. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(relu_forward, x > 0 ? x : 0.0f)

static df_status relu_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_mul(g, dy, df_step(g, n->in[0]));
    return g->status;
}

static df_node *relu_build(df_graph *g, df_node **in) { return df_relu(g, in[0]); }

static const df_gradcheck_case relu_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 7)}, relu_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 2, 3, 2)}, relu_build, 0, 0},
    {0},
};

const df_op_def df_op_relu = {
    .name = "relu", .infer = df_infer_unary, .forward = relu_forward,
    .backward = relu_backward, .gradcheck = relu_cases,
    .elementwise = DF_EW_RELU,
};

df_node *df_relu(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_relu, 1, &x, NULL, 0, NULL, 0, NULL);
}
