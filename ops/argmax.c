/* argmax.c — the index (i32) of the first maximum along an axis, NaN
 * counting as the maximum (as torch.argmax); the axis is removed. No
 * gradient: the result is an index. */
#include "common.h"

static df_status argmax_infer(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    df_axis_attrs *a = DF_ATTRS(n, df_axis_attrs);
    int axis = df_axis(a->axis, x->ndim);
    if (axis < 0 || x->shape[axis] == 0) {
        char s[64];
        return df_op_error(n, DF_ERR_SHAPE, "axis %d %s for shape %s", (int)a->axis,
                           axis < 0 ? "out of range" : "is empty", df_node_shape_str(x, s, sizeof s));
    }
    a->axis = axis;
    n->ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != axis) n->shape[n->ndim++] = x->shape[d];
    n->dtype = DF_I32;
    return DF_OK;
}

// x (outer, len, inner) -> y i32 (outer, inner)
static df_status argmax_forward(df_node *n)
{
    const df_node *x = n->in[0];
    int axis = DF_ATTRS(n, df_axis_attrs)->axis;
    int64_t outer, len, inner;
    df_axis_view(x, axis, &outer, &len, &inner);
    int64_t lanes = outer * inner;
    const float *X = DF_F32P(x);
    int32_t *Y = DF_I32P(n);
#pragma omp parallel for schedule(static) if (x->numel > DF_PAR_MIN)
    for (int64_t o = 0; o < lanes; o++) {
        const float *p = X + o / inner * len * inner + o % inner;
        int64_t best = 0;
        for (int64_t k = 1; k < len && p[best * inner] == p[best * inner]; k++) {
            float v = p[k * inner];
            if (v > p[best * inner] || v != v) best = k;
        }
        Y[o] = (int32_t)best;
    }
    return DF_OK;
}

/* One compare per element; x read, the indices written. */
static void argmax_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel, .bytes = df_cost_io_bytes(n)};
}

static df_node *argmax_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_argmax(g, in[0], (int)attrs[0]);
}

static const df_bench_def argmax_bench = {
    .n_inputs = 1, .attrs = {"axis"}, .defaults = {"-1"}, .build = argmax_bench_build,
    .shapes = {"16x65", "6400x65", "6400x4096 axis=0"},
};

const df_op_def df_op_argmax = {
    .name = "argmax", .infer = argmax_infer, .forward = argmax_forward,
    .no_gradcheck = "no gradient: an integer index (values in tests/test_transformer_ops.c)",
    .attrs_size = sizeof(df_axis_attrs),
    .min_inputs = 1, .max_inputs = 1,
    .cost = argmax_cost, .bench = &argmax_bench,
};

df_node *df_argmax(df_graph *g, df_node *x, int axis)
{
    return df_node_new(g, &df_op_argmax, 1, &x, &(df_axis_attrs){.axis = axis});
}
