/* exp.c — elementwise exp. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(exp_forward, expf(x))

static df_status exp_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_mul(g, dy, n);   /* d exp(x) = exp(x) */
    return g->status;
}

static df_node *exp_build(df_graph *g, df_node **in) { return df_exp(g, in[0]); }

static const df_gradcheck_case exp_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 7)}, exp_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 2, 3, 2)}, exp_build, 0, 0},
    {0},
};

const df_op_def df_op_exp = {
    .name = "exp", .infer = df_infer_unary, .forward = exp_forward,
    .backward = exp_backward, .gradcheck = exp_cases,
    .elementwise = DF_EW_EXP,
};

df_node *df_exp(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_exp, 1, &x, NULL, 0, NULL, 0, NULL);
}
