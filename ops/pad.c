/* pad.c — a zero tensor of a given shape with x (f32 or i32, copied as 4-byte
 * words) placed at begin: the adjoint of slice. x must fit: 0 <= begin[d] and
 * begin[d] + x.shape[d] <= shape[d]; the target rank is x's (checked by the
 * constructor). The gradient is the slice of dy where x sits. */
#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    int64_t begin[DF_MAX_DIMS];
    int64_t shape[DF_MAX_DIMS];   /* target (unused in the like form: input 1's shape) */
} pad_attrs;
DF_ATTRS_END

static df_status pad_infer(df_node *n)
{
    const df_node *x = n->in[0];
    const pad_attrs *a = DF_ATTRS(n, pad_attrs);
    for (int d = 0; d < x->ndim; d++) {
        /* the shape-following form (gradients, dynamic shapes) pads to input 1's shape */
        int64_t begin = a->begin[d], dim = n->n_in == 2 ? n->in[1]->shape[d] : a->shape[d];
        if (begin < 0 || dim < 0 || begin > dim || x->shape[d] > dim - begin) {   /* no overflow */
            char sx[64], sb[64], st[64];
            return df_op_error(n, DF_ERR_SHAPE, "input %s placed at begin %s does not fit in shape %s (axis %d)",
                               df_node_shape_str(x, sx, sizeof sx), df_shape_str(x->ndim, a->begin, sb, sizeof sb),
                               df_shape_str(x->ndim, a->shape, st, sizeof st), d);
        }
        n->shape[d] = dim;
    }
    n->ndim = x->ndim;
    n->dtype = x->dtype;
    return DF_OK;
}

/* Where output row r (an index over all axes but the last) reads x, or -1 if
 * the row lies outside x's box and is all zeros. */
static int64_t source_row_offset(const df_node *n, const int64_t *x_stride, int64_t r)
{
    const df_node *x = n->in[0];
    const int64_t *begin = DF_ATTRS(n, pad_attrs)->begin;
    int64_t off = 0;
    for (int d = n->ndim - 2; d >= 0; d--) {
        int64_t at = r % n->shape[d] - begin[d];
        r /= n->shape[d];
        if (at < 0 || at >= x->shape[d]) return -1;
        off += at * x_stride[d];
    }
    return off;
}

// x (d0,..,dk) -> y (shape); y = 0 except y[begin + i] = x[i]. Each output
// row is written once (zeros, x's row, zeros), so threads never share a row.
static df_status pad_forward(df_node *n)
{
    const df_node *x = n->in[0];
    const uint32_t *X = x->data;
    uint32_t *Y = n->data;
    int nd = n->ndim;
    int64_t x_stride[DF_MAX_DIMS];
    df_row_major_strides(x, x_stride);
    int64_t N = n->numel, inner = nd ? n->shape[nd - 1] : 1, rows = inner ? N / inner : 0;
    int64_t lead = nd ? DF_ATTRS(n, pad_attrs)->begin[nd - 1] : 0, width = nd ? x->shape[nd - 1] : 1;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        uint32_t *row = Y + r * inner;
        int64_t off = source_row_offset(n, x_stride, r);
        if (off < 0) {
            memset(row, 0, (size_t)inner * sizeof *row);
            continue;
        }
        memset(row, 0, (size_t)lead * sizeof *row);
        memcpy(row + lead, X + off, (size_t)width * sizeof *row);
        memset(row + lead + width, 0, (size_t)(inner - lead - width) * sizeof *row);
    }
    return DF_OK;
}

static df_status pad_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    df_node *x = n->in[0];
    const int64_t *begin = DF_ATTRS(n, pad_attrs)->begin;
    dx[0] = x->dyn ? df_slice_like(g, dy, begin, x) : df_slice(g, dy, begin, x->shape);
    return g->status;
}

static df_node *pad_1d(df_graph *g, df_node **in) { return df_pad(g, in[0], (int64_t[]){2}, 1, (int64_t[]){7}); }
static df_node *pad_2d(df_graph *g, df_node **in)
{
    return df_pad(g, in[0], (int64_t[]){1, 1}, 2, (int64_t[]){3, 4});
}
static df_node *pad_3d(df_graph *g, df_node **in)
{
    return df_pad(g, in[0], (int64_t[]){0, 1, 1}, 3, (int64_t[]){2, 3, 4});
}

static const df_gradcheck_case pad_cases[] = {
    {"(3) into (7) at 2", 1, {DF_GC_F32(3)}, pad_1d, 0, 0},
    {"(2,2) into (3,4) at (1,1)", 1, {DF_GC_F32(2, 2)}, pad_2d, 0, 0},
    {"(2,1,3) into (2,3,4) at (0,1,1) (leading axes)", 1, {DF_GC_F32(2, 1, 3)}, pad_3d, 0, 0},
    {0},
};

/* x read, y written (zeros around x's box). */
static void pad_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 4 * ((double)n->numel + (double)n->in[0]->numel)};
}

const df_op_def df_op_pad = {
    .name = "pad", .infer = pad_infer, .forward = pad_forward,
    .backward = pad_backward, .gradcheck = pad_cases, .attrs_size = sizeof(pad_attrs),
    .min_inputs = 1, .max_inputs = 2,
    .cost = pad_cost,
};

df_node *df_pad(df_graph *g, df_node *x, const int64_t *begin, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > DF_MAX_DIMS || (ndim > 0 && (!begin || !shape))) {
        df_graph_fail(g, DF_ERR_ARG, "op 'pad': bad target rank %d or NULL begin/shape", ndim);
        return NULL;
    }
    if (x && ndim != x->ndim) {
        char sx[64], st[64];
        df_graph_fail(g, DF_ERR_SHAPE, "op 'pad': input %s has rank %d but target shape %s has rank %d",
                      df_node_shape_str(x, sx, sizeof sx), x->ndim, df_shape_str(ndim, shape, st, sizeof st), ndim);
        return NULL;
    }
    pad_attrs a = {.begin = {0}};
    for (int d = 0; d < ndim; d++) {
        a.begin[d] = begin[d];
        a.shape[d] = shape[d];
    }
    return df_node_new(g, &df_op_pad, 1, &x, &a);
}

df_node *df_pad_like(df_graph *g, df_node *x, const int64_t *begin, df_node *like)
{
    pad_attrs a = {.begin = {0}};
    for (int d = 0; like && d < like->ndim; d++) a.begin[d] = begin[d];
    return df_like_make(g, &df_op_pad, x, like, &a);
}
