/* log.c — elementwise log. */
#include "common.h"

// x (any) -> y (same shape)
DF_UNARY_KERNEL(log_forward, logf(x))

static df_status log_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_div(g, dy, n->in[0]);
    return g->status;
}

static df_node *log_build(df_graph *g, df_node **in) { return df_log(g, in[0]); }

static const df_gradcheck_case log_cases[] = {
    {"vector", 1, {DF_GC_F32_RANGE(0.5f, 2.0f, 7)}, log_build, 0, 0},
    {"3-D", 1, {DF_GC_F32_RANGE(0.5f, 2.0f, 2, 3, 2)}, log_build, 0, 0},
    {0},
};

const df_op_def df_op_log = {
    .name = "log", .infer = df_infer_unary, .forward = log_forward,
    .backward = log_backward, .gradcheck = log_cases,
    .elementwise = DF_EW_LOG,
};

df_node *df_log(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_log, 1, &x, NULL, 0, NULL, 0, NULL);
}
