/* common.c — shape helpers shared by the op files. */
#include <string.h>
#include "common.h"
#include "elementwise.h"
#include "isa_kernels.h"

bool df_check_shape_arg(df_graph *g, const char *op, int ndim, const int64_t *shape)
{
    if (!g) {
        df_error(DF_ERR_ARG, "op '%s': null graph", op);
        return false;
    }
    if (ndim >= 0 && ndim <= DF_MAX_DIMS && (ndim == 0 || shape)) return true;
    df_graph_fail(g, DF_ERR_ARG, "op '%s': target rank %d not in 0..%d or shape is NULL", op, ndim, DF_MAX_DIMS);
    return false;
}

df_status df_check_indices(const int32_t *idx, int64_t count, int64_t limit)
{
    for (int64_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= limit)
            return df_error(DF_ERR_RANGE, "index %d at position %lld is outside [0, %lld)", idx[i], (long long)i,
                            (long long)limit);
    return DF_OK;
}

df_status df_require_f32(df_node *n, int input)
{
    if (n->in[input]->dtype == DF_F32) return DF_OK;
    return df_op_error(n, DF_ERR_DTYPE, "input %d must be f32, got %s", input,
                       df_dtype_name(n->in[input]->dtype));
}

df_status df_infer_unary(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    n->dtype = DF_F32;
    n->ndim = n->in[0]->ndim;
    memcpy(n->shape, n->in[0]->shape, sizeof n->shape);
    return DF_OK;
}

df_status df_infer_unary_axis(df_node *n)
{
    df_status st = df_infer_unary(n);
    if (st != DF_OK) return st;
    df_axis_attrs *a = DF_ATTRS(n, df_axis_attrs);
    int axis = df_axis(a->axis, n->ndim);
    if (axis < 0) {
        char sx[64];
        return df_op_error(n, DF_ERR_SHAPE, "axis %lld out of range for shape %s", (long long)a->axis,
                           df_node_shape_str(n->in[0], sx, sizeof sx));
    }
    a->axis = axis;
    return DF_OK;
}

df_status df_infer_broadcast(df_node *n)
{
    df_status st;
    if ((st = df_require_f32(n, 0)) != DF_OK || (st = df_require_f32(n, 1)) != DF_OK) return st;
    const df_node *a = n->in[0], *b = n->in[1];
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t x = da >= 0 ? a->shape[da] : 1, y = db >= 0 ? b->shape[db] : 1;
        if (x != y && x != 1 && y != 1) {
            char sa[64], sb[64];
            return df_op_error(n, DF_ERR_SHAPE, "cannot broadcast shapes %s and %s (axis %d: %lld vs %lld)",
                               df_node_shape_str(a, sa, sizeof sa), df_node_shape_str(b, sb, sizeof sb), d,
                               (long long)x, (long long)y);
        }
        n->shape[d] = x == 1 ? y : x;
    }
    n->ndim = nd;
    n->dtype = DF_F32;
    return DF_OK;
}

void df_for_each_lane(const float *x, float *y, int ndim, const int64_t *shape, int axis, df_lane_fn lane)
{
    int64_t len = shape[axis], inner = df_shape_numel(ndim - axis - 1, shape + axis + 1);
    int64_t N = df_shape_numel(ndim, shape), lanes = len ? N / len : 0;
    DF_PAR_FOR(N > DF_PAR_MIN,
    for (int64_t l = 0; l < lanes; l++) {
        int64_t start = l / inner * len * inner + l % inner;
        lane(x + start, y + start, len, inner);
    });
}

float df_lane_max(const float *x, int64_t stride, int64_t len)
{
    float m[DF_LANE_SUMS];
    for (int l = 0; l < DF_LANE_SUMS; l++) m[l] = -INFINITY;
    int64_t k = 0;
    for (; k + DF_LANE_SUMS <= len; k += DF_LANE_SUMS)
        for (int l = 0; l < DF_LANE_SUMS; l++) {
            const float v = x[(k + l) * stride];
            m[l] = v > m[l] ? v : m[l];
        }
    for (; k < len; k++) m[0] = x[k * stride] > m[0] ? x[k * stride] : m[0];
    float r = m[0];
    for (int l = 1; l < DF_LANE_SUMS; l++) r = m[l] > r ? m[l] : r;
    return r;
}

double df_exp_shifted_sum(const float *x, int64_t stride, int64_t len, float shift, float *y)
{
    enum { CHUNK = 256 };     /* a multiple of DF_LANE_SUMS: e[j] goes to lane j mod DF_LANE_SUMS */
    float e[CHUNK];
    double lanes[DF_LANE_SUMS] = {0};
    for (int64_t k0 = 0; k0 < len; k0 += CHUNK) {
        const int64_t n = len - k0 < CHUNK ? len - k0 : CHUNK;
        const float *src = x + k0 * stride;
        if (stride != 1) {
            for (int64_t j = 0; j < n; j++) e[j] = src[j * stride];
            src = e;
        }
        df_ew_run(DF_EW_SUB, src, 1, &shift, 0, e, n);
        df_ew_run(DF_EW_EXP, e, 1, NULL, 0, e, n);
        int64_t j = 0;
        for (; j + DF_LANE_SUMS <= n; j += DF_LANE_SUMS)
            for (int l = 0; l < DF_LANE_SUMS; l++) lanes[l] += e[j + l];
        for (; j < n; j++) lanes[j % DF_LANE_SUMS] += e[j];
        if (y)
            for (j = 0; j < n; j++) y[(k0 + j) * stride] = e[j];
    }
    double sum = 0;
    for (int l = 0; l < DF_LANE_SUMS; l++) sum += lanes[l];
    return sum;
}

void df_axis_view(const df_node *x, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = df_shape_numel(axis, x->shape);
    *len = x->shape[axis];
    *inner = df_shape_numel(x->ndim - axis - 1, x->shape + axis + 1);
}

void df_row_major_strides(const df_node *x, int64_t *strides)
{
    int64_t stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        strides[d] = stride;
        stride *= x->shape[d];
    }
}

void df_broadcast_strides(const df_node *x, int out_ndim, const int64_t *out_shape, int64_t *strides)
{
    int64_t stride = 1;
    for (int d = out_ndim - 1; d >= 0; d--) {
        int dx = d - (out_ndim - x->ndim);
        int64_t size = dx >= 0 ? x->shape[dx] : 1;
        strides[d] = (size == 1 && out_shape[d] != 1) || dx < 0 ? 0 : stride;
        stride *= size;
    }
}

df_node *df_unbroadcast(df_graph *g, df_node *grad, df_node *like)
{
    if (!grad) return NULL;
    if (df_node_same_shape(grad, like)) {       /* no reduction: checked again at each plan */
        df_graph_assume_same_shape(g, grad, like);
        return grad;
    }
    return like->dyn ? df_sum_to_like(g, grad, like) : df_sum_to(g, grad, like->ndim, like->shape);
}

df_node *df_reshape_like(df_graph *g, df_node *x, df_node *like)
{
    if (!x) return NULL;
    if (df_node_same_shape(x, like)) {
        df_graph_assume_same_shape(g, x, like);
        return x;
    }
    return like->dyn ? df_reshape_to_like(g, x, like, 0) : df_reshape(g, x, like->ndim, like->shape);
}

df_node *df_like_make(df_graph *g, const df_op_def *op, df_node *x, df_node *like, const void *attrs)
{
    df_node *in[2] = {x, like};
    df_node *n = df_node_new(g, op, 2, in, attrs);
    if (n) n->shape_only = 1u << 1;
    return n;
}

int df_target_shape(const df_node *n, int ndim, const int64_t *shape, int64_t *out)
{
    if (n->n_in == 2) {
        memcpy(out, n->in[1]->shape, sizeof(int64_t) * DF_MAX_DIMS);
        return n->in[1]->ndim;
    }
    if (ndim < 0 || ndim > DF_MAX_DIMS) return -1;    /* e.g. a corrupt saved graph: the caller refuses it */
    for (int d = 0; d < ndim; d++) out[d] = shape[d];
    return ndim;
}

/* out[j] = scale * the sum over k < len of x[k * stride + j], for j < width
 * <= DF_SUM_COLUMNS_MAX, each column summed in double in the order of k.
 * Every vector lane is one column's scalar sum (adds, then one multiply: no
 * contraction either), so every instruction set's copy gives its bits. */
static inline __attribute__((always_inline)) void df_sum_columns_body(const float *x, int64_t len, int64_t stride,
                                                                      int64_t width, float scale, float *out)
{
    double acc[DF_SUM_COLUMNS_MAX] = {0};
    for (int64_t k = 0; k < len; k++) {
        const float *row = x + k * stride;
#pragma omp simd
        for (int64_t j = 0; j < width; j++) acc[j] += row[j];
    }
    for (int64_t j = 0; j < width; j++) out[j] = (float)(acc[j] * scale);
}
DF_ISA_KERNEL(df_sum_columns, (const float *x, int64_t len, int64_t stride, int64_t width, float scale, float *out),
              (x, len, stride, width, scale, out))

void df_reduce_middle(const float *x, float *out, int64_t rows, int64_t len, int64_t inner, float scale)
{
    int64_t total = rows * inner;
    if (inner == 1) {
        /* Contiguous rows: one thread sums each row in order. */
        DF_PAR_FOR(rows * len > DF_PAR_MIN,
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0;
            for (int64_t k = 0; k < len; k++) acc += x[r * len + k];
            out[r] = (float)(acc * scale);
        });
        return;
    }
    /* Strided case: each task a block of DF_SUM_COLUMNS_MAX output columns
     * (so the threads share even a narrow output, such as a bias gradient),
     * walking the reduced axis row by row, so reads stay contiguous and each
     * output is summed in the same order whatever the thread count. */
    int64_t blocks_per_row = (inner + DF_SUM_COLUMNS_MAX - 1) / DF_SUM_COLUMNS_MAX;
    DF_PAR_FOR(total * len > DF_PAR_MIN,
    for (int64_t blk = 0; blk < rows * blocks_per_row; blk++) {
        int64_t r = blk / blocks_per_row, j0 = blk % blocks_per_row * DF_SUM_COLUMNS_MAX;
        int64_t width = inner - j0 < DF_SUM_COLUMNS_MAX ? inner - j0 : DF_SUM_COLUMNS_MAX;
        df_sum_columns(x + r * len * inner + j0, len, inner, width, scale, out + r * inner + j0);
    });
}

void df_reduce_axes(const float *x, int ndim, const int64_t *shape, unsigned mask, float scale,
                    float *out, float *tmp)
{
    int64_t cur[DF_MAX_DIMS];
    for (int d = 0; d < ndim; d++) cur[d] = shape[d];
    const float *src = x;
    /* Reduce runs of adjacent axes from the last run to the first; with at
     * most 4 dims there are at most 2 runs, so tmp and out suffice. */
    int runs = 0, starts[DF_MAX_DIMS], ends[DF_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (!(mask >> d & 1)) continue;
        if (runs && ends[runs - 1] == d) ends[runs - 1] = d + 1;
        else { starts[runs] = d; ends[runs] = d + 1; runs++; }
    }
    if (runs == 0) {
        int64_t n = df_shape_numel(ndim, shape);
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
        return;
    }
    for (int r = runs - 1; r >= 0; r--) {
        int64_t rows = df_shape_numel(starts[r], cur);
        int64_t len = df_shape_numel(ends[r] - starts[r], cur + starts[r]);
        int64_t inner = df_shape_numel(ndim - ends[r], cur + ends[r]);
        float *dst = r == 0 ? out : tmp;
        df_reduce_middle(src, dst, rows, len, inner, r == 0 ? scale : 1.0f);
        for (int d = starts[r]; d < ends[r]; d++) cur[d] = 1;
        src = dst;
    }
}

df_status df_infer_reduce(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    const df_reduce_attrs *a = DF_ATTRS(n, df_reduce_attrs);
    unsigned mask = a->axes;
    n->dtype = DF_F32;
    n->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!(mask >> d & 1)) n->shape[n->ndim++] = x->shape[d];
        else if (a->keepdims) n->shape[n->ndim++] = 1;
    }
    /* A scratch buffer is needed only when the reduced axes form two runs. */
    int runs = 0;
    for (int d = 0; d < x->ndim; d++)
        if ((mask >> d & 1) && (d == 0 || !(mask >> (d - 1) & 1))) runs++;
    n->aux_bytes = runs > 1 ? (size_t)x->numel * sizeof(float) : 0;
    return DF_OK;
}

df_node *df_reduce_make(df_graph *g, const df_op_def *op, df_node *x, const int *axes, int n_axes,
                        bool keepdims)
{
    if (!g) {
        df_error(DF_ERR_ARG, "op '%s': null graph", op->name);
        return NULL;
    }
    if (!x) {
        df_graph_fail(g, DF_ERR_ARG, "op '%s': input 0 is NULL", op->name);
        return NULL;
    }
    unsigned mask = 0;
    if (!axes || n_axes == 0) mask = (1u << x->ndim) - 1;
    for (int i = 0; axes && i < n_axes; i++) {
        int a = df_axis(axes[i], x->ndim);
        char s[64];
        if (a < 0) {
            df_graph_fail(g, DF_ERR_SHAPE, "op '%s': axis %d out of range for shape %s", op->name, axes[i],
                          df_node_shape_str(x, s, sizeof s));
            return NULL;
        }
        mask |= 1u << a;
    }
    return df_node_new(g, op, 1, &x, &(df_reduce_attrs){.axes = mask, .keepdims = keepdims});
}

void df_reduce_keep_shape(const df_node *n, int64_t *shape)
{
    const df_node *x = n->in[0];
    unsigned axes = DF_ATTRS(n, df_reduce_attrs)->axes;
    for (int d = 0; d < x->ndim; d++) shape[d] = (axes >> d & 1) ? 1 : x->shape[d];
}
