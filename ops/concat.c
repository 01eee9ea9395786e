/* concat.c — join n f32 tensors of the same rank along one axis; all other
 * dims must match. The gradient of each input is the slice of dy it came
 * from. The axis (df_axis_attrs) is normalised by infer. */
#include <string.h>
#include "common.h"

static df_status concat_infer(df_node *n)
{
    const df_node *x0 = n->in[0];
    char s0[64], si[64];
    df_axis_attrs *a = DF_ATTRS(n, df_axis_attrs);
    int axis = df_axis(a->axis, x0->ndim);
    if (axis < 0)
        return df_op_error(n, DF_ERR_SHAPE, "axis %lld out of range for shape %s", (long long)a->axis,
                           df_node_shape_str(x0, s0, sizeof s0));
    int64_t total = 0;
    for (int i = 0; i < n->n_in; i++) {
        const df_node *x = n->in[i];
        if (x->dtype != DF_F32)
            return df_op_error(n, DF_ERR_DTYPE, "inputs must be f32, input %d is %s %s (input 0 is %s %s)", i,
                               df_dtype_name(x->dtype), df_node_shape_str(x, si, sizeof si),
                               df_dtype_name(x0->dtype), df_node_shape_str(x0, s0, sizeof s0));
        bool fits = x->ndim == x0->ndim;
        for (int d = 0; fits && d < x0->ndim; d++) fits = d == axis || x->shape[d] == x0->shape[d];
        if (!fits)
            return df_op_error(n, DF_ERR_SHAPE, "input %d has shape %s, input 0 has %s: only axis %d may differ",
                               i, df_node_shape_str(x, si, sizeof si), df_node_shape_str(x0, s0, sizeof s0), axis);
        total += x->shape[axis];
    }
    a->axis = axis;
    n->dtype = DF_F32;
    n->ndim = x0->ndim;
    memcpy(n->shape, x0->shape, sizeof n->shape);
    n->shape[axis] = total;
    return DF_OK;
}

// xs[i] (..., a_i, ...) -> y (..., sum_i a_i, ...): each outer row of y is the
// inputs' outer rows laid end to end
static df_status concat_forward(df_node *n)
{
    int axis = DF_ATTRS(n, df_axis_attrs)->axis;
    int64_t outer = df_shape_numel(axis, n->shape);
    int64_t inner = df_shape_numel(n->ndim - axis - 1, n->shape + axis + 1);
    int64_t out_row = n->shape[axis] * inner;
    float *Y = DF_F32P(n);
    DF_PAR_FOR(n->numel > DF_PAR_MIN,
    for (int64_t o = 0; o < outer; o++) {
        float *dst = Y + o * out_row;
        for (int i = 0; i < n->n_in; i++) {
            int64_t width = n->in[i]->shape[axis] * inner;
            memcpy(dst, DF_F32P(n->in[i]) + o * width, (size_t)width * sizeof(float));
            dst += width;
        }
    });
    return DF_OK;
}

static df_status concat_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    int axis = DF_ATTRS(n, df_axis_attrs)->axis;
    int64_t begin[DF_MAX_DIMS] = {0};
    for (int i = 0; i < n->n_in; i++) {
        df_node *x = n->in[i];
        if (need[i]) dx[i] = x->dyn ? df_slice_like(g, dy, begin, x) : df_slice(g, dy, begin, x->shape);
        begin[axis] += n->in[i]->shape[axis];
    }
    return g->status;
}

static df_node *concat_last(df_graph *g, df_node **in) { return df_concat(g, 2, in, -1); }
static df_node *concat_first(df_graph *g, df_node **in) { return df_concat(g, 2, in, 0); }
static df_node *concat_middle(df_graph *g, df_node **in) { return df_concat(g, 3, in, 1); }

static const df_gradcheck_case concat_cases[] = {
    {"(2,3) ++ (2,2) on axis -1", 2, {DF_GC_F32(2, 3), DF_GC_F32(2, 2)}, concat_last, 0, 0},
    {"(1,2,3) ++ (2,2,3) on axis 0", 2, {DF_GC_F32(1, 2, 3), DF_GC_F32(2, 2, 3)}, concat_first, 0, 0},
    {"three inputs on middle axis", 3, {DF_GC_F32(2, 1, 2), DF_GC_F32(2, 2, 2), DF_GC_F32(2, 3, 2)},
     concat_middle, 0, 0},
    {0},
};

/* A copy: every input read, y written. */
static void concat_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = df_cost_io_bytes(n)};
}

static df_node *concat_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_concat(g, 2, in, (int)attrs[0]);
}

static const df_bench_def concat_bench = {
    .n_inputs = 2, .attrs = {"axis"}, .defaults = {"-1"}, .build = concat_bench_build,
    .shapes = {"16x32,16x32", "6400x256,6400x1024", "6400x4096,6400x4096"},
};

const df_op_def df_op_concat = {
    .name = "concat", .infer = concat_infer, .forward = concat_forward,
    .backward = concat_backward, .gradcheck = concat_cases, .attrs_size = sizeof(df_axis_attrs),
    .min_inputs = 1, .max_inputs = DF_MAX_INPUTS,
    .cost = concat_cost, .bench = &concat_bench,
};

df_node *df_concat(df_graph *g, int n, df_node *const *xs, int axis)
{
    if (n < 1 || !xs) {
        df_graph_fail(g, DF_ERR_ARG, "op 'concat': need at least one input (n = %d, xs %s)", n,
                      xs ? "given" : "NULL");
        return NULL;
    }
    return df_node_new(g, &df_op_concat, n, xs, &(df_axis_attrs){.axis = axis});
}
