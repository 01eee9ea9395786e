/* max.c — the maximum along one axis (NaN propagates, as torch.amax);
 * df_reduce_max over several axes and df_logsumexp are compositions of it.
 * The reduced axis is the one bit of df_reduce_attrs.axes. Gradient: dy to
 * the positions equal to the maximum, shared equally among ties (as
 * TensorFlow's reduce_max): dx = (x == y) * dy / count(x == y). */
#include "common.h"

static int reduced_axis(const df_node *n) { return __builtin_ctz(DF_ATTRS(n, df_reduce_attrs)->axes); }

// x (outer, len, inner) -> y (outer, inner) [or (outer, 1, inner) with keepdims]
static df_status max_forward(df_node *n)
{
    const df_node *x = n->in[0];
    int64_t outer, len, inner;
    df_axis_view(x, reduced_axis(n), &outer, &len, &inner);
    const float *X = DF_F32P(x);
    float *Y = DF_F32P(n);
#pragma omp parallel for schedule(static) if (x->numel > DF_PAR_MIN)
    for (int64_t o = 0; o < outer * inner; o++) {
        const float *p = X + o / inner * len * inner + o % inner;
        float m = -INFINITY;
        for (int64_t k = 0; k < len; k++) {
            float v = p[k * inner];
            if (v > m || v != v) m = v;     /* a NaN, once seen, stays */
            if (m != m) break;
        }
        Y[o] = m;
    }
    return DF_OK;
}

static df_status max_infer(df_node *n)
{
    if (__builtin_popcount(DF_ATTRS(n, df_reduce_attrs)->axes) != 1)
        return df_op_error(n, DF_ERR_ARG, "reduces exactly one axis (df_reduce_max composes several)");
    return df_infer_reduce(n);
}

/* y or dy with the reduced axis kept as size 1, so it broadcasts against x. */
static df_node *with_axis_kept(df_graph *g, df_node *n, df_node *v)
{
    const df_node *x = n->in[0];
    if (DF_ATTRS(n, df_reduce_attrs)->keepdims) return v;
    if (x->dyn) return df_reshape_to_like(g, v, n->in[0], DF_ATTRS(n, df_reduce_attrs)->axes);
    int64_t keep[DF_MAX_DIMS];
    df_reduce_keep_shape(n, keep);
    return df_reshape(g, v, x->ndim, keep);
}

static df_status max_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    int axis = reduced_axis(n);
    df_node *x = n->in[0];
    df_node *is_max = df_equal(g, x, with_axis_kept(g, n, n));
    df_node *ties = df_sum(g, is_max, &axis, 1, true);
    dx[0] = df_mul(g, is_max, df_div(g, with_axis_kept(g, n, dy), ties));
    return g->status;
}

/* Inputs spread by a constant per lane (k + lane) mod len, so that no two
 * values of a lane come within the checker's step of each other, while the
 * position of the maximum varies from lane to lane. */
static df_node *spread(df_graph *g, df_node *x, int axis)
{
    float offsets[24];
    int64_t outer, len, inner;
    df_axis_view(x, axis, &outer, &len, &inner);
    for (int64_t i = 0; i < x->numel && i < 24; i++) {
        int64_t o = i / (len * inner), k = i / inner % len, r = i % inner;
        offsets[i] = (float)((k + o + r) % len);
    }
    df_tensor t = df_tensor_make(DF_F32, offsets, x->ndim, x->shape);
    return df_add(g, df_scale(g, x, 0.2f), df_constant(g, &t));
}
static df_node *max_last(df_graph *g, df_node **in) { return df_reduce_max(g, spread(g, in[0], 1), (int[]){-1}, 1, false); }
static df_node *max_first_keep(df_graph *g, df_node **in) { return df_reduce_max(g, spread(g, in[0], 0), (int[]){0}, 1, true); }
static df_node *max_middle(df_graph *g, df_node **in) { return df_reduce_max(g, spread(g, in[0], 1), (int[]){1}, 1, false); }

static const df_gradcheck_case max_cases[] = {
    {"(3,4) last axis", 1, {DF_GC_F32(3, 4)}, max_last, 0, 0},
    {"(3,2,2) axis 0, keepdims", 1, {DF_GC_F32(3, 2, 2)}, max_first_keep, 0, 0},
    {"(2,3,2) middle axis", 1, {DF_GC_F32(2, 3, 2)}, max_middle, 0, 0},
    {0},
};

/* One comparison per element of x. */
static void max_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel, .bytes = df_cost_io_bytes(n)};
}

static df_node *max_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_reduce_max(g, in[0], (int[]){(int)attrs[0]}, 1, attrs[1] != 0);
}

static const df_bench_def max_bench = {
    .n_inputs = 1, .attrs = {"axis", "keepdims"}, .defaults = {"-1", "0"}, .build = max_bench_build,
    .shapes = {"16x65", "6400x65", "6400x4096 axis=0"},
};

const df_op_def df_op_max = {
    .name = "max", .infer = max_infer, .forward = max_forward, .backward = max_backward,
    .gradcheck = max_cases, .attrs_size = sizeof(df_reduce_attrs),
    .min_inputs = 1, .max_inputs = 1,
    .cost = max_cost, .bench = &max_bench,
};

df_node *df_reduce_max(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims)
{
    if (!g || !x || (n_axes > 0 && !axes)) return df_reduce_make(g, &df_op_max, x, axes, n_axes, keepdims);
    /* The axes as a mask (validated one by one), then one max per axis from
     * the last, keeping dims so the earlier axes keep their positions. */
    int ndim = x->ndim, list[DF_MAX_DIMS], count = 0;
    unsigned mask = 0;
    for (int i = 0; i < (n_axes ? n_axes : ndim); i++) {
        int a = n_axes ? df_axis(axes[i], ndim) : i;
        if (a < 0) return df_reduce_make(g, &df_op_max, x, &axes[i], 1, keepdims);   /* names the bad axis */
        mask |= 1u << a;
    }
    for (int d = ndim - 1; d >= 0; d--)
        if (mask >> d & 1) list[count++] = d;
    if (count == 1) return df_reduce_make(g, &df_op_max, x, list, 1, keepdims);
    df_node *y = x;
    for (int i = 0; i < count; i++) y = df_reduce_make(g, &df_op_max, y, &list[i], 1, true);
    if (keepdims || !y) return y;
    int64_t shape[DF_MAX_DIMS];
    int out = 0;
    for (int d = 0; d < ndim; d++)
        if (!(mask >> d & 1)) shape[out++] = x->dyn >> d & 1 ? -1 : x->shape[d];
    return df_reshape(g, y, out, shape);
}

/* m + log(sum(exp(x - m))) with m the maximum (0 where a lane is all -inf,
 * so such a lane gives -inf, not NaN). */
df_node *df_logsumexp(df_graph *g, df_node *x, int axis, bool keepdims)
{
    df_node *m = df_reduce_max(g, x, &axis, 1, true);
    df_node *zero = df_scalar(g, 0.0f);
    df_node *safe = df_where(g, df_equal(g, m, df_scalar(g, -INFINITY)), zero, m);
    df_node *y = df_add(g, safe, df_log(g, df_sum(g, df_exp(g, df_sub(g, x, safe)), &axis, 1, true)));
    if (keepdims || !y) return y;
    int a = df_axis(axis, x->ndim);
    int64_t shape[DF_MAX_DIMS];
    int out = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != a) shape[out++] = x->dyn >> d & 1 ? -1 : x->shape[d];
    return df_reshape(g, y, out, shape);
}
