/* matmul.c — op(a) @ op(b) through df_sgemm (bf16 operands, fp32 sums under
 * DF_PRECISION_BF16). Operands of rank > 2 are
 * viewed as 2-D by folding leading dims into rows, so a dense layer on a
 * sequence is one GEMM: a (B,T,K) @ w (K,N) -> (B,T,N). */
#include <string.h>
#include "common.h"

typedef struct gemm_dims { int64_t M, N, K, lda, ldb; } gemm_dims;

/* Rows and columns of x viewed as a matrix. */
DF_ATTRS_BEGIN
typedef struct { bool transpose_a, transpose_b; } matmul_attrs;
DF_ATTRS_END

static void as_matrix(const df_node *x, int64_t *rows, int64_t *cols)
{
    *cols = x->shape[x->ndim - 1];
    *rows = *cols ? df_shape_numel(x->ndim, x->shape) / *cols : 0;
}

static gemm_dims dims_of(const df_node *n, int64_t *k_of_b)
{
    int64_t ra, ca, rb, cb;
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    bool ta = t->transpose_a, tb = t->transpose_b;
    as_matrix(n->in[0], &ra, &ca);
    as_matrix(n->in[1], &rb, &cb);
    *k_of_b = tb ? cb : rb;
    return (gemm_dims){.M = ta ? ca : ra, .K = ta ? ra : ca, .N = tb ? rb : cb, .lda = ca, .ldb = cb};
}

static df_status matmul_infer(df_node *n)
{
    df_status st;
    if ((st = df_require_f32(n, 0)) != DF_OK || (st = df_require_f32(n, 1)) != DF_OK) return st;
    const df_node *a = n->in[0], *b = n->in[1];
    char sa[64], sb[64];
    if (a->ndim < 2 || b->ndim < 2)
        return df_op_error(n, DF_ERR_SHAPE, "operands must have rank >= 2, got %s and %s",
                           df_node_shape_str(a, sa, sizeof sa), df_node_shape_str(b, sb, sizeof sb));
    int64_t kb;
    gemm_dims d = dims_of(n, &kb);
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    if (d.K != kb)
        return df_op_error(n, DF_ERR_SHAPE, "inner dimensions differ: %s%s @ %s%s gives %lld vs %lld",
                           df_node_shape_str(a, sa, sizeof sa), t->transpose_a ? "^T" : "",
                           df_node_shape_str(b, sb, sizeof sb), t->transpose_b ? "^T" : "",
                           (long long)d.K, (long long)kb);
    n->dtype = DF_F32;
    if (!t->transpose_a && a->ndim > 2) {          /* keep a's leading dims */
        n->ndim = a->ndim;
        memcpy(n->shape, a->shape, sizeof n->shape);
        n->shape[n->ndim - 1] = d.N;
    } else {
        n->ndim = 2;
        n->shape[0] = d.M;
        n->shape[1] = d.N;
    }
    return DF_OK;
}

// a (M,K) or (K,M) if transpose_a, b (K,N) or (N,K) if transpose_b -> y (M,N)
static df_status matmul_forward(df_node *n)
{
    int64_t kb;
    gemm_dims d = dims_of(n, &kb);
    if (d.K == 0) {
        memset(n->data, 0, (size_t)n->numel * sizeof(float));
        return DF_OK;
    }
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    df_sgemm_prec(df_get_precision(), t->transpose_a, t->transpose_b, d.M, d.N, d.K, 1.0f, DF_F32P(n->in[0]), d.lda,
             DF_F32P(n->in[1]), d.ldb, 0.0f, DF_F32P(n), d.N);
    return DF_OK;
}

/* With y = op(A) op(B): d op(A) = dy op(B)^T and d op(B) = op(A)^T dy, each
 * written as one more matmul with the right transpose flags. */
static df_status matmul_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *a = n->in[0], *b = n->in[1];
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    bool ta = t->transpose_a, tb = t->transpose_b;
    if (need[0]) dx[0] = df_reshape_like(g, ta ? df_matmul(g, b, dy, tb, true) : df_matmul(g, dy, b, false, !tb), a);
    if (need[1]) dx[1] = df_reshape_like(g, tb ? df_matmul(g, dy, a, true, ta) : df_matmul(g, a, dy, !ta, false), b);
    return g->status;
}

static df_node *mm_nn(df_graph *g, df_node **in) { return df_matmul(g, in[0], in[1], false, false); }
static df_node *mm_tn(df_graph *g, df_node **in) { return df_matmul(g, in[0], in[1], true, false); }
static df_node *mm_nt(df_graph *g, df_node **in) { return df_matmul(g, in[0], in[1], false, true); }
static df_node *mm_tt(df_graph *g, df_node **in) { return df_matmul(g, in[0], in[1], true, true); }

static const df_gradcheck_case matmul_cases[] = {
    {"a @ b", 2, {DF_GC_F32(2, 3), DF_GC_F32(3, 4)}, mm_nn, 0, 0},
    {"a^T @ b", 2, {DF_GC_F32(3, 2), DF_GC_F32(3, 4)}, mm_tn, 0, 0},
    {"a @ b^T", 2, {DF_GC_F32(2, 3), DF_GC_F32(4, 3)}, mm_nt, 0, 0},
    {"a^T @ b^T", 2, {DF_GC_F32(3, 2), DF_GC_F32(4, 3)}, mm_tt, 0, 0},
    {"sequence (B,T,K) @ (K,N)", 2, {DF_GC_F32(2, 3, 4), DF_GC_F32(4, 2)}, mm_nn, 0, 0},
    {"(B,T,K)^T @ (B,T,N)", 2, {DF_GC_F32(2, 2, 3), DF_GC_F32(2, 2, 2)}, mm_tn, 0, 0},
    {0},
};

/* 2MNK FLOPs; A, B and C each moved once. */
static void matmul_cost(const df_node *n, df_op_cost *out)
{
    int64_t kb;
    gemm_dims d = dims_of(n, &kb);
    *out = (df_op_cost){.flops = 2.0 * d.M * d.N * d.K, .bytes = df_cost_io_bytes(n)};
}

static df_node *matmul_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_matmul(g, in[0], in[1], attrs[0] != 0, attrs[1] != 0);
}

static const df_bench_def matmul_bench = {
    .n_inputs = 2, .attrs = {"transpose_a", "transpose_b"}, .defaults = {"0", "0"},
    .build = matmul_bench_build,
    .shapes = {"64x256,256x256", "64x1024,1024x4096", "1024x1024,1024x1024"},
};

const df_op_def df_op_matmul = {
    .name = "matmul", .infer = matmul_infer, .forward = matmul_forward,
    .backward = matmul_backward, .gradcheck = matmul_cases, .attrs_size = sizeof(matmul_attrs),
    .cost = matmul_cost, .bench = &matmul_bench,
    .min_inputs = 2, .max_inputs = 2, .bool_attrs = 0x3,
};

df_node *df_matmul(df_graph *g, df_node *a, df_node *b, bool transpose_a, bool transpose_b)
{
    df_node *in[2] = {a, b};
    matmul_attrs attrs = {.transpose_a = transpose_a, .transpose_b = transpose_b};
    return df_node_new(g, &df_op_matmul, 2, in, &attrs);
}

/* ------------------------------------------------------------ batch_matmul
 * op(a) @ op(b) on the last two axes, NumPy-broadcast over the leading
 * (batch) axes: a (..., M, K) @ b (..., K, N) -> (..., M, N), transpose flags
 * swapping the last two axes of their operand (attention's q @ k^T is
 * (B,h,T,d) @ (B,h,T,d)^T). Each output matrix is one GEMM; batches run in
 * parallel, one thread per GEMM, so results never depend on the thread
 * count. A batch of a against one shared b with no transpose of a folds into
 * a single GEMM, as matmul does. */

static int64_t batch_numel(const df_node *x) { return df_shape_numel(x->ndim - 2, x->shape); }

static gemm_dims batch_dims_of(const df_node *n, int64_t *k_of_b)
{
    const df_node *a = n->in[0], *b = n->in[1];
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    int64_t ra = a->shape[a->ndim - 2], ca = a->shape[a->ndim - 1];
    int64_t rb = b->shape[b->ndim - 2], cb = b->shape[b->ndim - 1];
    *k_of_b = t->transpose_b ? cb : rb;
    return (gemm_dims){.M = t->transpose_a ? ca : ra, .K = t->transpose_a ? ra : ca,
                       .N = t->transpose_b ? rb : cb, .lda = ca, .ldb = cb};
}

static df_status batch_matmul_infer(df_node *n)
{
    df_status st;
    if ((st = df_require_f32(n, 0)) != DF_OK || (st = df_require_f32(n, 1)) != DF_OK) return st;
    const df_node *a = n->in[0], *b = n->in[1];
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    char sa[64], sb[64];
    if (a->ndim < 2 || b->ndim < 2)
        return df_op_error(n, DF_ERR_SHAPE, "operands must have rank >= 2, got %s and %s",
                           df_node_shape_str(a, sa, sizeof sa), df_node_shape_str(b, sb, sizeof sb));
    int64_t kb;
    gemm_dims d = batch_dims_of(n, &kb);
    if (d.K != kb)
        return df_op_error(n, DF_ERR_SHAPE, "inner dimensions differ: %s%s @ %s%s gives %lld vs %lld",
                           df_node_shape_str(a, sa, sizeof sa), t->transpose_a ? "^T" : "",
                           df_node_shape_str(b, sb, sizeof sb), t->transpose_b ? "^T" : "",
                           (long long)d.K, (long long)kb);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd - 2; i++) {            /* batch axes, aligned from the right */
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return df_op_error(n, DF_ERR_SHAPE, "batch dimensions do not broadcast: %s @ %s (axis %d: %lld vs %lld)",
                               df_node_shape_str(a, sa, sizeof sa), df_node_shape_str(b, sb, sizeof sb), i,
                               (long long)da, (long long)db);
        n->shape[i] = da == 1 ? db : da;
    }
    n->dtype = DF_F32;
    n->ndim = nd;
    n->shape[nd - 2] = d.M;
    n->shape[nd - 1] = d.N;
    return DF_OK;
}

/* Offset, in matrices, of x's operand for output batch p (x broadcast over
 * the output's batch axes). */
static int64_t batch_offset(const df_node *x, const df_node *out, int64_t p)
{
    int64_t off = 0, stride = 1;
    for (int i = out->ndim - 3, ix = x->ndim - 3; i >= 0; i--, ix--) {
        int64_t idx = p % out->shape[i];
        p /= out->shape[i];
        if (ix < 0) continue;
        if (x->shape[ix] != 1) off += idx * stride;
        stride *= x->shape[ix];
    }
    return off;
}

// a (..., M, K) or (..., K, M), b (..., K, N) or (..., N, K) -> y (..., M, N)
static df_status batch_matmul_forward(df_node *n)
{
    int64_t kb;
    gemm_dims d = batch_dims_of(n, &kb);
    const df_node *a = n->in[0], *b = n->in[1];
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    if (d.K == 0 || n->numel == 0) {
        memset(n->data, 0, (size_t)n->numel * sizeof(float));
        return DF_OK;
    }
    const float *A = DF_F32P(a), *B = DF_F32P(b);
    float *Y = DF_F32P(n);
    int64_t batches = batch_numel(n);
    const df_precision prec = df_get_precision();      /* the calling thread's, also for the loop's threads */
    if (batch_numel(b) == 1 && !t->transpose_a && batch_numel(a) == batches) {   /* one shared b: one GEMM */
        df_sgemm_prec(prec, false, t->transpose_b, batches * d.M, d.N, d.K, 1.0f, A, d.lda, B, d.ldb, 0.0f, Y, d.N);
        return DF_OK;
    }
    int64_t a_size = d.M * d.K, b_size = d.K * d.N, y_size = d.M * d.N;
    DF_PAR_FOR(batches > 1,
    for (int64_t p = 0; p < batches; p++)
        df_sgemm_prec(prec, t->transpose_a, t->transpose_b, d.M, d.N, d.K, 1.0f, A + batch_offset(a, n, p) * a_size,
                      d.lda, B + batch_offset(b, n, p) * b_size, d.ldb, 0.0f, Y + p * y_size, d.N););
    return DF_OK;
}

/* True when x has no batch of its own (rank 2 or batch axes all 1) and the
 * output has one, which is then the other operand's: x's gradient sums over
 * that batch, which a folded matmul does in one GEMM. */
static bool shared_over_a_batch(const df_node *x, const df_node *out)
{
    return batch_numel(x) == 1 && batch_numel(out) > 1;
}

/* y = op(A) op(B) per batch: d op(A) = dy op(B)^T, d op(B) = op(A)^T dy, then
 * summed over the batch axes the operand was broadcast along. */
static df_status batch_matmul_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *a = n->in[0], *b = n->in[1];
    const matmul_attrs *t = DF_ATTRS(n, matmul_attrs);
    bool ta = t->transpose_a, tb = t->transpose_b;
    if (need[0])
        dx[0] = df_unbroadcast(g, ta ? df_batch_matmul(g, b, dy, tb, true) : df_batch_matmul(g, dy, b, false, !tb), a);
    if (need[1]) {
        if (shared_over_a_batch(b, n) && !ta)     /* sum_p A_p^T dy_p = (rows of A)^T (rows of dy) */
            dx[1] = df_reshape_like(g, tb ? df_matmul(g, dy, a, true, false) : df_matmul(g, a, dy, true, false), b);
        else
            dx[1] = df_unbroadcast(g, tb ? df_batch_matmul(g, dy, a, true, ta) : df_batch_matmul(g, a, dy, !ta, false), b);
    }
    return g->status;
}

static df_node *bmm_nn(df_graph *g, df_node **in) { return df_batch_matmul(g, in[0], in[1], false, false); }
static df_node *bmm_tn(df_graph *g, df_node **in) { return df_batch_matmul(g, in[0], in[1], true, false); }
static df_node *bmm_nt(df_graph *g, df_node **in) { return df_batch_matmul(g, in[0], in[1], false, true); }
static df_node *bmm_tt(df_graph *g, df_node **in) { return df_batch_matmul(g, in[0], in[1], true, true); }

static const df_gradcheck_case batch_matmul_cases[] = {
    {"(2,3) @ (3,4) plain matrices", 2, {DF_GC_F32(2, 3), DF_GC_F32(3, 4)}, bmm_nn, 0, 0},
    {"(2,2,3) @ (2,3,4) batched", 2, {DF_GC_F32(2, 2, 3), DF_GC_F32(2, 3, 4)}, bmm_nn, 0, 0},
    {"(2,3,2)^T @ (2,3,4)", 2, {DF_GC_F32(2, 3, 2), DF_GC_F32(2, 3, 4)}, bmm_tn, 0, 0},
    {"(2,2,3) @ (2,4,3)^T", 2, {DF_GC_F32(2, 2, 3), DF_GC_F32(2, 4, 3)}, bmm_nt, 0, 0},
    {"(2,3,2)^T @ (2,4,3)^T", 2, {DF_GC_F32(2, 3, 2), DF_GC_F32(2, 4, 3)}, bmm_tt, 0, 0},
    {"(3,2,3) @ (3,4) weight broadcast", 2, {DF_GC_F32(3, 2, 3), DF_GC_F32(3, 4)}, bmm_nn, 0, 0},
    {"(3,2,3) @ (4,3)^T weight broadcast", 2, {DF_GC_F32(3, 2, 3), DF_GC_F32(4, 3)}, bmm_nt, 0, 0},
    {"(3,3,2)^T @ (1,3,4) weight broadcast", 2, {DF_GC_F32(3, 3, 2), DF_GC_F32(1, 3, 4)}, bmm_tn, 0, 0},
    {"(2,3) @ (3,3,4) a broadcast", 2, {DF_GC_F32(2, 3), DF_GC_F32(3, 3, 4)}, bmm_nn, 0, 0},
    {"(2,1,2,3) @ (1,3,4,3)^T both broadcast", 2, {DF_GC_F32(2, 1, 2, 3), DF_GC_F32(1, 3, 4, 3)}, bmm_nt, 0, 0},
    {"(B,h,T,d) @ (B,h,T,d)^T attention scores", 2, {DF_GC_F32(2, 2, 3, 2), DF_GC_F32(2, 2, 3, 2)}, bmm_nt, 0, 0},
    {"(2,1,3,2)^T @ (2,2,3,2) transposed, broadcast", 2, {DF_GC_F32(2, 1, 3, 2), DF_GC_F32(2, 2, 3, 2)}, bmm_tn, 0, 0},
    {0},
};

/* 2MNK FLOPs per output matrix; each operand (broadcast ones once) and the
 * output moved once. */
static void batch_matmul_cost(const df_node *n, df_op_cost *out)
{
    int64_t kb;
    gemm_dims d = batch_dims_of(n, &kb);
    *out = (df_op_cost){.flops = 2.0 * d.M * d.N * d.K * batch_numel(n), .bytes = df_cost_io_bytes(n)};
}

static df_node *batch_matmul_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_batch_matmul(g, in[0], in[1], attrs[0] != 0, attrs[1] != 0);
}

static const df_bench_def batch_matmul_bench = {
    .n_inputs = 2, .attrs = {"transpose_a", "transpose_b"}, .defaults = {"0", "0"},
    .build = batch_matmul_bench_build,
    .shapes = {"4x4x64x32,4x4x64x32 transpose_b=1", "16x6x256x64,16x6x256x64 transpose_b=1",
               "16x12x512x64,16x12x512x64 transpose_b=1"},
};

const df_op_def df_op_batch_matmul = {
    .name = "batch_matmul", .infer = batch_matmul_infer, .forward = batch_matmul_forward,
    .backward = batch_matmul_backward, .gradcheck = batch_matmul_cases, .attrs_size = sizeof(matmul_attrs),
    .cost = batch_matmul_cost, .bench = &batch_matmul_bench,
    .min_inputs = 2, .max_inputs = 2, .bool_attrs = 0x3,
};

df_node *df_batch_matmul(df_graph *g, df_node *a, df_node *b, bool transpose_a, bool transpose_b)
{
    df_node *in[2] = {a, b};
    matmul_attrs attrs = {.transpose_a = transpose_a, .transpose_b = transpose_b};
    return df_node_new(g, &df_op_batch_matmul, 2, in, &attrs);
}
