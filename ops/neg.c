/* neg.c — elementwise neg. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(neg_forward, -x)

static df_status neg_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_neg(g, dy);
    return g->status;
}

static df_node *neg_build(df_graph *g, df_node **in) { return df_neg(g, in[0]); }

static const df_gradcheck_case neg_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 7)}, neg_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(-1.0f, 1.0f, 2, 3, 2)}, neg_build, 0, 0},
    {0},
};

const df_op_def df_op_neg = {
    .name = "neg", .infer = df_infer_unary, .forward = neg_forward,
    .backward = neg_backward, .gradcheck = neg_cases,
    .elementwise = DF_EW_NEG,
};

df_node *df_neg(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_neg, 1, &x, NULL, 0, NULL, 0, NULL);
}
