/* cast.c — f32 <-> i32. To i32 truncates toward zero (as C and torch); a
 * NaN or a value outside i32's range fails the run with DF_ERR_RANGE naming
 * the first one (C leaves that conversion undefined). Casting to the input's
 * own dtype is the input itself. No gradient: one side is an integer. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { int32_t dtype; } cast_attrs;
DF_ATTRS_END

static df_status cast_infer(df_node *n)
{
    df_dtype to = (df_dtype)DF_ATTRS(n, cast_attrs)->dtype, from = n->in[0]->dtype;
    if ((to != DF_F32 && to != DF_I32) || (from != DF_F32 && from != DF_I32))
        return df_op_error(n, DF_ERR_DTYPE, "casts between f32 and i32, not %s to %s", df_dtype_name(from),
                           df_dtype_name(to));
    n->ndim = n->in[0]->ndim;
    memcpy(n->shape, n->in[0]->shape, sizeof n->shape);
    n->dtype = to;
    return DF_OK;
}

// x (any, f32 or i32) -> y (same shape, the other dtype)
static df_status cast_forward(df_node *n)
{
    int64_t N = n->numel;
    if (n->dtype == DF_F32) {
        const int32_t *X = DF_I32P(n->in[0]);
        float *Y = DF_F32P(n);
        DF_PAR_FOR_SIMD(N > DF_PAR_MIN,
        for (int64_t i = 0; i < N; i++) Y[i] = (float)X[i];);
        return DF_OK;
    }
    const float *X = DF_F32P(n->in[0]);
    for (int64_t i = 0; i < N; i++)     /* serially, before any write: the first bad value is always named */
        if (!(X[i] > -2147483649.0f && X[i] < 2147483648.0f))
            return df_error(DF_ERR_RANGE, "value %g at flat index %lld does not fit in i32", X[i], (long long)i);
    int32_t *Y = DF_I32P(n);
    DF_PAR_FOR_SIMD(N > DF_PAR_MIN,
    for (int64_t i = 0; i < N; i++) Y[i] = (int32_t)X[i];);
    return DF_OK;
}

/* One conversion per element (a FLOP, as the elementwise table counts a
 * compare); x read, y written. The range check before a cast to i32 rereads
 * x, from cache at any size that fits there, so it is not counted. */
static void cast_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

/* to: 0 = f32, 1 = i32 (the default). */
static df_node *cast_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_cast(g, in[0], attrs[0] != 0 ? DF_I32 : DF_F32);
}

static const df_bench_def cast_bench = {
    .n_inputs = 1, .lo = -100.0f, .hi = 100.0f, .attrs = {"to"}, .defaults = {"1"}, .build = cast_bench_build,
    .shapes = {"256x1024", "6400x4096", "16384x4096"},
};

const df_op_def df_op_cast = {
    .name = "cast", .infer = cast_infer, .forward = cast_forward,
    .no_gradcheck = "no gradient: one side is an integer (values in tests/test_transformer_ops.c)",
    .attrs_size = sizeof(cast_attrs),
    .cost = cast_cost, .bench = &cast_bench,
    .min_inputs = 1, .max_inputs = 1,
};

df_node *df_cast(df_graph *g, df_node *x, df_dtype dtype)
{
    if (x && x->dtype == dtype) return x;
    return df_node_new(g, &df_op_cast, 1, &x, &(cast_attrs){.dtype = (int32_t)dtype});
}
