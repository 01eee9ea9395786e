/* sparse_softmax_xent.c — mean cross-entropy of integer targets under a
 * softmax of logits: logits f32 (..., V), targets i32 with shape == logits
 * .shape[:-1] -> scalar mean over all positions of -log softmax(logits)[t]
 * = logsumexp(row) - row[t] (max-shifted, in double). Each row's loss goes
 * to the aux buffer, then one thread sums them in order: the same result for
 * any thread count. A target outside [0, V) fails the run with DF_ERR_RANGE.
 * With no positions the loss is 0 (not 0/0). Gradient for logits, built from
 * ops: (softmax(logits) - one_hot(targets, V)) * dy / N; targets get none. */
#include "common.h"

static df_status xent_infer(df_node *n)
{
    const df_node *logits = n->in[0], *targets = n->in[1];
    char sl[64], st[64];
    if (logits->dtype != DF_F32 || targets->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "logits must be f32 and targets i32, got %s logits %s and %s targets %s",
                           df_dtype_name(logits->dtype), df_node_shape_str(logits, sl, sizeof sl),
                           df_dtype_name(targets->dtype), df_node_shape_str(targets, st, sizeof st));
    if (logits->ndim < 1 || !df_shape_equal(logits->ndim - 1, logits->shape, targets->ndim, targets->shape))
        return df_op_error(n, DF_ERR_SHAPE, "logits %s must be targets.shape + (V), targets are %s",
                           df_node_shape_str(logits, sl, sizeof sl), df_node_shape_str(targets, st, sizeof st));
    n->dtype = DF_F32;
    n->ndim = 0;
    n->aux_bytes = (size_t)targets->numel * sizeof(double);   /* one loss per row */
    return DF_OK;
}

/* Serial, before any work: the first bad position is the one reported. */
static df_status check_targets(const int32_t *t, int64_t count, int64_t V)
{
    for (int64_t i = 0; i < count; i++)
        if (t[i] < 0 || t[i] >= V)
            return df_error(DF_ERR_RANGE, "target %d at position %lld is outside [0, V) with V = %lld", t[i],
                            (long long)i, (long long)V);
    return DF_OK;
}

/* -log softmax(row)[target] = max + log(sum(exp(row - max))) - row[target]. */
static double row_loss(const float *row, int64_t V, int32_t target)
{
    const float max = df_lane_max(row, 1, V);
    double sum = df_exp_shifted_sum(row, 1, V, max, NULL);
    return (double)max + log(sum) - (double)row[target];
}

// logits (..., V), targets (...) -> y () (mean loss); aux: (rows) doubles
static df_status xent_forward(df_node *n)
{
    const df_node *logits = n->in[0], *targets = n->in[1];
    const int32_t *T = DF_I32P(targets);
    int64_t rows = targets->numel, V = logits->shape[logits->ndim - 1];
    df_status st = check_targets(T, rows, V);
    if (st != DF_OK) return st;
    const float *X = DF_F32P(logits);
    double *loss = n->aux;
#pragma omp parallel for schedule(static) if (logits->numel > DF_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) loss[r] = row_loss(X + r * V, V, T[r]);
    double total = 0;
    for (int64_t r = 0; r < rows; r++) total += loss[r];
    DF_F32P(n)[0] = rows ? (float)(total / (double)rows) : 0.0f;
    return DF_OK;
}

static df_status xent_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *logits = n->in[0], *targets = n->in[1];
    if (!need[0]) return g->status;
    int64_t V = logits->shape[logits->ndim - 1], rows = targets->numel;
    df_node *residual = df_sub(g, df_softmax(g, logits, -1), df_one_hot(g, targets, V));
    if (targets->dyn) {         /* rows known at run time: dy / rows spread over targets' shape, then (...,1) */
        df_node *per_row = df_broadcast_like(g, dy, targets, true);
        dx[0] = df_mul(g, residual, df_reshape_to_like(g, per_row, logits, 1u << (logits->ndim - 1)));
        return g->status;
    }
    dx[0] = df_scale(g, df_mul(g, residual, dy), rows ? 1.0f / (float)rows : 0.0f);
    return g->status;
}

static df_node *xent_build(df_graph *g, df_node **in) { return df_sparse_softmax_cross_entropy(g, in[0], in[1]); }

static const df_gradcheck_case xent_cases[] = {
    {"(3,4) logits", 2, {DF_GC_F32_RANGE(-2.0f, 2.0f, 3, 4), DF_GC_I32(4, 3)}, xent_build, 0, 0},
    {"(2,2,3) logits", 2, {DF_GC_F32_RANGE(-2.0f, 2.0f, 2, 2, 3), DF_GC_I32(3, 2, 2)}, xent_build, 0, 0},
    {"(5) logits, scalar target", 2, {DF_GC_F32_RANGE(-2.0f, 2.0f, 5), {DF_I32, 0, {0}, 0.0f, 5.0f}}, xent_build, 0, 0},
    {0},
};

/* Per logit: the max (1), x - max and exp (2), the sum (1). */
static void xent_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->in[0]->numel * 4, .bytes = df_cost_io_bytes(n)};
}

static df_node *xent_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    (void)attrs;
    return df_sparse_softmax_cross_entropy(g, in[0], in[1]);
}

/* logits (..., V), i32 targets (...) in [0, V). */
static const df_bench_def xent_bench = {
    .n_inputs = 2, .dtypes = {DF_F32, DF_I32}, .ids_axis = -1, .lo = -3.0f, .hi = 3.0f,
    .build = xent_bench_build, .shapes = {"256x65,256", "6400x65,6400", "16384x4096,16384"},
};

const df_op_def df_op_sparse_softmax_xent = {
    .name = "sparse_softmax_xent", .infer = xent_infer, .forward = xent_forward,
    .backward = xent_backward, .gradcheck = xent_cases,
    .cost = xent_cost, .bench = &xent_bench,
    .min_inputs = 2, .max_inputs = 2,
};

df_node *df_sparse_softmax_cross_entropy(df_graph *g, df_node *logits, df_node *targets)
{
    df_node *in[2] = {logits, targets};
    return df_node_new(g, &df_op_sparse_softmax_xent, 2, in, NULL);
}
