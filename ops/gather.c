/* gather.c — embedding lookup: params f32 (V,E), indices i32 of rank <= 3
 * -> y (indices.shape..., E) with y[i] = params[indices[i]]. An index outside
 * [0, V) fails the run with DF_ERR_RANGE (checked before any write). The
 * gradient of params is scatter_add of dy into V rows; indices get none. */
#include <string.h>
#include "common.h"

static df_status gather_infer(df_node *n)
{
    const df_node *params = n->in[0], *indices = n->in[1];
    char sp[64], si[64];
    if (params->dtype != DF_F32 || indices->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "params must be f32 and indices i32, got %s params %s and %s indices %s",
                           df_dtype_name(params->dtype), df_node_shape_str(params, sp, sizeof sp),
                           df_dtype_name(indices->dtype), df_node_shape_str(indices, si, sizeof si));
    if (params->ndim != 2 || indices->ndim > DF_MAX_DIMS - 1)
        return df_op_error(n, DF_ERR_SHAPE, "params must be (V,E) and indices of rank <= %d, got params %s and indices %s",
                           DF_MAX_DIMS - 1, df_node_shape_str(params, sp, sizeof sp),
                           df_node_shape_str(indices, si, sizeof si));
    n->dtype = DF_F32;
    n->ndim = indices->ndim + 1;
    memcpy(n->shape, indices->shape, (size_t)indices->ndim * sizeof *n->shape);
    n->shape[indices->ndim] = params->shape[1];
    return DF_OK;
}

// params (V,E), indices (...) -> y (..., E)
static df_status gather_forward(df_node *n)
{
    const df_node *params = n->in[0], *indices = n->in[1];
    const int32_t *idx = DF_I32P(indices);
    int64_t count = indices->numel, E = params->shape[1];
    df_status st = df_check_indices(idx, count, params->shape[0]);
    if (st != DF_OK) return st;
    const float *P = DF_F32P(params);
    float *Y = DF_F32P(n);
    DF_PAR_FOR(n->numel > DF_PAR_MIN,
    for (int64_t i = 0; i < count; i++) memcpy(Y + i * E, P + (int64_t)idx[i] * E, (size_t)E * sizeof *Y););
    return DF_OK;
}

static df_status gather_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *params = n->in[0], *indices = n->in[1];
    if (need[0]) dx[0] = df_scatter_add(g, dy, indices, params->shape[0]);
    return g->status;
}

static df_node *gather_build(df_graph *g, df_node **in) { return df_gather(g, in[0], in[1]); }

static const df_gradcheck_case gather_cases[] = {
    {"(5,3)[(6)] with repeats", 2, {DF_GC_F32(5, 3), DF_GC_I32(5, 6)}, gather_build, 0, 0},
    {"(4,2)[(2,3)]", 2, {DF_GC_F32(4, 2), DF_GC_I32(4, 2, 3)}, gather_build, 0, 0},
    {"(3,4)[scalar index]", 2, {DF_GC_F32(3, 4), {DF_I32, 0, {0}, 0.0f, 3.0f}}, gather_build, 0, 0},
    {0},
};

/* A copy of the chosen rows: no arithmetic; ids read, rows read and written. */
static void gather_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4 + (double)n->in[1]->numel * 4};
}

static df_node *gather_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    (void)attrs;
    return df_gather(g, in[0], in[1]);
}

/* params (V,E), i32 ids (...) in [0, V). */
static const df_bench_def gather_bench = {
    .n_inputs = 2, .dtypes = {DF_F32, DF_I32}, .ids_axis = 0, .build = gather_bench_build,
    .shapes = {"65x256,64x16", "65x4096,64x100", "50304x768,16x1024"},
};

const df_op_def df_op_gather = {
    .name = "gather", .infer = gather_infer, .forward = gather_forward,
    .backward = gather_backward, .gradcheck = gather_cases,
    .cost = gather_cost, .bench = &gather_bench,
    .min_inputs = 2, .max_inputs = 2,
};

df_node *df_gather(df_graph *g, df_node *params, df_node *indices)
{
    df_node *in[2] = {params, indices};
    return df_node_new(g, &df_op_gather, 2, in, NULL);
}
