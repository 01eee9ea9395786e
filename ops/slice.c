/* slice.c — the box x[begin[d] : begin[d] + size[d]] of x (f32 or i32: both
 * are 4-byte elements, copied as bits). A size of -1 means "to the end of the
 * axis"; the resolved sizes are the output shape. The gradient is dy padded
 * with zeros back to x's shape (pad is slice's adjoint). */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t begin[DF_MAX_DIMS];
    int64_t size[DF_MAX_DIMS];    /* as given (-1: to the end); unused in the like form: input 1's shape */
} slice_attrs;
DF_ATTRS_END

static df_status slice_infer(df_node *n)
{
    const df_node *x = n->in[0];
    const slice_attrs *a = DF_ATTRS(n, slice_attrs);
    for (int d = 0; d < x->ndim; d++) {
        /* the shape-following form (gradients, dynamic shapes) takes input 1's shape as the sizes */
        int64_t begin = a->begin[d], size = n->n_in == 2 ? n->in[1]->shape[d] : a->size[d], dim = x->shape[d];
        bool begin_ok = begin >= 0 && begin <= dim;
        if (size == -1 && begin_ok) size = dim - begin;
        if (!begin_ok || size < 0 || size > dim - begin) {   /* written so that nothing overflows */
            char sx[64], sb[64], ss[64];
            return df_op_error(n, DF_ERR_SHAPE, "begin %lld, size %lld on axis %d is outside shape %s (begin %s, size %s)",
                               (long long)begin, (long long)a->size[d], d, df_node_shape_str(x, sx, sizeof sx),
                               df_shape_str(x->ndim, a->begin, sb, sizeof sb),
                               df_shape_str(x->ndim, a->size, ss, sizeof ss));
        }
        n->shape[d] = size;
    }
    n->ndim = x->ndim;
    n->dtype = x->dtype;
    return DF_OK;
}

// x (d0,..,dk) -> y (size0,..,sizek); y[i] = x[begin + i], one memcpy per row
static df_status slice_forward(df_node *n)
{
    const df_node *x = n->in[0];
    const uint32_t *X = x->data;
    uint32_t *Y = n->data;
    int nd = n->ndim;
    int64_t x_stride[DF_MAX_DIMS];
    df_row_major_strides(x, x_stride);
    int64_t N = n->numel, inner = nd ? n->shape[nd - 1] : 1, rows = inner ? N / inner : 0;
    const int64_t *begin = DF_ATTRS(n, slice_attrs)->begin;
    int64_t first = nd ? begin[nd - 1] : 0;
    DF_PAR_FOR(N > DF_PAR_MIN,
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = first;
        for (int d = nd - 2; d >= 0; d--) {
            off += (begin[d] + rem % n->shape[d]) * x_stride[d];
            rem /= n->shape[d];
        }
        memcpy(Y + r * inner, X + off, (size_t)inner * sizeof *Y);
    });
    return DF_OK;
}

static df_status slice_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    df_node *x = n->in[0];
    const int64_t *begin = DF_ATTRS(n, slice_attrs)->begin;
    dx[0] = x->dyn ? df_pad_like(g, dy, begin, x) : df_pad(g, dy, begin, x->ndim, x->shape);
    return g->status;
}

static df_node *slice_1d(df_graph *g, df_node **in) { return df_slice(g, in[0], (int64_t[]){2}, (int64_t[]){3}); }
static df_node *slice_2d(df_graph *g, df_node **in)
{
    return df_slice(g, in[0], (int64_t[]){1, 1}, (int64_t[]){-1, 2});
}
static df_node *slice_3d(df_graph *g, df_node **in)
{
    return df_slice(g, in[0], (int64_t[]){0, 1, 1}, (int64_t[]){2, 2, -1});
}

static const df_gradcheck_case slice_cases[] = {
    {"(6) [2:5]", 1, {DF_GC_F32(6)}, slice_1d, 0, 0},
    {"(3,4) [1:, 1:3]", 1, {DF_GC_F32(3, 4)}, slice_2d, 0, 0},
    {"(2,3,4) [:, 1:3, 1:] (leading axes)", 1, {DF_GC_F32(2, 3, 4)}, slice_3d, 0, 0},
    {0},
};

/* A copy of the box: only its elements of x are read. */
static void slice_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

/* x[..., begin : begin + size, ...] on one axis (size -1: to the end), the
 * other axes whole. */
static df_node *slice_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    int nd = df_node_ndim(in[0]), axis = (int)attrs[0] < 0 ? (int)attrs[0] + nd : (int)attrs[0];
    if (axis < 0 || axis >= nd) {
        df_graph_set_error(g, DF_ERR_ARG, "slice: axis %g is outside rank %d", attrs[0], nd);
        return NULL;
    }
    int64_t begin[DF_MAX_DIMS] = {0}, size[DF_MAX_DIMS];
    for (int d = 0; d < nd; d++) size[d] = -1;
    begin[axis] = (int64_t)attrs[1];
    size[axis] = (int64_t)attrs[2];
    return df_slice(g, in[0], begin, size);
}

static const df_bench_def slice_bench = {
    .n_inputs = 1, .attrs = {"axis", "begin", "size"}, .defaults = {"-1", "1", "-1"}, .build = slice_bench_build,
    .shapes = {"16x33", "64x100x4096 begin=1024 size=1024", "6400x4096"},
};

const df_op_def df_op_slice = {
    .name = "slice", .infer = slice_infer, .forward = slice_forward,
    .backward = slice_backward, .gradcheck = slice_cases, .attrs_size = sizeof(slice_attrs),
    .min_inputs = 1, .max_inputs = 2,
    .cost = slice_cost, .bench = &slice_bench,
};

df_node *df_slice(df_graph *g, df_node *x, const int64_t *begin, const int64_t *size)
{
    if (x && x->ndim > 0 && (!begin || !size)) {
        df_graph_fail(g, DF_ERR_ARG, "op 'slice': %s is NULL", begin ? "size" : "begin");
        return NULL;
    }
    slice_attrs a = {.begin = {0}};
    for (int d = 0; x && d < x->ndim; d++) {
        a.begin[d] = begin[d];
        a.size[d] = size[d];
    }
    return df_node_new(g, &df_op_slice, 1, &x, &a);
}

df_node *df_slice_like(df_graph *g, df_node *x, const int64_t *begin, df_node *like)
{
    slice_attrs a = {.begin = {0}};
    for (int d = 0; like && d < like->ndim; d++) a.begin[d] = begin[d];
    return df_like_make(g, &df_op_slice, x, like, &a);
}
