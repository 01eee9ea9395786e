/* mean.c — mean over axes (all axes when none are given). */
#include "common.h"

static float reduced_count(const df_node *n)
{
    const df_node *x = n->in[0];
    return n->numel ? (float)x->numel / (float)n->numel : 0.0f;
}

// x (...) -> y (x's shape without the reduced axes, or with 1s if keepdims)
static df_status mean_forward(df_node *n)
{
    const df_node *x = n->in[0];
    float count = reduced_count(n);
    df_reduce_axes(DF_F32P(x), x->ndim, x->shape, DF_ATTRS(n, df_reduce_attrs)->axes, count ? 1.0f / count : 0.0f,
                   DF_F32P(n), n->aux);
    return DF_OK;
}

static df_status mean_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    df_node *x = n->in[0];
    float count = reduced_count(n);
    if (x->dyn) {               /* shapes follow x at run time; so does the count if a dynamic axis is reduced */
        unsigned axes = DF_ATTRS(n, df_reduce_attrs)->axes;
        bool dynamic_count = (x->dyn & axes) != 0;
        df_node *spread = df_broadcast_like(g, df_reshape_to_like(g, dy, x, axes), x, dynamic_count);
        dx[0] = dynamic_count ? spread : df_scale(g, spread, count ? 1.0f / count : 0.0f);
        return g->status;
    }
    int64_t keep[DF_MAX_DIMS];
    df_reduce_keep_shape(n, keep);
    df_node *spread = df_broadcast_to(g, df_reshape(g, dy, x->ndim, keep), x->ndim, x->shape);
    dx[0] = df_scale(g, spread, count ? 1.0f / count : 0.0f);
    return g->status;
}

/* One add per input element (as sum) and one multiply by 1/count per output. */
static void mean_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel + (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

static df_node *mean_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_mean(g, in[0], (int[]){(int)attrs[0]}, 1, attrs[1] != 0);
}

static const df_bench_def mean_bench = {
    .n_inputs = 1, .attrs = {"axis", "keepdims"}, .defaults = {"-1", "0"}, .build = mean_bench_build,
    .shapes = {"256x1024", "6400x4096", "6400x4096 axis=0"},
};

static df_node *mean_all(df_graph *g, df_node **in) { return df_mean(g, in[0], NULL, 0, false); }
static df_node *mean_axis0(df_graph *g, df_node **in) { return df_mean(g, in[0], (int[]){0}, 1, true); }

static const df_gradcheck_case mean_cases[] = {
    {"all axes", 1, {DF_GC_F32(3, 2)}, mean_all, 0, 0},
    {"axis 0 keepdims", 1, {DF_GC_F32(3, 2, 2)}, mean_axis0, 0, 0},
    {0},
};

const df_op_def df_op_mean = {
    .name = "mean", .infer = df_infer_reduce, .forward = mean_forward,
    .backward = mean_backward, .gradcheck = mean_cases, .attrs_size = sizeof(df_reduce_attrs),
    .min_inputs = 1, .max_inputs = 1,
    .cost = mean_cost, .bench = &mean_bench,
};

df_node *df_mean(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims)
{
    return df_reduce_make(g, &df_op_mean, x, axes, n_axes, keepdims);
}
