/* sigmoid.c — elementwise sigmoid. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(sigmoid_forward, 1.0f / (1.0f + expf(-x)))

static df_status sigmoid_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_mul(g, dy, df_mul(g, n, df_sub(g, df_scalar(g, 1.0f), n)));
    return g->status;
}

static df_node *sigmoid_build(df_graph *g, df_node **in) { return df_sigmoid(g, in[0]); }

static const df_gradcheck_case sigmoid_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(-3.0f, 3.0f, 7)}, sigmoid_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(-3.0f, 3.0f, 2, 3, 2)}, sigmoid_build, 0, 0},
    {0},
};

const df_op_def df_op_sigmoid = {
    .name = "sigmoid", .infer = df_infer_unary, .forward = sigmoid_forward,
    .backward = sigmoid_backward, .gradcheck = sigmoid_cases,
    .elementwise = DF_EW_SIGMOID,
};

df_node *df_sigmoid(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_sigmoid, 1, &x, NULL, 0, NULL, 0, NULL);
}
