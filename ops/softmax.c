/* softmax.c — y = exp(x - max) / sum(exp(x - max)) along one axis (any axis;
 * the last is the fast path: contiguous rows). Subtracting the max keeps
 * exp from overflowing; the sum is accumulated in double. ia[0] = axis
 * (normalised by infer). The gradient is built from primitive ops, so
 * gradients of gradients work: dx = y * (dy - sum(dy * y, axis, keepdims)). */
#include "common.h"

/* One softmax over len elements spaced stride apart. */
static inline void softmax_lane(const float *x, float *y, int64_t len, int64_t stride)
{
    const float max = df_lane_max(x, stride, len);
    double sum = df_exp_shifted_sum(x, stride, len, max, y);
    float inv = (float)(1.0 / sum);
    for (int64_t k = 0; k < len; k++) y[k * stride] *= inv;
}

// x (outer, len, inner) viewed around the axis -> y (same shape)
static df_status softmax_forward(df_node *n)
{
    df_for_each_lane(DF_F32P(n->in[0]), DF_F32P(n), n->ndim, n->shape, DF_ATTRS(n, df_axis_attrs)->axis, softmax_lane);
    return DF_OK;
}

static df_status softmax_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    int axis = DF_ATTRS(n, df_axis_attrs)->axis;
    df_node *dot = df_sum(g, df_mul(g, dy, n), &axis, 1, true);
    dx[0] = df_mul(g, n, df_sub(g, dy, dot));
    return g->status;
}

static df_node *softmax_last(df_graph *g, df_node **in) { return df_softmax(g, in[0], -1); }
static df_node *softmax_first(df_graph *g, df_node **in) { return df_softmax(g, in[0], 0); }
static df_node *softmax_middle(df_graph *g, df_node **in) { return df_softmax(g, in[0], 1); }

static const df_gradcheck_case softmax_cases[] = {
    {"(2,5) axis -1", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 2, 5)}, softmax_last, 0, 0},
    {"(3,2,2) axis 0", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 3, 2, 2)}, softmax_first, 0, 0},
    {"(2,3,2) axis 1", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 2, 3, 2)}, softmax_middle, 0, 0},
    {"(6) vector", 1, {DF_GC_F32_RANGE(-2.0f, 2.0f, 6)}, softmax_last, 0, 0},
    {0},
};

/* Per element: the max (1), x - max and exp (2), the sum (1), the scaling (1). */
static void softmax_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel * 5, .bytes = df_cost_io_bytes(n)};
}

/* axis (default -1). */
static df_node *softmax_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_softmax(g, in[0], (int)attrs[0]);
}

static const df_bench_def softmax_bench = {
    .n_inputs = 1, .lo = -3.0f, .hi = 3.0f, .attrs = {"axis"}, .defaults = {"-1"}, .build = softmax_bench_build,
    .shapes = {"256x65", "6400x65", "16x6x256x256"},
};

const df_op_def df_op_softmax = {
    .name = "softmax", .infer = df_infer_unary_axis, .forward = softmax_forward,
    .backward = softmax_backward, .gradcheck = softmax_cases, .attrs_size = sizeof(df_axis_attrs),
    .cost = softmax_cost, .bench = &softmax_bench,
    .min_inputs = 1, .max_inputs = 1,
};

df_node *df_softmax(df_graph *g, df_node *x, int axis)
{
    return df_node_new(g, &df_op_softmax, 1, &x, &(df_axis_attrs){.axis = axis});
}
