/* div.c — elementwise div with NumPy broadcasting. */
#include "common.h"

// a (broadcastable), b (broadcastable) -> y (broadcast shape)
DF_BINARY_KERNEL(div_forward, a / b)

static df_status div_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    /* y = a / b: da = dy / b, db = -dy * y / b */
    dx[0] = need[0] ? df_unbroadcast(g, df_div(g, dy, n->in[1]), n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_neg(g, df_div(g, df_mul(g, dy, n), n->in[1])), n->in[1]) : NULL;
    return g->status;
}

static df_node *div_build(df_graph *g, df_node **in) { return df_div(g, in[0], in[1]); }

static const df_gradcheck_case div_cases[] = {
    {"same shape", 2, {DF_GC_F32(2, 3), DF_GC_F32_RANGE(0.5f, 2.0f, 2, 3)}, div_build, 0, 0},
    {"broadcast row", 2, {DF_GC_F32(2, 3), DF_GC_F32_RANGE(0.5f, 2.0f, 3)}, div_build, 0, 0},
    {"broadcast both", 2, {DF_GC_F32(2, 1, 3), DF_GC_F32_RANGE(-2.0f, -0.5f, 4, 1)}, div_build, 0, 0},
    {0},
};

const df_op_def df_op_div = {
    .name = "div", .infer = df_infer_broadcast, .forward = div_forward,
    .backward = div_backward, .gradcheck = div_cases,
    .elementwise = DF_EW_DIV,
};

df_node *df_div(df_graph *g, df_node *a, df_node *b)
{
    df_node *in[2] = {a, b};
    return df_node_make(g, &df_op_div, 2, in, NULL, 0, NULL, 0, NULL);
}
