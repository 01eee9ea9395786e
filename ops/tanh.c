/* tanh.c — elementwise tanh. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(tanh_forward, tanhf(x))

static df_status tanh_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    /* 1 - tanh^2, from primitive ops so that grad of grad works */
    dx[0] = df_mul(g, dy, df_sub(g, df_scalar(g, 1.0f), df_mul(g, n, n)));
    return g->status;
}

static df_node *tanh_build(df_graph *g, df_node **in) { return df_tanh(g, in[0]); }

static const df_gradcheck_case tanh_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(-1.5f, 1.5f, 7)}, tanh_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(-1.5f, 1.5f, 2, 3, 2)}, tanh_build, 0, 0},
    {0},
};

const df_op_def df_op_tanh = {
    .name = "tanh", .infer = df_infer_unary, .forward = tanh_forward,
    .backward = tanh_backward, .gradcheck = tanh_cases,
    .elementwise = DF_EW_TANH,
};

df_node *df_tanh(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_tanh, 1, &x, NULL, 0, NULL, 0, NULL);
}
