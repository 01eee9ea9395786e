/* causal_mask.c — scores (..., T, S) with the future hidden: y[..., i, j] =
 * fill where j > i + (S - T), else x. With S = T this is the upper triangle;
 * with S > T (keys of earlier steps cached) query i sits at position
 * S - T + i. fill is -INFINITY before a softmax; the gradient is dy with the
 * same entries set to 0 (causal_mask(dy) with fill 0). */
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { float fill; } causal_mask_attrs;
DF_ATTRS_END

static df_status causal_mask_infer(df_node *n)
{
    df_status st = df_infer_unary(n);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    if (x->ndim < 2 || x->shape[x->ndim - 1] < x->shape[x->ndim - 2]) {
        char s[64];
        return df_op_error(n, DF_ERR_SHAPE, "needs scores (..., T, S) with S >= T, got %s",
                           df_node_shape_str(x, s, sizeof s));
    }
    return DF_OK;
}

// x (..., T, S) -> y (..., T, S)
static df_status causal_mask_forward(df_node *n)
{
    const df_node *x = n->in[0];
    int64_t T = x->shape[x->ndim - 2], S = x->shape[x->ndim - 1], rows = T ? x->numel / S : 0;
    const float *X = DF_F32P(x);
    float *Y = DF_F32P(n), fill = DF_ATTRS(n, causal_mask_attrs)->fill;
#pragma omp parallel for schedule(static) if (x->numel > DF_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t visible = r % T + (S - T) + 1;        /* keys 0 .. visible-1 */
        const float *xr = X + r * S;
        float *yr = Y + r * S;
        for (int64_t j = 0; j < S; j++) yr[j] = j < visible ? xr[j] : fill;
    }
    return DF_OK;
}

static df_status causal_mask_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    dx[0] = df_causal_mask(g, dy, 0.0f);
    return g->status;
}

/* A copy with the future overwritten: no arithmetic (the test is on
 * indices); x read, y written. */
static void causal_mask_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = df_cost_io_bytes(n)};
}

static df_node *causal_mask_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_causal_mask(g, in[0], (float)attrs[0]);
}

/* Scores (B, h, T, T) of char-gpt's attention: small, the default step, a long
 * block; the fill as a large negative (the tool takes finite values only). */
static const df_bench_def causal_mask_bench = {
    .n_inputs = 1, .attrs = {"fill"}, .defaults = {"-1e30"}, .build = causal_mask_bench_build,
    .shapes = {"2x4x64x64", "12x4x64x64", "16x8x512x512"},
};

static df_node *mask_square(df_graph *g, df_node **in) { return df_causal_mask(g, in[0], -3.0f); }

static const df_gradcheck_case causal_mask_cases[] = {
    {"(2,3,3)", 1, {DF_GC_F32(2, 3, 3)}, mask_square, 0, 0},
    {"(2,4) with cached keys", 1, {DF_GC_F32(2, 4)}, mask_square, 0, 0},
    {0},
};

const df_op_def df_op_causal_mask = {
    .name = "causal_mask", .infer = causal_mask_infer, .forward = causal_mask_forward,
    .backward = causal_mask_backward, .gradcheck = causal_mask_cases, .attrs_size = sizeof(causal_mask_attrs),
    .min_inputs = 1, .max_inputs = 1,
    .cost = causal_mask_cost, .bench = &causal_mask_bench,
};

df_node *df_causal_mask(df_graph *g, df_node *scores, float fill)
{
    return df_node_new(g, &df_op_causal_mask, 1, &scores, &(causal_mask_attrs){.fill = fill});
}
