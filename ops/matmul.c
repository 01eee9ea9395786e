/* matmul.c — op(a) @ op(b) through OpenBLAS sgemm. Operands of rank > 2 are
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
    df_sgemm(t->transpose_a, t->transpose_b, d.M, d.N, d.K, 1.0f, DF_F32P(n->in[0]), d.lda,
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

const df_op_def df_op_matmul = {
    .name = "matmul", .infer = matmul_infer, .forward = matmul_forward,
    .backward = matmul_backward, .gradcheck = matmul_cases, .attrs_size = sizeof(matmul_attrs),
};

df_node *df_matmul(df_graph *g, df_node *a, df_node *b, bool transpose_a, bool transpose_b)
{
    df_node *in[2] = {a, b};
    matmul_attrs attrs = {.transpose_a = transpose_a, .transpose_b = transpose_b};
    return df_node_new(g, &df_op_matmul, 2, in, &attrs);
}
