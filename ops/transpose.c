/* transpose.c — permute the axes of x: y.shape[d] = x.shape[perm[d]]. A
 * general strided copy (works for f32 and i32: both are 4-byte elements,
 * copied as bits). perm entries may be negative (counted from the end); a
 * perm that is not a permutation of the axes is a DF_ERR_ARG. The gradient is
 * the transpose of dy by the inverse permutation. */
#include "common.h"

_Static_assert(sizeof(float) == sizeof(uint32_t) && sizeof(int32_t) == sizeof(uint32_t),
               "transpose copies elements as 4-byte words");

DF_ATTRS_BEGIN
typedef struct { int64_t perm[DF_MAX_DIMS]; } transpose_attrs;   /* normalised by infer */
DF_ATTRS_END

static df_status transpose_infer(df_node *n)
{
    const df_node *x = n->in[0];
    int nd = x->ndim;
    bool seen[DF_MAX_DIMS] = {false};
    int64_t perm[DF_MAX_DIMS], *given = DF_ATTRS(n, transpose_attrs)->perm;
    for (int d = 0; d < nd; d++) {
        int64_t axis = given[d] < 0 ? given[d] + nd : given[d];
        if (axis < 0 || axis >= nd || seen[axis]) {
            char sp[64], sx[64];
            return df_op_error(n, DF_ERR_ARG, "perm %s is not a permutation of the axes of %s",
                               df_shape_str(nd, given, sp, sizeof sp), df_node_shape_str(x, sx, sizeof sx));
        }
        seen[axis] = true;
        perm[d] = axis;
    }
    for (int d = 0; d < nd; d++) {
        given[d] = perm[d];                  /* normalised: forward and backward read it */
        n->shape[d] = x->shape[perm[d]];
    }
    n->ndim = nd;
    n->dtype = x->dtype;
    return DF_OK;
}

// x (d0,..,dk) -> y (d[perm[0]],..,d[perm[k]]); y[i] = x[sum_d i_d * stride_x[perm[d]]]
static df_status transpose_forward(df_node *n)
{
    const df_node *x = n->in[0];
    const uint32_t *X = x->data;
    uint32_t *Y = n->data;
    int nd = n->ndim;
    const int64_t *perm = DF_ATTRS(n, transpose_attrs)->perm;
    int64_t src_stride[DF_MAX_DIMS], stride = 1;
    for (int d = nd - 1; d >= 0; d--) {      /* x's row-major strides, visited in y's axis order */
        for (int k = 0; k < nd; k++)
            if (perm[k] == d) src_stride[k] = stride;
        stride *= x->shape[d];
    }
    int64_t N = n->numel, inner = nd ? n->shape[nd - 1] : 1, rows = inner ? N / inner : 0;
    int64_t step = nd ? src_stride[nd - 1] : 0;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int d = nd - 2; d >= 0; d--) {
            off += rem % n->shape[d] * src_stride[d];
            rem /= n->shape[d];
        }
        for (int64_t j = 0; j < inner; j++) Y[r * inner + j] = X[off + j * step];
    }
    return DF_OK;
}

static df_status transpose_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    int inverse[DF_MAX_DIMS];
    const int64_t *perm = DF_ATTRS(n, transpose_attrs)->perm;
    for (int d = 0; d < n->ndim; d++) inverse[perm[d]] = d;
    dx[0] = df_transpose(g, dy, inverse);
    return g->status;
}

static df_node *transpose_2d(df_graph *g, df_node **in) { return df_transpose(g, in[0], (int[]){1, 0}); }
static df_node *transpose_3d(df_graph *g, df_node **in) { return df_transpose(g, in[0], (int[]){2, 0, 1}); }
static df_node *transpose_4d(df_graph *g, df_node **in) { return df_transpose(g, in[0], (int[]){3, 1, 0, -2}); }

static const df_gradcheck_case transpose_cases[] = {
    {"(2,3) -> (3,2)", 1, {DF_GC_F32(2, 3)}, transpose_2d, 0, 0},
    {"(2,3,4) perm (2,0,1)", 1, {DF_GC_F32(2, 3, 4)}, transpose_3d, 0, 0},
    {"(2,1,3,2) perm (3,1,0,-2)", 1, {DF_GC_F32(2, 1, 3, 2)}, transpose_4d, 0, 0},
    {0},
};

/* A copy: x read, y written, no arithmetic. */
static void transpose_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = df_cost_io_bytes(n)};
}

/* Swaps axes a and b (the last two by default; a=1 b=2 is the head split of
 * attention, (B,T,h,d) -> (B,h,T,d)). */
static df_node *transpose_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    int nd = df_node_ndim(in[0]), a = (int)attrs[0], b = (int)attrs[1], perm[DF_MAX_DIMS];
    a = a < 0 ? a + nd : a;
    b = b < 0 ? b + nd : b;
    if (a < 0 || a >= nd || b < 0 || b >= nd) {
        df_graph_set_error(g, DF_ERR_ARG, "transpose: axes a=%g b=%g are outside rank %d", attrs[0], attrs[1], nd);
        return NULL;
    }
    for (int d = 0; d < nd; d++) perm[d] = d == a ? b : d == b ? a : d;
    return df_transpose(g, in[0], perm);
}

static const df_bench_def transpose_bench = {
    .n_inputs = 1, .attrs = {"a", "b"}, .defaults = {"-2", "-1"}, .build = transpose_bench_build,
    .shapes = {"64x48", "12x64x4x32 a=1 b=2", "6400x4096"},
};

const df_op_def df_op_transpose = {
    .name = "transpose", .infer = transpose_infer, .forward = transpose_forward,
    .backward = transpose_backward, .gradcheck = transpose_cases, .attrs_size = sizeof(transpose_attrs),
    .min_inputs = 1, .max_inputs = 1,
    .cost = transpose_cost, .bench = &transpose_bench,
};

df_node *df_transpose(df_graph *g, df_node *x, const int *perm)
{
    if (x && x->ndim > 0 && !perm) {
        df_graph_fail(g, DF_ERR_ARG, "op 'transpose': perm is NULL");
        return NULL;
    }
    transpose_attrs a = {.perm = {0}};
    for (int d = 0; x && d < x->ndim; d++) a.perm[d] = perm[d];
    return df_node_new(g, &df_op_transpose, 1, &x, &a);
}
