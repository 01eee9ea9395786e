/* one_hot.c — i32 indices (...) of rank <= 3 -> f32 (..., depth) with a 1 at
 * each index and 0 elsewhere. An index outside [0, depth) fails the run with
 * DF_ERR_RANGE. Not differentiable (its input is integer), so no backward
 * and no gradcheck cases. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { int64_t depth; } one_hot_attrs;
DF_ATTRS_END

static df_status one_hot_infer(df_node *n)
{
    const df_node *indices = n->in[0];
    char si[64];
    if (indices->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "indices must be i32, got %s %s", df_dtype_name(indices->dtype),
                           df_node_shape_str(indices, si, sizeof si));
    if (indices->ndim > DF_MAX_DIMS - 1)
        return df_op_error(n, DF_ERR_SHAPE, "indices %s have rank %d; at most %d leaves room for the depth axis",
                           df_node_shape_str(indices, si, sizeof si), indices->ndim, DF_MAX_DIMS - 1);
    int64_t depth = DF_ATTRS(n, one_hot_attrs)->depth;
    if (depth < 0)
        return df_op_error(n, DF_ERR_ARG, "depth must be >= 0, got %lld (indices %s)", (long long)depth,
                           df_node_shape_str(indices, si, sizeof si));
    n->dtype = DF_F32;
    n->ndim = indices->ndim + 1;
    memcpy(n->shape, indices->shape, (size_t)indices->ndim * sizeof *n->shape);
    n->shape[indices->ndim] = depth;
    return DF_OK;
}

// indices (...) -> y (..., depth)
static df_status one_hot_forward(df_node *n)
{
    const df_node *indices = n->in[0];
    const int32_t *idx = DF_I32P(indices);
    int64_t count = indices->numel, depth = DF_ATTRS(n, one_hot_attrs)->depth;
    df_status st = df_check_indices(idx, count, depth);
    if (st != DF_OK) return st;
    float *Y = DF_F32P(n);
#pragma omp parallel for schedule(static) if (n->numel > DF_PAR_MIN)
    for (int64_t i = 0; i < count; i++) {
        float *row = Y + i * depth;
        memset(row, 0, (size_t)depth * sizeof *row);
        row[idx[i]] = 1.0f;
    }
    return DF_OK;
}

/* A fill: the indices read, the (..., depth) output written. */
static void one_hot_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_one_hot = {
    .name = "one_hot", .infer = one_hot_infer, .forward = one_hot_forward, .attrs_size = sizeof(one_hot_attrs),
    .no_gradcheck = "no gradient: integer input (values in tests/test_ops_shape.c)",
    .min_inputs = 1, .max_inputs = 1,
    .cost = one_hot_cost,
};

df_node *df_one_hot(df_graph *g, df_node *indices, int64_t depth)
{
    return df_node_new(g, &df_op_one_hot, 1, &indices, &(one_hot_attrs){.depth = depth});
}
