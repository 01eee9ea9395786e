/* log_softmax.c — y = x - logsumexp(x) along one axis (any axis; the last is
 * the fast path: contiguous rows), with logsumexp(x) = max + log(sum(exp(x -
 * max))) so nothing overflows; the sum is accumulated in double. ia[0] =
 * axis (normalised by infer). The gradient is built from primitive ops, so
 * gradients of gradients work: dx = dy - exp(y) * sum(dy, axis, keepdims). */
#include "common.h"

/* One log-softmax over len elements spaced stride apart. */
static inline void log_softmax_lane(const float *x, float *y, int64_t len, int64_t stride)
{
    const float max = df_lane_max(x, stride, len);
    double sum = df_exp_shifted_sum(x, stride, len, max, NULL);
    float lse = max + (float)log(sum);
    for (int64_t k = 0; k < len; k++) y[k * stride] = x[k * stride] - lse;
}

// x (outer, len, inner) viewed around the axis -> y (same shape)
static df_status log_softmax_forward(df_node *n)
{
    df_for_each_lane(DF_F32P(n->in[0]), DF_F32P(n), n->ndim, n->shape, DF_ATTRS(n, df_axis_attrs)->axis, log_softmax_lane);
    return DF_OK;
}

static df_status log_softmax_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    int axis = DF_ATTRS(n, df_axis_attrs)->axis;
    df_node *total = df_sum(g, dy, &axis, 1, true);
    dx[0] = df_sub(g, dy, df_mul(g, df_exp(g, n), total));
    return g->status;
}

static df_node *log_softmax_last(df_graph *g, df_node **in) { return df_log_softmax(g, in[0], -1); }
static df_node *log_softmax_first(df_graph *g, df_node **in) { return df_log_softmax(g, in[0], 0); }
static df_node *log_softmax_middle(df_graph *g, df_node **in) { return df_log_softmax(g, in[0], 1); }

static const df_gradcheck_case log_softmax_cases[] = {
    {"(2,5) axis -1", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 2, 5)}, log_softmax_last, 0, 0},
    {"(3,2,2) axis 0", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 3, 2, 2)}, log_softmax_first, 0, 0},
    {"(2,3,2) axis 1", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 2, 3, 2)}, log_softmax_middle, 0, 0},
    {"(6) vector", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 6)}, log_softmax_last, 0, 0},
    {0},
};

/* Per element: the max (1), x - max and exp (2), the sum (1), subtracting the log (1). */
static void log_softmax_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel * 5, .bytes = df_cost_io_bytes(n)};
}

/* axis (default -1). */
static df_node *log_softmax_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_log_softmax(g, in[0], (int)attrs[0]);
}

static const df_bench_def log_softmax_bench = {
    .n_inputs = 1, .lo = -3.0f, .hi = 3.0f, .attrs = {"axis"}, .defaults = {"-1"}, .build = log_softmax_bench_build,
    .shapes = {"256x65", "6400x65", "16x6x256x256"},
};

const df_op_def df_op_log_softmax = {
    .name = "log_softmax", .infer = df_infer_unary_axis, .forward = log_softmax_forward,
    .backward = log_softmax_backward, .gradcheck = log_softmax_cases, .attrs_size = sizeof(df_axis_attrs),
    .cost = log_softmax_cost, .bench = &log_softmax_bench,
    .min_inputs = 1, .max_inputs = 1,
};

df_node *df_log_softmax(df_graph *g, df_node *x, int axis)
{
    return df_node_new(g, &df_op_log_softmax, 1, &x, &(df_axis_attrs){.axis = axis});
}
